"""The blocking client against a live service: every resource once, typed results, errors."""

import dataclasses
from pathlib import Path

import pytest
from winnow_client import (
    Client,
    Conflict,
    CreatedKey,
    Forbidden,
    LabelEvent,
    NotFound,
    Prediction,
    SampleUpload,
    Unprocessable,
    WinnowError,
)

from service.settings import Settings
from tests.api.live import threaded_server
from tests.conftest import ADMIN_KEY, BLUE, RED, png_bytes


def colour_samples(per_label: int = 4) -> list[SampleUpload]:
    return [
        SampleUpload(png_bytes(colour, seed=i), name, f"{name}/{i}.png")
        for i in range(per_label)
        for name, colour in (("red", RED), ("blue", BLUE))
    ]


def test_functions_samples_training_and_invoke(live_url: str, tmp_path: Path) -> None:
    with Client(live_url, api_key=ADMIN_KEY) as winnow:
        fn = winnow.ensure_function("IsRed", ["red"])
        assert winnow.ensure_function("IsRed", ["red", "blue"]).label_count == 2
        assert [f.id for f in winnow.list_functions()] == [fn.id]
        assert {label.name for label in winnow.list_labels(fn.id)} == {"red", "blue"}

        first = winnow.upload_samples(fn.id, colour_samples(), progress=False)
        assert first.uploaded == 8 and not first.skipped and not first.failed
        again = winnow.upload_samples(fn.id, colour_samples(), progress=False)
        assert again.uploaded == 0 and sorted(again.skipped) == sorted(
            s.external_id for s in first.created
        )
        page = winnow.list_samples(fn.id, count=3)
        assert page.count == 8 and len(page.data) == 3
        sample = winnow.get_sample(fn.id, page.data[0].id)
        assert sample.label_name in {"red", "blue"} and sample.annotated_at is not None
        assert winnow.sample_image(fn.id, sample.id)[:4] == b"\x89PNG"

        version = winnow.train(fn.id)
        assert version.version == 1 and version.sample_count == 8 and version.metrics
        assert winnow.training_status(fn.id).state == "idle"
        assert winnow.metrics(fn.id).version == 1
        assert winnow.confusion_matrix_png(fn.id)[:4] == b"\x89PNG"
        assert winnow.list_models(fn.id)[0].version == 1  # newest first
        assert winnow.pin(fn.id).pinned and not winnow.unpin(fn.id).pinned
        assert winnow.deploy(fn.id, 1, pin=False).version == 1

        red_file = tmp_path / "red.png"
        red_file.write_bytes(png_bytes(RED, seed=50))
        prediction = winnow.invoke(fn.id, red_file, capture=False)
        assert isinstance(prediction, Prediction) and prediction.label_name == "red"
        assert prediction.model_version == 1 and len(prediction.label_confidences) == 2
        best = winnow.invoke(fn.id, red_file, capture=False, label_count=1).label_confidences
        assert [c.label_name for c in best] == ["red"]
        (batched,) = winnow.invoke_batch(fn.id, [red_file], capture=False, label_count=1)
        assert isinstance(batched, Prediction) and len(batched.label_confidences) == 1
        images = [png_bytes(RED, seed=60), b"not an image", png_bytes(BLUE, seed=61)]
        red, bad, blue = winnow.invoke_many(fn.id, images, batch_size=2, concurrency=2)
        assert isinstance(red, Prediction) and red.label_name == "red"
        assert isinstance(blue, Prediction) and blue.label_name == "blue"
        assert isinstance(bad, WinnowError) and bad.status == 400 and bad.message

        hits = winnow.search(fn.id, red_file, count=3)
        assert len(hits) == 3 and hits[0].label_name == "red"
        assert len(winnow.similar_samples(fn.id, sample.id, count=2)) == 2

        winnow.set_annotation(fn.id, sample.id, "blue")
        assert winnow.remove_annotation(fn.id, sample.id).annotation is None
        winnow.delete_sample(fn.id, sample.id)
        with pytest.raises(NotFound) as missing:
            winnow.get_sample(fn.id, sample.id)
        assert missing.value.status == 404 and sample.id in missing.value.message

        label = winnow.create_label(fn.id, "green", description="grass")
        assert winnow.update_label(fn.id, label.id, "lime").name == "lime"
        assert winnow.get_label(fn.id, label.id).description is None
        winnow.delete_label(fn.id, label.id)
        empty = winnow.create_function("Empty")
        with pytest.raises(Conflict):
            winnow.train(empty.id)  # no labelled samples
        pets = winnow.create_function("Pets", ["tabby cat", "goldfish"], preset="imagenet")
        assert pets.deployed_version == 0 and pets.label_count == 2  # a preset answers at once
        winnow.delete_function(fn.id)
        assert winnow.find_function("IsRed") is None


def test_review_queue_capture_policy_and_keys(live_url: str) -> None:
    with Client(live_url, api_key=ADMIN_KEY) as winnow:
        fn = winnow.create_function("IsRed", ["red", "blue"])
        winnow.upload_samples(fn.id, colour_samples(), progress=False)
        winnow.train(fn.id)
        policy = winnow.set_capture_policy(fn.id, random_rate=1.0, duplicate_similarity=1.0)
        assert (
            policy.policy["randomRate"] == 1.0
            and "randomRate" in winnow.capture_policy(fn.id).policy
        )
        captures = [
            winnow.invoke(fn.id, png_bytes((200, 120, 30), seed=s)).capture for s in range(5)
        ]
        assert all(c is not None and c.captured for c in captures)

        items = winnow.review_items(fn.id, kind="capture")
        assert items.count == 5 and all(i.kind == "capture" for i in items.data)
        first, second, third, fourth, fifth = (i.id for i in items.data)
        assert winnow.review_image(first)[:4] == b"\x89PNG"
        assert len(winnow.similar_to_item(fn.id, first, count=2)) == 2
        item = winnow.annotate(fn.id, first, "red", annotated_by="ana")
        assert item.status == "annotated" and item.sample_id
        done = winnow.annotate_many(fn.id, {second: "blue", third: "red"}, annotated_by="bo")
        assert [i.status for i in done] == ["annotated", "annotated"]
        assert winnow.skip(fn.id, fourth).status == "skipped"
        assert winnow.discard(fn.id, fifth).status == "discarded"
        counts = winnow.review_counts(fn.id)
        assert (counts.pending, counts.annotated, counts.skipped, counts.discarded) == (0, 3, 1, 1)
        reviewed = winnow.get_sample(fn.id, item.sample_id)
        assert reviewed.annotated_by == "ana" and reviewed.source == "review"
        dashboard = winnow.dashboard(fn.id)
        assert sum(c["count"] for c in dashboard.label_counts) == 11  # 8 uploads + 3 reviewed
        assert winnow.chart_png(fn.id, "labels")[:4] == b"\x89PNG"

        key = winnow.create_key(["invoke"], function_id=fn.id, name="app")
        assert isinstance(key, CreatedKey) and key.key and key.scopes == ["invoke"]
        assert key.id in {k.id for k in winnow.list_keys()}
        with Client(live_url, api_key=key.key) as app:
            assert app.invoke(fn.id, png_bytes(RED, seed=9), capture=False).label_name
            with pytest.raises(Forbidden):
                app.list_keys()
        winnow.delete_key(key.id)
        assert winnow.health()["status"]


def test_reviewer_keys_and_the_label_history(live_url: str) -> None:
    with Client(live_url, api_key=ADMIN_KEY) as winnow:
        fn = winnow.create_function("IsRed", ["red", "blue"])
        key = winnow.create_key(["annotate"], function_id=fn.id, reviewer=" ana ")
        assert key.reviewer == "ana"
        assert {k.id: k.reviewer for k in winnow.list_keys()}[key.id] == "ana"
        with pytest.raises(Unprocessable):
            winnow.create_key(["annotate"], function_id=fn.id, reviewer="a\nb")

        imported = winnow.create_sample(
            fn.id, png_bytes(RED), "red", annotated_by="carla", via="import"
        )
        assert imported.annotated_by == "carla"
        with Client(live_url, api_key=key.key) as ana:
            sample = ana.create_sample(fn.id, png_bytes(BLUE), "red")
            assert ana.set_annotation(fn.id, sample.id, "blue").annotated_by == "ana"
            with pytest.raises(Forbidden):
                ana.set_annotation(fn.id, sample.id, "red", annotated_by="bo")
        assert winnow.set_annotation(fn.id, sample.id, "red", annotated_by="bo").label_name == "red"
        winnow.delete_key(key.id)
        winnow.delete_sample(fn.id, sample.id)

        history = winnow.sample_history(fn.id, sample.id)
        assert [(e.label_before, e.label_after, e.actors, e.via) for e in history] == [
            (None, "red", ["ana"], "sample_api"),
            ("red", "blue", ["ana"], "sample_api"),
            ("blue", "red", ["bo"], "sample_api"),
            ("red", None, ["admin"], "sample_api"),
        ]
        assert isinstance(history[0], LabelEvent) and history[0].at <= history[-1].at
        [event] = winnow.sample_history(fn.id, imported.id)
        assert (event.actors, event.via) == (["carla"], "import")
        with pytest.raises(NotFound):
            winnow.sample_history(fn.id, "sample_missing")


def test_request_training_then_wait(settings: Settings) -> None:
    """With the scheduler on, a queued training is picked up and waited for."""
    scheduled = dataclasses.replace(settings, retrain_interval=0.2, retrain_min_annotations=1000)
    with threaded_server(scheduled) as url, Client(url, api_key=ADMIN_KEY) as winnow:
        fn = winnow.create_function("IsRed", ["red", "blue"])
        winnow.upload_samples(fn.id, colour_samples(), progress=False)
        queued = winnow.request_training(fn.id)
        assert queued.last_version is None
        done = winnow.wait_for_training(fn.id, previous=queued, timeout=60, interval=0.1)
        assert done.state == "idle" and done.last_version == 1 and done.deployed_version == 1

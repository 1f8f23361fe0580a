"""Version 0: a function with labels serves a zero-shot head from its label names (tiny CLIP).

Over HTTP, end to end: function with labels -> invoke answers ``modelVersion`` 0 -> captured items
are annotated through review -> training deploys the trained head only if it beats version 0,
and the decision says so. The tiny CLIP is random, so its zero-shot answers are arbitrary but
deterministic: with the names "red" / "blue" it labels every colour image "red" (accuracy 0.5),
while "tomato" / "sapphire" happen to separate red and blue images perfectly (found by trying
colour words on these images), which no trained head can beat.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from api.app import create_app
from service.settings import Settings
from store import ModelVersion, session_scope
from tests.api.live import wait_until
from tests.conftest import AUTH, BLUE, RED, add_colour_samples, data_uri, png_bytes
from tests.planted import planted_artifact


def _models(client: TestClient, fid: str) -> dict[int, dict]:
    return {m["version"]: m for m in client.get(f"/v1/functions/{fid}/models").json()["data"]}


def _stream_captured_and_annotated(
    client: TestClient, fid: str, names: dict[tuple[int, int, int], str], per_colour: int
) -> list[int]:
    """Invoke red and blue images with every one captured (random slice), annotate each captured
    item through review with its colour's label; the model versions that answered."""
    policy = {"randomRate": 1.0, "duplicateSimilarity": 1.0}
    assert client.put(f"/v1/functions/{fid}/capture-policy", json=policy).status_code == 200
    versions = []
    for seed in range(per_colour):
        for colour, label in names.items():
            body = {"data": data_uri(png_bytes(colour, seed=100 + seed))}
            answer = client.post(f"/v1/functions/{fid}/invoke", json=body).json()
            versions.append(answer["modelVersion"])
            assert answer["capture"]["captured"], answer
            item_id = answer["capture"]["itemId"]
            done = client.post(
                f"/v1/functions/{fid}/review/{item_id}/annotate", json={"labelName": label}
            )
            assert done.status_code == 200 and done.json()["status"] == "annotated", done.text
    return versions


def test_labels_alone_serve_version_0_and_a_better_trained_head_replaces_it(
    client: TestClient,
) -> None:
    created = client.post("/v1/functions", json={"name": "colour", "labels": ["red", "blue"]})
    assert created.status_code == 201 and created.json()["deployedVersion"] == 0
    fid = created.json()["id"]
    (zero_shot,) = _models(client, fid).values()
    assert zero_shot["version"] == 0 and zero_shot["kind"] == "zero_shot"
    assert zero_shot["head"] == "zero_shot" and zero_shot["status"] == "deployed"
    assert sorted(zero_shot["labels"]) == ["blue", "red"]

    answer = client.post(f"/v1/functions/{fid}/invoke", json={"data": data_uri(png_bytes(RED))})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["modelVersion"] == 0 and body["labelName"] in {"red", "blue"}
    assert abs(sum(c["confidence"] for c in body["labelConfidences"]) - 1.0) < 1e-6

    versions = _stream_captured_and_annotated(client, fid, {RED: "red", BLUE: "blue"}, 6)
    assert set(versions) == {0}  # capture ran on version 0
    trained = client.post(f"/v1/functions/{fid}/train").json()
    assert trained["version"] == 1 and trained["kind"] == "trained"
    assert trained["status"] == "deployed" and trained["parentVersion"] == 0
    decision = trained["decision"]
    assert decision["deploy"] and "beats the zero-shot head" in decision["reason"]
    assert decision["basis"] == "holdout"  # 12 random-slice captures: the unbiased basis
    holdout = decision["comparisons"][0]
    assert holdout["n"] == 12 and holdout["challengerAccuracy"] > holdout["championAccuracy"]
    assert _models(client, fid)[0]["status"] == "retired"
    again = client.post(f"/v1/functions/{fid}/invoke", json={"data": data_uri(png_bytes(BLUE))})
    assert again.json()["modelVersion"] == 1 and again.json()["labelName"] == "blue"

    asked = client.post(
        f"/v1/functions/{fid}/invoke",
        params={"version": 0},
        json={"data": data_uri(png_bytes(BLUE))},
    )
    assert asked.json()["modelVersion"] == 0 and asked.json()["capture"] is None
    # rolling back to version 0 serves the zero-shot head again, current with the labels
    assert client.post(f"/v1/functions/{fid}/models/0/deploy").json()["status"] == "deployed"
    client.post(f"/v1/functions/{fid}/labels", json={"name": "green"})
    back = client.post(f"/v1/functions/{fid}/invoke", json={"data": data_uri(png_bytes(BLUE))})
    assert back.json()["modelVersion"] == 0
    assert {c["labelName"] for c in back.json()["labelConfidences"]} == {"red", "blue", "green"}


@pytest.mark.parametrize("damage", ["deleted", "planted"])
def test_deploying_version_0_rebuilds_a_missing_or_planted_artifact(
    client: TestClient, settings: Settings, damage: str, tmp_path: Path
) -> None:
    fid = client.post("/v1/functions", json={"name": "f", "labels": ["red", "blue"]}).json()["id"]
    add_colour_samples(client, fid, per_label=3)
    assert client.post(f"/v1/functions/{fid}/train").json()["status"] == "deployed"
    artifact = Path(settings.data_dir) / "models" / fid / "v0.joblib"
    marker = tmp_path / "planted-code-ran"
    if damage == "deleted":
        artifact.unlink()
    else:
        artifact.write_bytes(planted_artifact(marker))

    deployed = client.post(f"/v1/functions/{fid}/models/0/deploy")
    assert deployed.status_code == 200 and deployed.json()["status"] == "deployed", deployed.text
    answer = client.post(f"/v1/functions/{fid}/invoke", json={"data": data_uri(png_bytes(BLUE))})
    assert answer.json()["modelVersion"] == 0
    assert {c["labelName"] for c in answer.json()["labelConfidences"]} == {"red", "blue"}
    assert _models(client, fid)[1]["status"] == "retired"
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    with session_scope(runtime.engine) as session:
        row = session.exec(
            select(ModelVersion).where(ModelVersion.function_id == fid, ModelVersion.version == 0)
        ).one()
    assert row.artifact_sha256 == hashlib.sha256(artifact.read_bytes()).hexdigest()
    assert not marker.exists()


def test_a_trained_head_that_does_not_beat_version_0_is_rejected(client: TestClient) -> None:
    fid = client.post(
        "/v1/functions", json={"name": "colour", "labels": ["tomato", "sapphire"]}
    ).json()["id"]
    versions = _stream_captured_and_annotated(client, fid, {RED: "tomato", BLUE: "sapphire"}, 6)
    assert set(versions) == {0}
    trained = client.post(f"/v1/functions/{fid}/train").json()
    assert trained["version"] == 1 and trained["status"] == "rejected"
    decision = trained["decision"]
    assert not decision["deploy"] and "does not beat the zero-shot head" in decision["reason"]
    holdout = decision["comparisons"][0]
    assert holdout["championAccuracy"] == 1.0 and holdout["challengerAccuracy"] == 1.0
    function = client.get(f"/v1/functions/{fid}").json()
    assert function["deployedVersion"] == 0
    answer = client.post(f"/v1/functions/{fid}/invoke", json={"data": data_uri(png_bytes(BLUE))})
    assert answer.json()["modelVersion"] == 0 and answer.json()["labelName"] == "sapphire"
    training = client.get(f"/v1/functions/{fid}/training").json()
    assert training["lastDecision"]["status"] == "rejected"


def test_label_changes_rebuild_version_0(client: TestClient) -> None:
    fid = client.post("/v1/functions", json={"name": "f", "labels": ["cat", "dog"]}).json()["id"]
    first = _models(client, fid)[0]["params"]["fingerprint"]
    labels = {
        label["name"]: label["id"]
        for label in client.get(f"/v1/functions/{fid}/labels").json()["data"]
    }

    def current() -> dict:
        return _models(client, fid)[0]

    added = client.post(f"/v1/functions/{fid}/labels", json={"name": "bird"})
    assert added.status_code == 201
    assert sorted(current()["labels"]) == ["bird", "cat", "dog"]
    assert current()["params"]["fingerprint"] != first
    invoked = client.post(f"/v1/functions/{fid}/invoke", json={"data": data_uri(png_bytes(RED))})
    assert {c["labelName"] for c in invoked.json()["labelConfidences"]} == {"bird", "cat", "dog"}

    before = current()["params"]["fingerprint"]
    described = client.put(
        f"/v1/functions/{fid}/labels/{labels['cat']}",
        json={"name": "cat", "description": "a small domestic feline"},
    )
    assert described.status_code == 200
    assert current()["params"]["fingerprint"] != before

    # version 0 learns names, it does not pin them: renaming and deleting are allowed
    renamed = client.put(f"/v1/functions/{fid}/labels/{labels['dog']}", json={"name": "puppy"})
    assert renamed.status_code == 200, renamed.text
    assert sorted(current()["labels"]) == ["bird", "cat", "puppy"]
    deleted = client.delete(f"/v1/functions/{fid}/labels/{added.json()['id']}")
    assert deleted.status_code == 204
    assert sorted(current()["labels"]) == ["cat", "puppy"]
    assert _models(client, fid).keys() == {0}  # rebuilt in place, one version 0
    assert client.get(f"/v1/functions/{fid}").json()["deployedVersion"] == 0

    # one label left: a zero-shot head has nothing to choose between, version 0 stops serving
    client.delete(f"/v1/functions/{fid}/labels/{labels['cat']}")
    assert client.get(f"/v1/functions/{fid}").json()["deployedVersion"] is None
    assert current()["status"] == "retired"
    client.post(f"/v1/functions/{fid}/labels", json={"name": "fish"})
    assert client.get(f"/v1/functions/{fid}").json()["deployedVersion"] == 0


def test_labels_made_by_samples_reach_version_0_at_the_next_invoke(client: TestClient) -> None:
    fid = client.post("/v1/functions", json={"name": "f"}).json()["id"]
    assert client.get(f"/v1/functions/{fid}").json()["deployedVersion"] is None
    for name, colour in (("red", RED), ("blue", BLUE)):
        body = {"data": data_uri(png_bytes(colour)), "annotation": {"labelName": name}}
        assert client.post(f"/v1/functions/{fid}/samples", json=body).status_code == 201
    answer = client.post(f"/v1/functions/{fid}/invoke", json={"data": data_uri(png_bytes(RED))})
    assert answer.json()["modelVersion"] == 0
    assert sorted(_models(client, fid)[0]["labels"]) == ["blue", "red"]


@pytest.mark.databases
def test_replicas_serve_the_same_version_0_as_labels_change(settings: Settings) -> None:
    probe = {"data": data_uri(png_bytes(BLUE, seed=3))}

    # each replica embeds the probe itself: its vector may differ in the last float bits
    def confidences(client: TestClient, fid: str) -> dict[str, float]:
        answer = client.post(f"/v1/functions/{fid}/invoke", json=probe).json()
        assert answer["modelVersion"] == 0, answer
        return {c["labelName"]: c["confidence"] for c in answer["labelConfidences"]}

    with (
        TestClient(create_app(settings), headers=AUTH) as one,
        TestClient(create_app(settings), headers=AUTH) as two,
    ):
        fid = one.post("/v1/functions", json={"name": "f", "labels": ["cat", "dog"]}).json()["id"]
        assert confidences(two, fid) == pytest.approx(confidences(one, fid), abs=1e-3)
        assert one.post(f"/v1/functions/{fid}/labels", json={"name": "bird"}).status_code == 201

        # the other replica knows the new label once its worker's poll has seen it
        def all_three() -> dict[str, float] | None:
            seen = confidences(two, fid)
            return seen if set(seen) == {"bird", "cat", "dog"} else None

        from_two = wait_until(all_three)
        assert from_two == pytest.approx(confidences(one, fid), abs=1e-3)
        assert two.get(f"/v1/functions/{fid}/models").json()["count"] == 1


def test_openapi_documents_version_0_and_the_model_kind(client: TestClient) -> None:
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    kind = schemas["ModelVersionPublic"]["properties"]["kind"]
    assert (
        kind["enum"] == ["zero_shot", "preset", "trained"] and "label names" in kind["description"]
    )
    model_version = schemas["InvokeResult"]["properties"]["modelVersion"]
    assert "0 is the zero-shot head" in model_version["description"]

"""The benchmarks run on winnow's own code paths, and docs/performance.md reports exactly their
results."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

from bench import capture_cost, report, retrain_cost


def test_the_performance_page_is_generated_from_the_committed_results() -> None:
    assert report.PAGE.read_text() == report.performance_section() + "\n", (
        "docs/performance.md is stale: run `python -m bench.report`"
    )


def test_writing_the_page_replaces_whatever_it_held(tmp_path: Path) -> None:
    page = tmp_path / "performance.md"
    page.write_text("# Performance\n\nedited by hand\n")
    assert report.main([str(page)]) == 0
    assert page.read_text() == report.performance_section() + "\n"


@pytest.mark.parametrize(("ratio", "expected"), [(0.4, "pass"), (0.5, "pass"), (0.55, "**fail**")])
def test_b1_headline_verdict_follows_the_target(ratio: float, expected: str) -> None:
    rows = report.b1_rows(
        {
            "summary": {
                "headline_ratio": {"budget": 300, "per_seed": [ratio], "max": ratio},
                "targets": {"ratio_at_most_0.5": ratio <= 0.5},
            },
            "b1b": {
                "test_errors_captured": {"mean": 0.6},
                "test_capture_rate": {"mean": 0.1},
                "ece_before_temperature": {"mean": 0.07},
                "ece_after_temperature": {"mean": 0.03},
            },
        }
    )
    headline, _, _, errors_caught, calibration = rows
    assert headline[3] == expected
    assert errors_caught[2:] == (">= 50%", "pass")
    assert calibration[3] == "**fail**"  # 0.03 after temperature scaling > 0.02


def test_retrain_cost_runs_train_head_and_writes_a_dated_result(tmp_path: Path) -> None:
    output = tmp_path / "retrain.json"
    result = retrain_cost.main(
        ["--sizes", "150", "300", "--dim", "16", "--labels", "3", "--repeats", "1"]
        + ["--output", str(output)]
    )
    written = json.loads(output.read_text())
    assert written["measured_on"] and [r["samples"] for r in written["results"]] == [150, 300]
    assert all(r["oof_accuracy"] > 0.4 for r in result["results"])  # 3 labels: chance is 1/3
    assert written["growth_exponent"] is not None


def test_capture_cost_compares_the_approximate_index_with_exact_search(tmp_path: Path) -> None:
    output = tmp_path / "capture.json"
    assert (
        capture_cost.main(
            ["--sizes", "600", "--dim", "32", "--clusters", "10", "--queries", "20"]
            + ["--hnsw-threshold", "300", "--output", str(output)]
        )
        == 0
    )
    rows = json.loads(output.read_text())["results"]
    structures = {row["index"]: row["structure"] for row in rows}
    assert structures == {"flat": "flat", "auto": "hnsw"}
    assert all(0.0 < row["recall_at_10"] <= 1.0 for row in rows)
    assert next(r for r in rows if r["index"] == "flat")["recall_at_10"] == 1.0


def test_synthetic_clusters_are_neighbourly_like_image_embeddings_not_isotropic() -> None:
    vectors, clusters = capture_cost.clustered_vectors(3000, 512, 10, np.random.default_rng(0))
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    found = capture_cost.cluster_statistics(vectors, clusters)
    # efficientnet-lite0 on Fashion-MNIST classes: ~26 effective dimensions, NN 0.84 vs 0.63
    assert 15 < found["participation_ratio"] < 45
    assert found["nearest_neighbour_cosine"] - found["average_cosine"] > 0.08
    isotropic = np.random.default_rng(1).standard_normal((300, 512))
    isotropic /= np.linalg.norm(isotropic, axis=1, keepdims=True)
    assert capture_cost.cluster_statistics(isotropic, np.zeros(300))["participation_ratio"] > 150


def test_full_results_add_only_the_sizes_the_quick_run_did_not_measure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def retrain(sizes: list[int], full: bool) -> dict[str, object]:
        rows = [
            {"samples": n, "seconds_median": n / 1000, "oof_accuracy": 0.9, "chosen": "knn"}
            for n in sizes
        ]
        return {
            "config": {"full": full},
            "target": {"samples": 10_000, "max_seconds": 10},
            "results": rows,
            "growth_exponent": 1.0,
        }

    (tmp_path / "retrain_cost.json").write_text(json.dumps(retrain([1000, 10_000], False)))
    full = retrain([1000, 10_000, 100_000], True)
    (tmp_path / "retrain_cost_full.json").write_text(json.dumps(full))
    monkeypatch.setattr(report, "RESULTS", tmp_path)

    figures = [row[0] for row in report.b4_rows(full)]
    assert figures == [
        "B4 (--full) retrain (cross-validated model selection) on 100,000 samples, 512-d, 10 labels",
        "B4 (--full) growth exponent of retrain time (log-log slope over 1,000 to 100,000 samples)",
    ]
    section = report.performance_section()
    assert section.count("on 10,000 samples") == 1 and "on 100,000 samples" in section


def test_service_cpu_time_is_read_from_proc_like_the_process_own_clock() -> None:
    from bench.serving import RunningService

    me = RunningService("http://unused", os.getpid())
    before, clock_before = me.cpu_seconds(), time.process_time()
    if before is None:
        pytest.skip("no /proc on this platform")
    total = 0
    while time.process_time() - clock_before < 0.3:
        total += sum(range(1000))
    spent, clock_spent = me.cpu_seconds() - before, time.process_time() - clock_before
    assert total > 0 and abs(spent - clock_spent) < 0.05  # /proc ticks are 10 ms


def test_b2_times_only_the_window_in_which_every_client_is_busy() -> None:
    """A server that answers one request at a time in 10 ms: the steady rate is 100/s. Counting
    from the first request instead would include the clients' start and the drain at the end."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from bench.serving import drive

    one_at_a_time = threading.Lock()
    calls = {"n": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            self.rfile.read(int(self.headers["content-length"]))
            with one_at_a_time:
                time.sleep(0.01)
                calls["n"] += 1
                status = 500 if calls["n"] == 15 else 200
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    clock = iter(range(100))
    # requests the server had answered when the window opened, and when it closed
    served_at_marks: list[int] = []

    def cpu_seconds() -> float:
        served_at_marks.append(calls["n"])
        return float(next(clock))

    try:
        result = drive(
            f"http://127.0.0.1:{server.server_address[1]}",
            "/invoke",
            [b"{}"],
            clients=4,
            requests=30,
            warmup=8,
            headers={},
            cpu_seconds=cpu_seconds,
            images_per_request=3,  # as /invoke/batch bodies of 3 images each
        )
    finally:
        server.shutdown()
        server.server_close()
    assert result["ok"] + result["errors"] == 30 and result["errors"] == 1  # the 15th answer
    assert result["first_error"].startswith("500")
    assert result["seconds"] >= 30 * 0.01  # 30 answers, one at a time (no upper bound: timing)
    # the window opened once the 8 warm-up requests were answered, and closed after 30 more
    assert served_at_marks[0] >= 8 and served_at_marks[1] >= 8 + 30
    assert result["cpu_ms_per_image"] == pytest.approx(1000 * 1 / (29 * 3))  # clock read twice
    assert result["images_per_s"] == pytest.approx(3 * result["requests_per_s"])
    assert calls["n"] <= 8 + 30 + 4  # the clients stop once the window closes


def test_b2_serves_a_clip_architecture_at_random_init_from_a_checkpoint_written_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import open_clip

    from bench import serving
    from embeddings import load_backbone

    open_clip.add_model_config(Path(serving.ROOT) / "embeddings" / "configs" / "tiny-clip.json")
    monkeypatch.setattr(serving, "CACHE", tmp_path)
    assert serving.served_backbone("efficientnet-lite0") == (
        "efficientnet-lite0",
        "efficientnet-lite0",
    )
    spec, name = serving.served_backbone("clip:tiny-clip/random-init")
    checkpoint = tmp_path / "random-init" / "tiny-clip.pt"
    assert (spec, name) == (f"clip:tiny-clip/{checkpoint}", "clip:tiny-clip at random init")
    written = checkpoint.stat().st_mtime_ns
    assert serving.served_backbone("clip:tiny-clip/random-init")[0] == spec
    assert checkpoint.stat().st_mtime_ns == written  # not written again
    assert load_backbone(spec, device="cpu").dim == 32


def test_b2_bare_route_answers_from_the_batching_encoder_and_nothing_else() -> None:
    """The ceiling's route: the multipart file part, decoded and encoded by winnow's encoder;
    its answer is the vector's largest component, the same the encoder gives directly."""
    from fastapi.testclient import TestClient

    from bench.bare_http import bare_app
    from bench.serving import BODY_TYPES, make_images, multipart_body
    from embeddings import BatchingEncoder, decode_image, load_backbone

    data = make_images(1, 64, seed=0)[0][0]
    encoder = BatchingEncoder(load_backbone("tiny-clip", device="cpu"), max_batch=4)
    expected = int(np.argmax(encoder.encode([decode_image(data)])[0]))
    with TestClient(bare_app(encoder, max_pixels=10_000)) as client:
        body = multipart_body(data)
        answer = client.post(
            "/invoke", content=body, headers={"content-type": BODY_TYPES["multipart"]}
        )
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"index": expected}
        missing = client.post("/invoke", data={"other": "x"})
        assert missing.status_code == 422
        assert "file" in missing.text
    assert encoder.closed  # closed with the app


def test_b2_raw_loop_includes_the_service_encoders_two_workers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The raw ceiling also runs as the service's encoder does on a CPU: CPU_WORKERS threads at
    once, one torch thread each, every image encoded once among them."""
    from bench.serving import best_raw_throughput, make_images, parallel_raw_throughput
    from embeddings import load_backbone
    from embeddings.pool import CPU_WORKERS

    images = [data for data, _ in make_images(10, 32, seed=0)]
    backbone = load_backbone("tiny-clip", device="cpu")
    raw = best_raw_throughput(backbone, images, 4, 10_000)
    assert raw["variants"][f"{CPU_WORKERS}_worker_threads"]["workers"] == CPU_WORKERS
    assert raw["images_per_s"] == max(v["images_per_s"] for v in raw["variants"].values())

    encoded: list[int] = []
    encode = backbone.encode
    monkeypatch.setattr(
        backbone, "encode", lambda batch: encoded.append(len(batch)) or encode(batch)
    )
    assert parallel_raw_throughput(backbone, images, 4, 10_000, 2)["images"] == 10
    assert sorted(encoded) == [2, 4, 4]  # batches of 4, 4 and 2, shared between the threads


@pytest.mark.slow
def test_b10_compares_the_export_with_the_service_path_on_fashion_images(tmp_path: Path) -> None:
    from bench import onnx_export

    output = tmp_path / "b10.json"
    onnx_export.main(
        ["--backbones", "tiny-clip", "--train", "90", "--test", "40", "--out", str(output)]
    )
    written = json.loads(output.read_text())
    heads = written["backbones"][0]["heads"]
    assert sorted(heads) == ["knn", "linear_svm", "logistic_regression"]
    assert heads["knn"]["head"] == "CosineKNeighbors"
    for head in heads.values():
        assert head["top_label_agreement"] >= 0.95 and head["max_probability_gap"] < 1e-3
    assert written["pass"] == all(
        h["top_label_agreement"] >= 0.995 and h["max_probability_gap"] <= 1e-3
        for h in heads.values()
    )
    assert report.b10_rows(written)[0][0].startswith("B10 exported ONNX model")


@pytest.mark.slow
def test_b10_exports_a_tuned_version_of_efficientnet(tmp_path: Path) -> None:
    from bench import onnx_export

    output = tmp_path / "b10.json"
    onnx_export.main(
        [
            "--backbones", "efficientnet-lite0", "--train", "60", "--test", "20",
            "--tune-epochs", "1", "--out", str(output),
        ]
    )  # fmt: skip
    written = json.loads(output.read_text())
    tuned = written["backbones"][0]["heads"]["finetuned"]
    assert tuned["head"] == "TunedHead" and tuned["tuned_blocks"] == 3
    assert tuned["top_label_agreement"] == 1.0 and tuned["max_probability_gap"] < 1e-3
    assert "finetuned (3 blocks) 100.00%" in report.b10_rows(written)[0][1]


def test_b11_spends_the_same_reviews_in_every_arm_and_reports_the_estimates() -> None:
    from types import SimpleNamespace

    from bench import team_review
    from tests.bench.test_label_errors import synthetic_split as split

    data = SimpleNamespace(
        pool=split(600, 1), val=split(300, 2), test=split(200, 3), describe=lambda: {}
    )
    args = team_review.parse_args(["--seeds", "0", "--reviews", "600"])
    result = json.loads(json.dumps(team_review.run(data, args)))

    arms = result["per_seed"][0]["arms"]
    assert all(598 <= arm["reviews"] <= 600 for arm in arms.values())  # a pair may leave 2 over
    assert arms["round_robin"]["items"] == 600
    assert arms["overlap_gold_weighted"]["gold_reviews"] == 60  # goldRate 0.1: 20 items x 3
    assert arms["pairs_best_settles"]["items"] < 320  # two or three reviews an item
    round_robin = arms["round_robin"]["labels_correct"]
    assert 0.78 < round_robin < 0.92  # the team's mean accuracy is 0.85
    assert arms["pairs_best_settles"]["labels_correct"] > round_robin + 0.05
    assert arms["round_robin"]["dawid_skene_worst_error"] is None  # no overlap: no estimate
    for name in ("pairs_best_settles", "overlap30_weighted"):
        for reviewer in arms[name]["reviewers"].values():
            assert abs(reviewer["dawid_skene"] - reviewer["true_accuracy"]) < 0.1, name

    # seed 0's arms (a) and (b) replayed through the app: its samples carry the simulated labels
    replay = result["per_seed"][0]["replay"]
    assert sorted(replay) == ["pairs_best_settles", "round_robin"]
    for name, replayed in replay.items():
        assert replayed["items"] == replayed["samples"] == arms[name]["items"], name
        assert replayed["agreement_with_simulation"] == 1.0 and replayed["disagreements"] == 0
        assert replayed["labels_correct"] == arms[name]["labels_correct"], name
        assert replayed["history_actors_right"] == 1.0 and not replayed["requests_failed"]
    assert replay["round_robin"]["history_by_via"] == {"review": 600}
    pairs = replay["pairs_best_settles"]
    assert 0 < pairs["disputes"] == pairs["simulated_disputes"]
    assert pairs["history_by_via"] == {
        "consensus": pairs["items"] - pairs["disputes"],
        "dispute": pairs["disputes"],
    }

    rows = report.b11_rows(result)
    assert len(rows) == 1 + 4 + 1 and rows[0][3] in ("pass", "**fail**")
    assert rows[0][3] == ("pass" if result["targets"]["label_gain_met"] else "**fail**")
    assert rows[-1][0].startswith("B11 seed 0's votes") and rows[-1][3] == "pass"


def test_b11_wrong_labels_go_to_the_classes_a_classifier_confuses() -> None:
    from bench import team_review

    rng = np.random.default_rng(0)
    classes = ["a", "b", "c"]
    labels = np.asarray(classes)[rng.integers(0, 3, 300)]
    centres = {"a": [1.0, 0.0], "b": [0.9, 0.3], "c": [-1.0, 0.0]}  # a and b look alike
    vectors = np.asarray([centres[x] for x in labels]) + rng.normal(scale=0.15, size=(300, 2))

    errors = team_review.lookalike_errors(vectors, labels, classes)

    assert np.allclose(errors.sum(axis=1), 1.0) and np.allclose(np.diag(errors), 0.0)
    assert errors[0, 1] > 0.9 and errors[1, 0] > 0.9  # a's mistakes are b's, and back
    assert errors[2].tolist() == [0.5, 0.5, 0.0]  # c is never confused: spread evenly

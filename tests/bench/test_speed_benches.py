"""The embedding speed benches: CPU precision harness, the GPU script's report, their rows on the
Performance page."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import cpu_precision, gpu_bench
from bench.speed_report import cpu_precision_rows, gpu_rows


def test_cpu_precision_measures_every_precision_against_fp32_in_one_run(tmp_path: Path) -> None:
    out = tmp_path / "cpu_precision.json"
    argv = ["--backbones", "tiny-clip", "--repeats", "2", "--calls", "1"]
    assert cpu_precision.main([*argv, "--cosine-images", "8", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    entry = report["backbones"][0]
    assert set(entry["results"]) == {"fp32", "bf16", "int8", "onnx-fp32", "onnx-int8"}
    assert entry["results"]["fp32"]["ratio_rounds"] == [1.0, 1.0]
    for result in entry["results"].values():
        assert len(result["images_per_s_rounds"]) == 2 and result["images_per_s"] > 0
        assert result["min_cosine"] >= 0.99  # tiny-clip keeps its vectors in every precision
    assert entry["auto"]["serves"] in entry["results"]
    assert entry["auto"]["requested_runtime"] == "auto"
    assert report["cpu"]["cores"] >= 1 and "cpu_flags" in report["cpu"]
    (row,) = cpu_precision_rows(report)
    assert row[0].startswith("CPU images/s of the fastest precision") and row[2] == ">= 2x"
    assert row[3] in {"pass", "**fail**"}


def test_the_gpu_report_names_the_card_its_bound_and_the_targets() -> None:
    assert gpu_bench.peak_for("NVIDIA H100 80GB HBM3") == {"bf16": 989.0, "fp32": 67.0}
    assert gpu_bench.peak_for("NVIDIA H100 PCIe")["bf16"] == 756.0  # type: ignore[index]
    assert gpu_bench.peak_for("Intel Xeon") is None
    raw = [
        {"precision": "bf16", "build": "eager", "batch": 256, "images_per_s": 20_000.0},
        {"precision": "bf16", "build": "compile", "batch": 256, "images_per_s": 30_000.0},
        {"precision": "fp32", "build": "eager", "batch": 256, "error": "RuntimeError: x"},
    ]
    measured = {"images_per_s": 6000.0, "latency_ms_p50": 600.0, "latency_ms_p99": 900.0}
    report = {
        "device": "cuda",
        "device_name": "NVIDIA H100 80GB HBM3",
        "measured_at": "2026-11-27 14:00 UTC",
        "peak_tflops": {"bf16": 989.0, "fp32": 67.0},
        "gflop_per_image": gpu_bench.GFLOP_PER_IMAGE,
        "torch": "2.11.0",
        "raw": {"rows": raw, "bf16_cosine_to_fp32": {"min": 0.9995}},
        "service": {
            "clients": 64,
            "service_precision": "bf16",
            "service_batch": 256,
            "batch": {**measured, "images_per_request": 64, "errors": 0, "ratio_to_raw": 0.2},
        },
    }
    rows = gpu_rows(report)
    assert len(rows) == 2
    assert "30,000 img/s, 26.8% of the 112,132 img/s bound" in rows[0][1]
    assert rows[0][2:] == (">= 25,000 img/s on an H100", "pass")
    assert rows[1][0].startswith("GPU service batch invoke, 64 clients x 64")
    assert rows[1][3] == "pass"
    lines = gpu_bench.summary(report)
    assert any("of the bound" in line for line in lines)


def test_the_gpu_bench_times_a_fine_tune_on_its_device() -> None:
    import argparse

    import torch

    args = argparse.Namespace(finetune_blocks=2, finetune_labels=30, finetune_epochs=1)
    result = gpu_bench.finetune_phase(args, torch.device("cpu"))

    assert (result["fitted_images"], result["views"], result["epochs"]) == (24, 2, 1)
    assert result["trunk_images_per_s"] > 0 and result["tuning_seconds"] > 0
    per_1000 = 1000 * result["epoch_seconds"][0] / 30
    assert result["epoch_seconds_per_1000_labelled"] == pytest.approx(per_1000)
    report = {"peak_tflops": None, "device_name": "cpu", "device": "cpu", "torch": "x",
              "measured_at": "now", "raw": {"rows": []}, "service": {}, "finetune": result}  # fmt: skip
    lines = gpu_bench.summary(report)
    assert any("per epoch per 1,000 labelled images" in line for line in lines)
    (row,) = gpu_rows(report)
    assert row[0].startswith("GPU B13 fine-tune, timings only") and "s per epoch" in row[1]

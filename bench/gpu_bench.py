"""GPU bench: the raw ViT-B-32 image tower and the running service on one accelerator (or the CPU).

Run by ``bench/gpu.sh`` on the lent GPU machine, in one go of at most ``--deadline-s`` seconds:

* raw tower: ViT-B-32 at seeded random init (the real compute), batches of ``--batches`` images
  already on the device, in fp32 and bf16, eager / TorchScript (what the service serves) /
  ``torch.compile``, as images/s and as a share of the card's 8.82 GFLOP/image bound; bf16's
  per-image cosine to fp32 on photo-like probe images;
* fine-tune: B13's recipe at ``--finetune-blocks`` on EfficientNet-Lite0 at random init, trained
  on the device (timings only: the trunk's images/s, seconds per epoch per 1,000 labelled
  images, :func:`finetune_phase`);
* service: ``winnow serve`` with the same weights (``--batch-size auto --precision auto``), fed
  224 px JPEGs as data URIs by ``--clients`` concurrent clients through single and batch invoke:
  images/s, p50/p99 latency, and the ratio to the raw tower at the service's batch and precision.

Writes ``<out>/<name>.json`` and ``<out>/<name>.txt``. ``--quick`` shrinks everything so the same
script finishes in minutes on 2 CPU cores (where there is no GPU bound to compare with).

Usage (from the repository root)::

    bench/gpu.sh                                # on the GPU machine, OUT=$OUT
    PYTHON=.venv/bin/python bench/gpu.sh --quick --out bench/results --name gpu_script_cpu
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.results_file import write_result  # noqa: E402

GFLOP_PER_IMAGE = 8.82  # ViT-B-32 image tower at 224 px
# Dense peak TFLOP/s (bf16 on tensor cores; fp32 without), by a part of the device name; the
# first that matches counts, so the specific names come first.
PEAK_TFLOPS = (
    ("H100 PCIe", {"bf16": 756.0, "fp32": 51.0}),
    ("H100 NVL", {"bf16": 835.0, "fp32": 60.0}),
    ("H100", {"bf16": 989.0, "fp32": 67.0}),
    ("H200", {"bf16": 989.0, "fp32": 67.0}),
    ("A100", {"bf16": 312.0, "fp32": 19.5}),
)
ARCH = "ViT-B-32"


def peak_for(device_name: str) -> dict[str, float] | None:
    return next((peak for part, peak in PEAK_TFLOPS if part in device_name), None)


def time_tower(tower: Any, batch: Any, device: Any, min_seconds: float) -> float:
    """Images/s of ``tower`` on ``batch`` over at least ``min_seconds`` (after warm-up runs: 3 on
    a GPU, where compilation and autotuning happen then; 2 on CPU, TorchScript's optimising run)."""
    import torch

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    with torch.inference_mode():
        for _ in range(3 if device.type == "cuda" else 2):
            tower(batch)
        sync()
        runs, started = 0, time.perf_counter()
        while True:
            tower(batch)
            runs += 1
            if runs % 4 == 0 or device.type != "cuda":
                sync()
                if time.perf_counter() - started >= min_seconds:
                    break
        sync()
        return runs * batch.shape[0] / (time.perf_counter() - started)


def raw_towers(args: argparse.Namespace, device: Any, deadline: float) -> dict[str, Any]:
    """Images/s per (precision, build, batch), and bf16's per-image cosine to fp32."""
    import open_clip
    import torch

    from embeddings.backbone import frozen_graph
    from embeddings.clip_backbone import _ImageTower
    from embeddings.precision import convert, probe_batch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model, _, transform = open_clip.create_model_and_transforms(ARCH, device=device)
    module = _ImageTower(model.eval().requires_grad_(False)).eval()
    rows: list[dict[str, Any]] = []
    probe = probe_batch(transform, 64, device)
    with torch.inference_mode():
        reference = module(probe).float()
        halved = convert(module, "bf16", device)(probe).float()
    cosines = torch.nn.functional.cosine_similarity(halved, reference)
    builds: dict[str, Any] = {
        "eager": lambda m, batch: m,
        "torchscript": lambda m, batch: frozen_graph(m, batch[:1]),  # as the service serves it
    }
    if args.compile:  # last: the slowest to build, so the deadline cuts these first
        builds["compile"] = lambda m, batch: torch.compile(m, dynamic=False)
    converted = {precision: convert(module, precision, device) for precision in ("bf16", "fp32")}
    for build, make in builds.items():
        for precision, tower_module in converted.items():
            for size in args.batches:
                row: dict[str, Any] = {"precision": precision, "build": build, "batch": size}
                rows.append(row)
                if time.monotonic() > deadline:
                    row["skipped"] = "time budget"
                    continue
                batch = torch.randn(size, 3, 224, 224, device=device)
                started = time.monotonic()
                try:
                    tower = make(tower_module, batch)
                    row["images_per_s"] = time_tower(tower, batch, device, args.min_seconds)
                except Exception as error:  # report and go on: one build failing is a finding
                    row["error"] = f"{type(error).__name__}: {str(error)[:300]}"
                row["seconds_incl_build"] = time.monotonic() - started
                print(json.dumps(row), flush=True)
    return {
        "arch": ARCH,
        "weights": "seeded random init (torch.manual_seed(0))",
        "rows": rows,
        "bf16_cosine_to_fp32": {
            "images": int(probe.shape[0]),
            "distinct": 8,
            "min": float(cosines.min()),
            "mean": float(cosines.mean()),
        },
    }


def finetune_phase(args: argparse.Namespace, device: Any) -> dict[str, Any]:
    """B13's fine-tune as timings only: EfficientNet-Lite0 at random init (timm's network; the
    weight package stays behind) cut before its last ``--finetune-blocks`` blocks, the
    service's recipe (2 views, label smoothing 0.1, mixup 0.4) on ``--finetune-labels``
    synthetic images, 80% fitted as after the guard's holdout: the trunk's images/s and the
    seconds an epoch takes per 1,000 labelled images (``fine_tune`` on ``device``)."""
    import numpy as np
    import timm
    import torch

    from embeddings.tuning import split_efficientnet, trunk_activations
    from learner.finetune import TuneConfig, fine_tune

    torch.manual_seed(0)
    network = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=0)
    tower = split_efficientnet(network.eval(), args.finetune_blocks, "efficientnet-lite0")
    epochs = args.finetune_epochs
    config = TuneConfig(
        tuned_blocks=args.finetune_blocks,
        label_smoothing=0.1,
        mixup=0.4,
        max_epochs=epochs,
        patience=epochs,  # every epoch runs: these are timings
    )
    fitted = int(0.8 * args.finetune_labels)
    trunk = tower.trunk.to(device)
    parts, started = [], time.monotonic()
    for start in range(0, fitted * (1 + config.views), 64):
        size = min(64, fitted * (1 + config.views) - start)
        pixels = torch.randn(size, 3, 224, 224, device=device)
        parts.append(trunk_activations(trunk, [pixels]).cpu())
    trunk_rate = fitted * (1 + config.views) / (time.monotonic() - started)
    originals, *views = torch.cat(parts).split(fitted)
    labels = np.asarray([str(i % 10) for i in range(fitted)])
    tuned = fine_tune(tower.tail, originals, views, labels, config, device=device)
    epoch_seconds = [epoch["seconds"] for epoch in tuned.epochs[1:]]
    result = {
        "tuned_blocks": args.finetune_blocks,
        "labelled": args.finetune_labels,
        "fitted_images": fitted,
        "views": config.views,
        "epochs": len(epoch_seconds),
        "trunk_images_per_s": trunk_rate,
        "epoch_seconds": epoch_seconds,
        "epoch_seconds_per_1000_labelled": 1000 * min(epoch_seconds) / args.finetune_labels,
        "tuning_seconds": tuned.seconds,
    }
    print("finetune", json.dumps(result), flush=True)
    return result


def service_phases(args: argparse.Namespace, deadline: float) -> dict[str, Any]:
    """The running service through single and batch invoke; images/s and latency."""
    import httpx

    from bench import serving

    served, name = serving.served_backbone(f"clip:{ARCH}/random-init")
    images = serving.make_images(args.images + 100, 224, 0)
    stream, training = images[: args.images], images[args.images :]
    flags, headers = serving.auth_headers()
    flags += ["--queue-limit", str(max(4096, args.clients * args.batch_images * 2))]
    flags += ["--max-batch-invoke", str(args.batch_images), "--precision", "auto"]
    flags += ["--log-level", "info"]  # the tower's precision choice is logged at info
    service_args = argparse.Namespace(
        backbone=served, batch_size="auto", clients=args.clients, encoder_threads=0,
        start_timeout=900.0 if args.quick else 300.0,
    )  # fmt: skip
    uris = [serving.data_uri(data) for data, _ in stream]
    singles = [json.dumps({"data": uri}).encode() for uri in uris]
    batches = [
        json.dumps(
            {"items": [{"data": uris[(i + j) % len(uris)]} for j in range(args.batch_images)]}
        ).encode()
        for i in range(0, len(uris), 7)
    ]
    result: dict[str, Any] = {"backbone": name, "clients": args.clients}
    with tempfile.TemporaryDirectory() as scratch:
        data_dir = Path(scratch) / "data"
        with serving.running_service(service_args, data_dir, flags) as service:
            with httpx.Client(base_url=service.url, headers=headers, timeout=600) as http:
                function_id = serving.prepare_function(http, training, per_label=3)
            phases = (
                ("single", f"/v1/functions/{function_id}/invoke?capture=false", singles, 1),
                ("batch", f"/v1/functions/{function_id}/invoke/batch?capture=false", batches,
                 args.batch_images),
            )  # fmt: skip
            for phase, path, bodies, per_request in phases:
                if time.monotonic() > deadline:
                    result[phase] = {"skipped": "time budget"}
                    continue
                requests = args.requests if per_request == 1 else args.batch_requests
                measured = serving.drive(
                    service.url,
                    path,
                    bodies,
                    clients=args.clients,
                    requests=requests,
                    warmup=max(args.clients, requests // 5),
                    headers=headers,
                    cpu_seconds=service.cpu_seconds,
                    images_per_request=per_request,
                )
                result[phase] = measured
                print(phase, json.dumps(measured), flush=True)
        log = (data_dir.parent / "serve.log").read_text(errors="replace")
    chosen = re.search(r"image tower runs in (\w+) \(measured at batch (\d+)[^\n]*", log)
    result["service_precision"] = chosen.group(1) if chosen else "fp32 (no auto probe logged)"
    result["service_batch"] = int(chosen.group(2)) if chosen else None
    result["service_precision_log"] = chosen.group(0) if chosen else None
    return result


def summary(report: dict[str, Any]) -> list[str]:
    peak = report["peak_tflops"]
    bound = peak["bf16"] * 1e12 / (GFLOP_PER_IMAGE * 1e9) if peak else None
    lines = [
        f"GPU bench on {report['device_name']} ({report['device']}), torch {report['torch']}, "
        f"{report['measured_at']}",
        f"bound: {bound:,.0f} images/s ({GFLOP_PER_IMAGE} GFLOP/image at {peak['bf16']} TFLOP/s "
        "dense bf16)"
        if bound
        else "bound: unknown for this device",
    ]
    raw = report.get("raw", {})
    for row in raw.get("rows", []):
        rate = row.get("images_per_s")
        text = (
            row.get("skipped")
            or row.get("error")
            or f"{rate:,.{0 if rate >= 100 else 2}f} images/s"
        )
        if rate and bound:
            text += f" ({rate / bound:.1%} of the bound)"
        lines.append(f"  raw {row['precision']:4} {row['build']:11} batch {row['batch']:3}: {text}")
    if raw.get("bf16_cosine_to_fp32"):
        cosine = raw["bf16_cosine_to_fp32"]
        lines.append(f"  bf16 per-image cosine to fp32: min {cosine['min']:.5f}")
    service = report.get("service", {})
    for phase in ("single", "batch"):
        measured = service.get(phase)
        if not measured or "images_per_s" not in measured:
            continue
        lines.append(
            f"  service {phase} invoke ({service['clients']} clients, "
            f"{measured['images_per_request']} image(s)/request): "
            f"{measured['images_per_s']:,.0f} images/s, p50 {measured['latency_ms_p50']:.0f} ms, "
            f"p99 {measured['latency_ms_p99']:.0f} ms, errors {measured['errors']}, "
            f"ratio to raw {measured.get('ratio_to_raw', float('nan')):.2f}"
        )
    if service.get("service_precision_log"):
        lines.append(f"  service: {service['service_precision_log']}")
    tune = report.get("finetune", {})
    if "epoch_seconds_per_1000_labelled" in tune:
        lines.append(
            f"  fine-tune (efficientnet-lite0 at random init, last {tune['tuned_blocks']} blocks, "
            f"{tune['labelled']:,} labels, {tune['views']} views): "
            f"{tune['epoch_seconds_per_1000_labelled']:.1f} s per epoch per 1,000 labelled "
            f"images; trunk {tune['trunk_images_per_s']:,.0f} images/s"
        )
    elif tune:
        lines.append(f"  fine-tune: {tune.get('skipped') or tune.get('error')}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", ROOT / "bench")))
    parser.add_argument("--name", default="gpu")
    parser.add_argument("--quick", action="store_true", help="small counts (CPU, harness check)")
    parser.add_argument("--batches", default=None, help="comma-separated raw batch sizes")
    parser.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also time torch.compile (default: yes, but not with --quick)",
    )
    parser.add_argument("--min-seconds", type=float, default=None, help="per raw measurement")
    parser.add_argument("--clients", type=int, default=None)
    parser.add_argument("--requests", type=int, default=None, help="timed single invokes")
    parser.add_argument("--batch-requests", type=int, default=None, help="timed batch invokes")
    parser.add_argument("--batch-images", type=int, default=64, help="images per batch invoke")
    parser.add_argument("--images", type=int, default=256, help="distinct JPEGs in the stream")
    parser.add_argument("--deadline-s", type=float, default=420.0, help="whole run, roughly")
    parser.add_argument("--raw-share", type=float, default=0.5, help="of the deadline, raw part")
    parser.add_argument("--finetune-blocks", type=int, default=13, help="B13's tuned blocks")
    parser.add_argument("--finetune-labels", type=int, default=None, help="B13's labelled images")
    parser.add_argument("--finetune-epochs", type=int, default=None)
    args = parser.parse_args(argv)
    quick = {"batches": "1,4", "min_seconds": 0.5, "clients": 8, "requests": 24}
    quick.update(finetune_labels=30, finetune_epochs=1)
    full = {"batches": "1,64,256", "min_seconds": 2.0, "clients": 64, "requests": 4000}
    full.update(finetune_labels=2000, finetune_epochs=2)
    for key, value in (quick if args.quick else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.compile is None:
        args.compile = not args.quick
    if args.batch_requests is None:
        args.batch_requests = 6 if args.quick else 300
    if args.quick:
        args.batch_images = min(args.batch_images, 8)
        args.images = min(args.images, 64)
    args.batches = [int(size) for size in str(args.batches).split(",")]

    import torch

    started = time.monotonic()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    report: dict[str, Any] = {
        "device": str(device),
        "device_name": name or platform.machine(),
        "peak_tflops": peak_for(name) if device.type == "cuda" else None,
        "gflop_per_image": GFLOP_PER_IMAGE,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu_cores": os.cpu_count(),
        "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "config": {key: value for key, value in vars(args).items() if key != "out"},
    }
    report["raw"] = raw_towers(args, device, started + args.raw_share * args.deadline_s)
    args.out.mkdir(parents=True, exist_ok=True)
    write_result(args.out / f"{args.name}.json", report)  # what the raw part found, in any case
    try:
        report["finetune"] = finetune_phase(args, device)
    except Exception as error:  # report and go on to the service
        report["finetune"] = {"error": f"{type(error).__name__}: {str(error)[:300]}"}
    write_result(args.out / f"{args.name}.json", report)
    report["service"] = service_phases(args, started + args.deadline_s - 30)
    raw_rates = {
        (row["precision"], row["build"], row["batch"]): row.get("images_per_s")
        for row in report["raw"]["rows"]
    }
    precision = report["service"]["service_precision"].split()[0]
    batch = report["service"]["service_batch"] or max(args.batches)
    baseline = raw_rates.get((precision, "torchscript", batch)) or max(
        (rate for rate in raw_rates.values() if rate), default=None
    )
    report["service"]["raw_baseline_images_per_s"] = baseline
    for phase in ("single", "batch"):
        measured = report["service"].get(phase, {})
        if baseline and "images_per_s" in measured:
            measured["ratio_to_raw"] = measured["images_per_s"] / baseline
    report["seconds"] = time.monotonic() - started
    lines = summary(report)
    write_result(args.out / f"{args.name}.json", report)
    (args.out / f"{args.name}.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

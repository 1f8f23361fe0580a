"""Performance page rows for the embedding speed benches: CPU precision and the GPU script.

``bench/report.py`` lists these builders in its SECTIONS; they read the JSON that
``python -m bench.cpu_precision`` and ``bench/gpu.sh`` (``bench/gpu_bench.py``) write.
"""

from __future__ import annotations

from typing import Any

Row = tuple[str, str, str, str]  # figure, measured, target, verdict

H100_RAW_BF16_TARGET = 25_000  # images/s, the target for the raw bf16 tower on an H100
H100_SERVICE_BATCH_TARGET = 5_000  # images/s end to end through batch invoke on an H100


def _verdict(passed: bool | None) -> str:
    return "—" if passed is None else ("pass" if passed else "**fail**")


def cpu_label(report: dict[str, Any]) -> str:
    """The instruction sets of the result's CPU, for a row's label (empty if not recorded)."""
    flags = (report.get("cpu") or {}).get("cpu_flags")
    return f", on a CPU with {' '.join(flags)}" if flags else ""


def cpu_precision_rows(report: dict[str, Any]) -> list[Row]:
    """Per backbone: the fastest precision that keeps the vectors, against fp32 in the same run;
    then B1's accuracy with EfficientNet-Lite0 in that precision."""
    config, targets = report["config"], report["targets"]
    rows: list[Row] = []
    for entry in report["backbones"]:
        results = entry["results"]
        keeping = {
            name: r for name, r in results.items() if r["min_cosine"] >= targets["min_cosine"]
        }
        best = max(keeping, key=lambda name: keeping[name]["ratio_to_fp32"])
        chosen, fp32 = keeping[best], results["fp32"]
        spread = chosen["ratio_rounds"]
        target = entry.get("target_speedup", targets["speedup"])  # per backbone since issue 32
        runtime = entry["auto"].get("requested_runtime", "torch")
        auto_asked = "`--precision auto`" + (
            f" `--runtime {runtime}`" if runtime != "torch" else ""
        )
        others = "; ".join(
            f"{name} x{r['ratio_to_fp32']:.2f} (cosine >= {r['min_cosine']:.4f})"
            for name, r in results.items()
            if name not in ("fp32", best)
        )
        rows.append(
            (
                f"CPU images/s of the fastest precision keeping per-image cosine >= "
                f"{targets['min_cosine']} / fp32 ({entry['backbone']}, batch {config['batch']}, "
                f"{config['threads']} threads{cpu_label(report)}, median of {config['repeats']} "
                "interleaved rounds)",
                f"{best} x{chosen['ratio_to_fp32']:.2f}, rounds {min(spread):.2f}-"
                f"{max(spread):.2f} ({chosen['images_per_s']:.1f} vs "
                f"{fp32['images_per_s']:.1f} img/s, cosine >= {chosen['min_cosine']:.4f}"
                f"{'; ' + others if others else ''}); {auto_asked} chose "
                f"{entry['auto'].get('serves', entry['auto']['precision'])}",
                f">= {target:g}x",
                _verdict(chosen["ratio_to_fp32"] >= target),
            )
        )
    accuracy = report.get("accuracy")
    if accuracy:
        low = accuracy["precision"]
        sets = accuracy.get("per_set", [])
        spread = ", ".join(f"{100 * (s[low] - s['fp32']):+.1f}" for s in sets)
        rows.append(
            (
                f"B1 head test accuracy, EfficientNet-Lite0 vectors in {low} vs fp32 "
                f"({accuracy['train']:,} train / {accuracy['test']:,} test Fashion-MNIST images"
                + (f", median of {len(sets)} disjoint training sets)" if sets else ")"),
                f"{accuracy[low]['accuracy']:.1%} vs {accuracy['fp32']['accuracy']:.1%} "
                f"({accuracy['difference_pt']:+.2f} pt"
                + (f", per set {spread}" if sets else "")
                + (
                    f"; the fp32 set's head refitted on {low} vectors "
                    f"{accuracy['same_head_difference_pt']:+.2f} pt"
                    if "same_head_difference_pt" in accuracy
                    else ""
                )
                + f"; the two heads agree on {accuracy['prediction_agreement']:.1%} of test "
                "images)",
                f"within {targets['max_accuracy_drop_pt']} pt",
                _verdict(accuracy["passed"]),
            )
        )
    return rows


def gpu_rows(report: dict[str, Any]) -> list[Row]:
    """The raw ViT-B-32 tower per precision and batch (best build), then the service."""
    where = f"{report['device_name']}, {report['measured_at']}"
    peak = report.get("peak_tflops")
    bound = peak["bf16"] * 1e3 / report["gflop_per_image"] if peak else None
    is_h100 = "H100" in report["device_name"]
    rows: list[Row] = []
    best: dict[tuple[str, int], dict[str, Any]] = {}
    for row in report["raw"]["rows"]:
        key = (row["precision"], row["batch"])
        if row.get("images_per_s") and row["images_per_s"] > best.get(key, {}).get(
            "images_per_s", 0.0
        ):
            best[key] = row
    for (precision, batch), row in sorted(best.items()):
        rate = row["images_per_s"]
        builds = ", ".join(
            f"{other['build']} {other['images_per_s']:,.0f}"
            for other in report["raw"]["rows"]
            if other["precision"] == precision
            and other["batch"] == batch
            and other.get("images_per_s")
        )
        share = f", {rate / bound:.1%} of the {bound:,.0f} img/s bound" if bound else ""
        is_target = is_h100 and precision == "bf16" and batch == max(b for _, b in best)
        rows.append(
            (
                f"GPU raw ViT-B-32 image tower, {precision}, batch {batch} ({where})",
                f"{rate:,.0f} img/s{share} (by build: {builds})",
                f">= {H100_RAW_BF16_TARGET:,} img/s on an H100" if is_target else "—",
                _verdict(rate >= H100_RAW_BF16_TARGET) if is_target else "—",
            )
        )
    service = report["service"]
    for phase, label in (("batch", "batch invoke"), ("single", "single invoke")):
        measured = service.get(phase, {})
        if "images_per_s" not in measured:
            continue
        is_target = is_h100 and phase == "batch"
        rows.append(
            (
                f"GPU service {label}, {service['clients']} clients x "
                f"{measured['images_per_request']} 224 px JPEG(s) ({where}; tower "
                f"{service['service_precision']}, batch {service['service_batch']})",
                f"{measured['images_per_s']:,.0f} img/s, p50 / p99 "
                f"{measured['latency_ms_p50']:.0f} / {measured['latency_ms_p99']:.0f} ms, "
                f"{measured.get('ratio_to_raw', float('nan')):.2f} of the raw tower, "
                f"{measured['errors']} errors",
                f">= {H100_SERVICE_BATCH_TARGET:,} img/s on an H100" if is_target else "—",
                _verdict(measured["images_per_s"] >= H100_SERVICE_BATCH_TARGET)
                if is_target
                else "—",
            )
        )
    tune = report.get("finetune", {})
    if "epoch_seconds_per_1000_labelled" in tune:
        rows.append(
            (
                f"GPU B13 fine-tune, timings only (efficientnet-lite0 at random init, last "
                f"{tune['tuned_blocks']} blocks, {tune['labelled']:,} labels, {tune['views']} "
                f"views; {where})",
                f"{tune['epoch_seconds_per_1000_labelled']:.1f} s per epoch per 1,000 labelled "
                f"images; trunk {tune['trunk_images_per_s']:,.0f} img/s",
                "—",
                "—",
            )
        )
    return rows

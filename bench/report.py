"""Regenerate the docs page ``docs/performance.md`` from ``bench/results/*.json``.

The whole page is generated (``tests/bench/test_bench.py`` checks it matches the committed results).
Each figure is shown with its target and whether it was met, so the docs never claim more than the
last run showed.

Usage (from the repository root)::

    python -m bench.report            # after python -m bench.run, which calls it itself
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.speed_report import cpu_label, cpu_precision_rows, gpu_rows

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
PAGE = ROOT / "docs" / "performance.md"

Row = tuple[str, str, str, str]  # figure, measured, target, verdict


def load(name: str) -> dict[str, Any] | None:
    path = RESULTS / f"{name}.json"
    try:
        return json.loads(path.read_text())  # type: ignore[no-any-return]
    except (OSError, ValueError):
        return None


def verdict(passed: bool | None) -> str:
    return "—" if passed is None else ("pass" if passed else "**fail**")


def pct(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value * 100:.{digits}f}%"


def mean_of(value: Any) -> float | None:
    """A number, or the ``mean`` of a summary dict, or None."""
    if isinstance(value, dict):
        value = value.get("mean")
    return float(value) if isinstance(value, int | float) else None


def b1_rows(report: dict[str, Any]) -> list[Row]:
    summary = report.get("summary", {})
    targets = summary.get("targets", {})
    ratio = summary.get("headline_ratio", {})
    budget = ratio.get("budget", "N")
    seeds = len(ratio.get("per_seed", [])) or "?"
    per_seed = ratio.get("max")
    rows: list[Row] = [
        (
            f"B1 labels winnow needs to match random capture at {budget} labels, "
            f"as a share of {budget} (worst of {seeds} seeds; of mean curves)",
            f"{per_seed:.2f}; {_num(mean_of(ratio.get('of_mean_curves')), 2)}"
            if isinstance(per_seed, int | float)
            else "not reached",
            "<= 0.5",
            verdict(targets.get("ratio_at_most_0.5")),
        ),
        (
            "B1 winnow accuracy never more than 1 pt below random at any budget",
            _gap_text(summary.get("winnow_minus_random", {})),
            ">= -1 pt",
            verdict(targets.get("never_1pt_below_random")),
        ),
        (
            "B1 best winnow accuracy with <= 10% of the pool labelled vs whole pool",
            f"{pct(mean_of(summary.get('winnow_best_at_10pct_pool')))} vs "
            f"{pct(mean_of(report.get('whole_pool', {}).get('accuracy')))}",
            "within 1 pt",
            verdict(targets.get("within_1pt_of_whole_pool_at_10pct")),
        ),
    ]
    rows += _traffic_target_rows(report)
    references = {
        name: found
        for name, found in summary.get("ratio_by_strategy", {}).items()
        if name not in ("winnow", "random_traffic")
    }
    if references:
        names = {"margin": "uncertainty-only capture", "pool_margin": "offline pool-based margin"}
        rows.append(
            (
                "B1 the same share (of mean curves) for the baselines: "
                + ", ".join(names.get(name, name) for name in references),
                "; ".join(
                    _num(mean_of(found.get("of_mean_curves")), 2) for found in references.values()
                ),
                "—",
                "—",
            )
        )
    b1b = report.get("b1b", {})
    if b1b:
        rows.append(
            (
                "B1b share of the head's test errors the review queue catches at ~10% capture",
                f"{pct(mean_of(b1b.get('test_errors_captured')))} "
                f"(capture rate {pct(mean_of(b1b.get('test_capture_rate')))}"
                + _catch_references(b1b)
                + ")",
                ">= 50%",
                verdict(_at_least(mean_of(b1b.get("test_errors_captured")), 0.5)),
            )
        )
        rows.append(
            (
                "B1b expected calibration error before -> after temperature scaling",
                f"{_num(mean_of(b1b.get('ece_before_temperature')), 3)} -> "
                f"{_num(mean_of(b1b.get('ece_after_temperature')), 3)}"
                + _calibration_references(b1b),
                "<= 0.020 after",
                verdict(_at_most(mean_of(b1b.get("ece_after_temperature")), 0.02)),
            )
        )
    return rows


def _traffic_target_rows(report: dict[str, Any]) -> list[Row]:
    """Issue 30's B1 targets, in runs that report them (winnow learning from traffic)."""
    summary = report.get("summary", {})
    targets, gaps = summary.get("targets", {}), summary.get("winnow_minus_random", {})
    if "8pt_above_random_at_20_and_40" not in targets:
        return []
    small = [b for b in ("20", "40") if b in gaps]
    worst = summary.get("worst_stream_minus_random", {})
    worst_budget = min(worst, key=lambda b: worst[b]) if worst else None
    return [
        (
            "B1 winnow (capture, heads learning from traffic) minus random labels at "
            + " and ".join(small)
            + " labels (mean of seeds)",
            "; ".join(f"{gaps[b] * 100:+.1f} pt" for b in small),
            ">= +8 pt",
            verdict(targets.get("8pt_above_random_at_20_and_40")),
        ),
        (
            "B1 the single stream where winnow is furthest below random, at any budget",
            "n/a"
            if worst_budget is None
            else f"{worst[worst_budget] * 100:+.1f} pt (at {worst_budget} labels)",
            ">= -3 pt",
            verdict(targets.get("no_stream_3pt_below_random")),
        ),
        (
            "B1 winnow accuracy with 5% of the pool labelled vs whole pool",
            f"{pct(mean_of(summary.get('winnow_at_5pct_pool')))} vs "
            f"{pct(mean_of(report.get('whole_pool', {}).get('accuracy')))}",
            "within 0.5 pt",
            verdict(targets.get("within_0.5pt_of_whole_pool_at_5pct")),
        ),
    ]


def _calibration_references(b1b: dict[str, Any]) -> str:
    parts = []
    if "ece_best_temperature" in b1b:
        parts.append(
            f"with the temperature fitted on the test set itself "
            f"{_num(mean_of(b1b['ece_best_temperature']), 3)}"
        )
    if "ece_if_calibrated" in b1b:
        parts.append(
            f"a perfectly calibrated head would measure "
            f"{_num(mean_of(b1b['ece_if_calibrated']), 3)} on this test set"
        )
    return f" ({'; '.join(parts)})" if parts else ""


def _expected_if_calibrated(b1b: dict[str, Any]) -> str:
    if "test_errors_expected_if_calibrated" not in b1b:
        return ""
    return (
        " (were its confidences exactly right, its least confident inputs would be expected to "
        f"hold {pct(mean_of(b1b['test_errors_expected_if_calibrated']))})"
    )


def _second_opinion(b1b: dict[str, Any]) -> str:
    if "test_errors_in_least_second_opinion" not in b1b:
        return ""
    text = (
        ", the inputs a second model (RBF SVM, same labels) least agrees with "
        f"{pct(mean_of(b1b['test_errors_in_least_second_opinion']))}"
    )
    if "second_opinion_ms_per_input" in b1b:
        text += (
            f" (it takes {_num(mean_of(b1b['second_opinion_fit_seconds']), 0)} s to fit and "
            f"{_num(mean_of(b1b['second_opinion_ms_per_input']), 2)} ms per input, the head "
            f"{_num(mean_of(b1b['head_ms_per_input']), 2)} ms)"
        )
    return text


def _catch_references(b1b: dict[str, Any]) -> str:
    if "test_errors_in_least_margin" not in b1b:
        return ""
    return (
        f"; at that rate the head's own least-margin inputs hold "
        f"{pct(mean_of(b1b['test_errors_in_least_margin']))} of its errors"
        + _expected_if_calibrated(b1b)
        + _second_opinion(b1b)
        + ", a perfect detector "
        f"{pct(mean_of(b1b['test_errors_perfect_detector']))}"
    )


def _gap_text(gaps: dict[str, float]) -> str:
    if not gaps:
        return "n/a"
    worst = min(gaps, key=lambda b: gaps[b])
    return f"worst {gaps[worst] * 100:+.1f} pt (at {worst} labels)"


def _at_least(value: float | None, bound: float) -> bool | None:
    return None if value is None else value >= bound


def _at_most(value: float | None, bound: float) -> bool | None:
    return None if value is None else value <= bound


def _num(value: float | None, digits: int) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def b2_rows(report: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    raw = report["raw"]["images_per_s"]
    setup = f"{report['backbone']}, batch {report['batch_size']}, {report['clients']} clients"
    if report.get("precision"):  # results from before B2 ran both sides at one precision lack it
        served = report["precision"]
        if report.get("runtime", "torch") != "torch":
            served = f"{report['runtime']}-{served}"
        per_request = report.get("images_per_request", 1)
        bodies = (
            f"{report['body']} bodies"
            if per_request == 1
            else (f"{report['body']} bodies of {per_request} images to /invoke/batch")
        )
        setup += f", {served} on both sides, {bodies}{cpu_label(report)}"
    for name, label in (
        ("capture_off", "the running service, capture off"),
        ("capture_on", "the running service, capture on"),
        ("bare_http", "a bare HTTP route over the same model (`--bare`: the ceiling)"),
    ):
        phase = report["service"].get(name)
        if phase is None:
            continue
        rows.append(
            (
                f"B2 invoke throughput of {label} / raw backbone loop ({setup})",
                f"{phase['ratio']:.2f}{_round_spread(phase)} ({phase['images_per_s']:.1f} vs "
                f"{raw:.1f} img/s); "
                f"latency p50 / p99 {phase['latency_ms_p50']:.0f} / "
                f"{phase['latency_ms_p99']:.0f} ms{_one_client(phase)}{_cpu_per_image(phase)}",
                "— (not winnow)" if name == "bare_http" else f">= {report['target_ratio']}",
                "—" if name == "bare_http" else verdict(phase["passed"]),
            )
        )
    return rows


def _round_spread(phase: dict[str, Any]) -> str:
    ratios = phase.get("round_ratios") or []
    if len(ratios) < 2:
        return ""
    return f", median of {len(ratios)} rounds {min(ratios):.2f}-{max(ratios):.2f}"


def _cpu_per_image(phase: dict[str, Any]) -> str:
    service, raw = phase.get("cpu_ms_per_image"), phase.get("raw_cpu_ms_per_image")
    if service is None or raw is None:
        return ""
    clients = phase.get("client_cpu_ms_per_image")  # measured since 2026-12-07
    beside = "" if clients is None else f" (the HTTP clients beside it: {clients:.1f} ms)"
    return f"; CPU time per image {service:.1f} vs {raw:.1f} ms in the raw loop{beside}"


def _one_client(phase: dict[str, Any]) -> str:
    single = phase.get("one_client")
    if not single:
        return ""
    return (
        f" (one client alone: {single['latency_ms_p50']:.0f} / {single['latency_ms_p99']:.0f} ms)"
    )


def _sizes(name: str, key: str) -> set[int]:
    """Sizes the quick run of a bench measured (its ``--full`` rows only add the others)."""
    return {int(row[key]) for row in (load(name) or {}).get("results", [])}


def _full_mark(report: dict[str, Any]) -> str:
    return " (--full)" if report.get("config", {}).get("full") else ""


def b3_rows(report: dict[str, Any]) -> list[Row]:
    full = bool(report["config"].get("full"))
    embedding = load("embedding_time_full" if full else "embedding_time")
    skip = _sizes("capture_cost", "size") if full else set()
    embed_ms = report["config"]["embed_ms"]
    source = (
        f"{embedding['backbone']} measured: {embed_ms:.1f} ms/image"
        if embedding and abs(embedding["ms_per_image"] - embed_ms) < 1e-6
        else f"assumed {embed_ms:.0f} ms/image"
    )
    targets = {100_000: 0.02, 1_000_000: 0.05}
    min_recall = 0.95
    shape = report.get("data", {}).get("synthetic")
    if shape:
        source += (
            f"; {report['config']['clusters']} clusters of {shape['participation_ratio']:.0f} "
            "effective dimensions"
        )
    rows: list[Row] = []
    for row in report["results"]:
        if row["index"] != "auto" or row["size"] < 10_000 or row["size"] in skip:
            continue
        target = targets.get(row["size"])
        flat = next(
            (r for r in report["results"] if r["size"] == row["size"] and r["index"] == "flat"),
            None,
        )
        flat_text = f"; exact search {flat['decision_ms_median']:.1f} ms" if flat else ""
        rows.append(
            (
                f"B3{_full_mark(report)} capture decision time / embedding time at "
                f"{row['size']:,} indexed vectors "
                f"({row['structure']}; {source})",
                f"{pct(row['fraction_of_embed'])} ({row['decision_ms_median']:.2f} ms, "
                f"recall@10 {row['recall_at_10']:.3f}{flat_text})",
                f"<= {target:.0%}, recall@10 >= {min_recall}" if target else "—",
                verdict(row["fraction_of_embed"] <= target and row["recall_at_10"] >= min_recall)
                if target
                else "—",
            )
        )
    return rows


def b4_rows(report: dict[str, Any]) -> list[Row]:
    target = report["target"]
    skip = _sizes("retrain_cost", "samples") if report["config"].get("full") else set()
    rows: list[Row] = []
    for row in report["results"]:
        if row["samples"] in skip:
            continue
        is_target = row["samples"] == target["samples"]
        cv = sorted(row.get("cv_seconds", {}).items(), key=lambda item: -item[1])[:2]
        slowest = "; slowest CV: " + ", ".join(f"{k} {v:.1f} s" for k, v in cv) if cv else ""
        rows.append(
            (
                f"B4{_full_mark(report)} retrain (cross-validated model selection) on "
                f"{row['samples']:,} samples, "
                "512-d, 10 labels",
                f"{row['seconds_median']:.1f} s (out-of-fold accuracy "
                f"{row['oof_accuracy']:.2f}, chose {row['chosen']}{slowest})",
                f"<= {target['max_seconds']:.0f} s" if is_target else "—",
                verdict(row["seconds_median"] <= target["max_seconds"]) if is_target else "—",
            )
        )
    sizes = [int(row["samples"]) for row in report["results"]]
    if report.get("growth_exponent") is not None and sizes:
        rows.append(
            (
                f"B4{_full_mark(report)} growth exponent of retrain time (log-log slope over "
                f"{min(sizes):,} to {max(sizes):,} samples)",
                f"{report['growth_exponent']:.2f}",
                "—",
                "—",
            )
        )
    return rows


def b1_full_rows(report: dict[str, Any]) -> list[Row]:
    """B1 rows of a ``--full`` run, each figure marked as such with its pool size."""
    mark = f"(--full, pool {report.get('data', {}).get('pool', '?')})"
    rows: list[Row] = []
    for figure, measured, target, met in b1_rows(report):
        name, rest = figure.split(" ", 1)
        rows.append((f"{name} {mark} {rest}", measured, target, met))
    return rows


def _spread(summary: dict[str, Any] | None, digits: int = 2) -> str:
    """``mean ± std`` of a per-seed summary."""
    if not summary:
        return "n/a"
    return f"{summary['mean']:.{digits}f} ± {summary['std']:.{digits}f}"


def b5_rows(report: dict[str, Any]) -> list[Row]:
    accuracy = report["summary"]["accuracy"]
    gaps = report["summary"]["winnow_minus_random"]
    seeds = len(report.get("config", {}).get("seeds", [])) or "?"
    pool = report.get("data", {}).get("pool", "?")

    def cell(name: str, budget: str) -> str:
        value = accuracy[name][budget]
        return f"{value['mean'] * 100:.1f} ± {value['std'] * 100:.1f}"

    rows: list[Row] = []
    for budget in accuracy["winnow"]:
        target = ">= +5 pt" if budget in ("10", "20") else ">= +0 pt"
        bound = 0.05 if budget in ("10", "20") else 0.0
        rows.append(
            (
                f"B5 cold start: test accuracy with the first {budget} labels from winnow's queue "
                f"(no labels at start; {pool}-image stream, {seeds} seeds, mean ± std) vs the "
                "first ones of a random stream (offline TypiClust over the whole pool, reference)",
                f"{cell('winnow', budget)}% vs {cell('random', budget)}% "
                f"({gaps[budget] * 100:+.1f} pt; {cell('typiclust_offline', budget)}%)",
                target,
                verdict(gaps[budget] >= bound),
            )
        )
    rules = report["rules"]
    rows.append(
        (
            f"B5 capture rule with {rules['examples']} example images of one class in traffic of "
            f"all classes, at its default similarity {rules['similarity']}: precision; recall "
            f"(every class x {seeds} seeds, mean ± std)",
            f"{_spread(rules['precision'])}; {_spread(rules['recall'])}",
            ">= 0.9; >= 0.5",
            verdict(all(rules["targets"].values())),
        )
    )
    return rows


def b6_rows(report: dict[str, Any]) -> list[Row]:
    modes = report["modes"]
    names = {"uniform": "random flips", "lookalike": "look-alike flips"}
    seeds = len(report.get("config", {}).get("seeds", [])) or "?"
    targets = report.get("targets", {})
    rows: list[Row] = []
    for mode, name in names.items():
        s = modes[mode]["summary"]
        rows.append(
            (
                f"B6 label errors, 10% {name}: F1 of winnow's suspects vs cleanlab "
                f"`find_label_issues` on the same out-of-fold probabilities (2,000 Fashion-MNIST "
                f"samples, {seeds} seeds, mean ± std)",
                f"{_spread(s['winnow_f1'])} (P {_spread(s['winnow_precision'])}, "
                f"R {_spread(s['winnow_recall'])}) vs {_spread(s['cleanlab_f1'])} "
                f"(P {_spread(s['cleanlab_precision'])}, R {_spread(s['cleanlab_recall'])}); "
                f"gain {_spread(s['f1_gain'], 3)}, per seed "
                + ", ".join(f"{g:+.3f}" for g in s["f1_gain"]["per_seed"]),
                ">= cleanlab + 0.05",
                verdict(targets.get(f"f1_gain_{mode}")),
            )
        )
    rows.append(
        (
            "B6 AUROC of winnow's label quality / of self-confidence (random; look-alike flips)",
            "; ".join(
                f"{_spread(modes[m]['summary']['winnow_auroc'], 3)} / "
                f"{_spread(modes[m]['summary']['self_confidence_auroc'], 3)}"
                for m in names
            ),
            "—",
            "—",
        )
    )
    recovered = [
        f"{_num(modes[m]['summary'].get('recovered_of_means'), 2)} of the mean accuracies "
        f"(per seed {_spread(modes[m]['summary'].get('recovered'))}; test accuracy clean "
        f"{pct(mean_of(modes[m]['summary'].get('accuracy_clean')))}, noisy "
        f"{pct(mean_of(modes[m]['summary'].get('accuracy_noisy')))}, fixed "
        f"{pct(mean_of(modes[m]['summary'].get('accuracy_fixed')))}; "
        f"{_num(mean_of(modes[m]['summary'].get('reviewed')), 0)} reviewed, "
        f"{pct(mean_of(modes[m]['summary'].get('errors_fixed')), 0)} of the flips fixed)"
        for m in names
        if "recovered" in modes[m]["summary"]
    ]
    if recovered:
        budget = report.get("config", {}).get("budget", "?")
        tested = report.get("config", {}).get("test")
        met = [targets.get(f"recovered_{m}") for m in names]
        rows.append(
            (
                f"B6 share of the accuracy the noise cost that comes back after a reviewer fixes "
                f"suspects in rounds of {budget}, retraining between, on {_num(tested, 0)} test "
                "images (random; look-alike flips)",
                "; ".join(recovered),
                ">= 0.80",
                verdict(None if None in met else all(met)),
            )
        )
    return rows


def b7_rows(report: dict[str, Any]) -> list[Row]:
    summary = report["summary"]
    seeds = len({run["seed"] for run in report["runs"]})
    names = {"far": "far pair (trouser + bag)", "lookalike": "look-alike pair (shirt + pullover)"}
    rows: list[Row] = []
    for scenario, name in names.items():
        s = summary.get(scenario)
        if not s:
            continue
        ours = s["auroc_winnow"]["mean"]
        references = max(s["auroc_max_probability"]["mean"], s["auroc_knn_distance"]["mean"])
        bound = 0.95 if scenario == "far" else 0.80
        alone = s.get("auroc_winnow_labelled_only")
        rows.append(
            (
                f"B7 novel classes, {name} unseen: novelty AUROC of winnow / the head's "
                f"max-probability / plain kNN distance (8 seen classes x 250 labels, {seeds} "
                "seeds, mean ± std)",
                f"{_spread(s['auroc_winnow'], 3)} / {_spread(s['auroc_max_probability'], 3)} / "
                f"{_spread(s['auroc_knn_distance'], 3)}"
                + (f" (winnow without the traffic window: {_spread(alone, 3)})" if alone else ""),
                f">= {bound:.2f} and above both",
                verdict(ours >= bound and ours > references),
            )
        )
    quiet = max(s["seen_only_proposals_max"] for s in summary.values())
    alone = _proposed_range(report["runs"], "proposed_after")
    reviewed = _proposed_range(report["runs"], "proposed_after_with_reviewer")
    rows.append(
        (
            "B7 inputs of an unseen class invoked before a proposal >= 80% of that class "
            f"(every unseen class x {seeds} seeds; in brackets with a reviewer accepting each such "
            "proposal as it appears); proposals over 2,000 seen-class invokes",
            f"{alone[0] if alone else '-'} ({reviewed[0] if reviewed else 'not measured'}); "
            f"{quiet}",
            "< 300; 0",
            verdict(bool(alone and alone[1]) and quiet == 0),
        )
    )
    return rows


def _proposed_range(runs: list[dict[str, Any]], key: str) -> tuple[str, bool] | None:
    """``"20-252, never: shirt 0"`` over every run's ``key``, and whether all came before 300;
    None when no run has ``key`` (a result from before it was measured)."""
    proposed = {
        f"{name} {run['seed']}": after
        for run in runs
        if key in run
        for name, after in run[key].items()
    }
    if not proposed:
        return None
    found = [v for v in proposed.values() if v is not None]
    never = sorted(k for k, v in proposed.items() if v is None)
    text = f"{min(found) if found else '-'}-{max(found) if found else '-'}"
    text += f", never: {', '.join(never)}" if never else ""
    return text, not never and max(found) < 300


def b8_rows(report: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    for checkout, result in report["checkouts"].items():
        stream, marks = result["median"]["stream"], result["median"]["marks"]
        refits = ", ".join(
            f"{name.replace('_', ' ')} {marks[name]['median_ms']:.0f} "
            f"(max {marks[name]['max_ms']:.0f})"
            for name in ("cold_start_refit", "novelty_fit", "novelty_recalibration", "captured")
            if name in marks
        )
        rows.append(
            (
                f"B8 invoke latency from one client over a stream that triggers every refit "
                f"(cold start, novelty fit and recalibration, retrain, rollback"
                f"{', zero-shot label changes' if result.get('zero_shot_phase') == 'run' else ''}; "
                f"{report['backbone']}), `{_checkout_name(checkout)}`",
                f"p50 / p99 / max {stream['p50_ms']:.0f} / {stream['p99_ms']:.0f} / "
                f"{stream['max_ms']:.0f} ms, p99/p50 {stream['p99_over_p50']:.2f} (median of "
                f"{report['config']['rounds']} interleaved rounds); invokes at a refit, median ms: "
                f"{refits}",
                "p99 <= 1.5 x p50",
                verdict(stream["p99_over_p50"] <= 1.5),
            )
        )
    return rows


def _checkout_name(checkout: str) -> str:
    """How B8 names a checkout: its folder's name, or for the one it ran in (``.``) words that
    read the same in any clone, whatever its folder is called."""
    return Path(checkout).name or ". (main when measured)"


def b9_rows(report: dict[str, Any]) -> list[Row]:
    resident, loaded = report["invoke_resident"], report["invoke_not_resident"]
    return [
        (
            f"B9 {report['functions']:,} functions on one replica ({report['samples_per_function']}"
            f" samples, a trained head and {report['invokes_per_function']} invokes each, in "
            f"bursts of {report['burst']}; {report['encoder']})",
            f"RSS growth {report['rss_growth_mib_max']:.0f} MiB over "
            f"{report['rss_mib_before_traffic']:.0f} at most "
            f"(estimate {report['estimate_mib_max']:.0f} MiB), "
            f"{report['resident_functions_median']:.0f} resident (median), "
            f"{report['evictions']:,} evictions; invoke resident p50 / p99 "
            f"{resident['p50_ms']} / {resident['p99_ms']} ms, not resident {loaded['p50_ms']} / "
            f"{loaded['p99_ms']} ms; {report['wrong_answers']} wrong answers of "
            f"{report['invokes']:,}",
            f"RSS growth <= {report['budget_mib']:.0f} MiB budget, 0 wrong",
            verdict(report["rss_growth_within_budget"] and report["wrong_answers"] == 0),
        )
    ]


def b10_rows(report: dict[str, Any]) -> list[Row]:
    config, rows = report["config"], []
    for backbone in report["backbones"]:
        heads = backbone["heads"]
        agreement = min(head["top_label_agreement"] for head in heads.values())
        gap = max(head["max_probability_gap"] for head in heads.values())
        per_head = "; ".join(
            f"{name.replace('_', ' ')}"
            + (f" ({head['tuned_blocks']} blocks)" if "tuned_blocks" in head else "")
            + f" {head['top_label_agreement']:.2%} "
            f"(gap {head['max_probability_gap']:.1e}, accuracy {head['accuracy_export']:.3f})"
            for name, head in heads.items()
        )
        rows.append(
            (
                f"B10 exported ONNX model vs the service ({backbone['backbone']}; heads trained "
                f"on {config['train']:,} Fashion-MNIST images, {config['test']:,} test images, "
                "fp32 both sides)",
                f"top label agrees on {per_head}; {backbone['auto_precision']} service tower: "
                + ", ".join(
                    f"{head['top_label_agreement_with_auto_precision']:.2%}"
                    for head in heads.values()
                    if "top_label_agreement_with_auto_precision" in head  # a tuned one: fp32
                ),
                f">= {report['target_agreement']:.1%} agree, probabilities within "
                f"{report['target_probability_gap']:g}",
                verdict(
                    agreement >= report["target_agreement"]
                    and gap <= report["target_probability_gap"]
                ),
            )
        )
    return rows


def b11_rows(report: dict[str, Any]) -> list[Row]:
    summary, targets, arms = report["summary"], report["targets"], report["arms"]
    team = report["team"]
    seeds = len(report["per_seed"])
    accuracies = "/".join(f"{a:.2f}" for a in team.values())
    reviews = report["config"]["reviews"]

    def median(value: dict[str, Any] | None, digits: int = 3) -> str:
        return "n/a" if value is None else f"{value['median']:.{digits}f}"

    rows: list[Row] = [
        (
            f"B11 a team of three reviewers ({accuracies}; errors toward look-alike classes), "
            f"{reviews:,} reviews per arm on Fashion-MNIST ({seeds} seeds, median): training "
            "labels right / the head's test accuracy / items labelled",
            "; ".join(
                f"{arms[name]['description']} {pct(arm['labels_correct']['median'])} / "
                f"{pct(arm['test_accuracy']['median'])} / {arm['items']['median']:,.0f}"
                for name, arm in summary.items()
            )
            + _b11_reference(report),
            f"best team arm >= round robin + {report['target_label_gain'] * 100:.0f} pts",
            verdict(targets.get("label_gain_met")),
        )
    ]
    for name, arm in summary.items():
        worst = arm["dawid_skene_worst_error"]
        if worst is None:
            continue
        per_reviewer = arm["reviewers"]
        names = "/".join(team)
        rows.append(
            (
                f"B11 {arms[name]['description']}: each reviewer's ({names}) accuracy estimated "
                "by Dawid-Skene vs the true one (median over seeds)",
                "/".join(median(per_reviewer[r]["dawid_skene"]) for r in team)
                + " vs "
                + "/".join(median(per_reviewer[r]["true_accuracy"]) for r in team)
                + f", worst error {median(worst)} (per seed "
                + ", ".join(f"{e:.3f}" for e in worst["per_seed"])
                + "); agreement with the consensus "
                + "/".join(median(per_reviewer[r]["agreement"]) for r in team)
                + f" (worst error {median(arm['agreement_worst_error'])}, kappa "
                + "/".join(median(per_reviewer[r]["kappa"], 2) for r in team)
                + ")"
                + (
                    "; gold accuracy "
                    + "/".join(median(per_reviewer[r]["gold"]) for r in team)
                    + f" (worst error {median(arm['gold_worst_error'])})"
                    if arm["gold_worst_error"] is not None
                    else ""
                ),
                f"within {report['target_estimate_error']:.2f}",
                verdict(targets.get(f"estimates_within_{name}")),
            )
        )
    rows += _b11_replay_rows(report)
    return rows


def _b11_replay_rows(report: dict[str, Any]) -> list[Row]:
    """The first seed's arms (a) and (b) replayed through the service: its samples' labels against
    the simulation's (none in results written before the replay)."""
    first = report["per_seed"][0]
    replayed = first.get("replay")
    if not replayed:
        return []
    arms = report["arms"]
    parts, same = [], []
    for name, r in replayed.items():
        history = ", ".join(f"{via} {n:,}" for via, n in r["history_by_via"].items())
        parts.append(
            f"{arms[name]['description'].split(' ', 1)[0]} {r['items']:,} items -> "
            f"{r['samples']:,} samples, {r['disputes']:,} disputes settled by the best reviewer "
            f"(history: {history}; actors right {pct(r['history_actors_right'])}), labels equal "
            f"to the simulation's {pct(r['agreement_with_simulation'])}, right "
            f"{pct(r['labels_correct'])}"
        )
        same.append(
            r["agreement_with_simulation"] == 1.0
            and r["samples"] == r["items"]
            and r["disputes"] == r["simulated_disputes"]
            and r["history_actors_right"] == 1.0
            and not r["requests_failed"]
        )
    return [
        (
            f"B11 seed {first['seed']}'s votes of (a) and (b) replayed through the service "
            "(reviewer keys vote, an admin key settles disputes as the best reviewer)",
            "; ".join(parts),
            "the service's samples carry the simulation's labels",
            verdict(all(same)),
        )
    ]


def _b11_reference(report: dict[str, Any]) -> str:
    reference = report.get("test_accuracy_all_pool_labels_right")
    if reference is None:
        return ""
    pool = report.get("data", {}).get("pool")
    images = f" ({pool:,} images)" if isinstance(pool, int) else ""
    return f"; the head on the whole pool{images} with every label right {pct(reference)}"


def _on_minus_off(on: dict[str, Any], off: dict[str, Any], name: str, base: str) -> str:
    """Per budget, ``name``'s mean accuracy in ``on`` minus ``base``'s in ``off``."""
    on_acc, off_acc = on["summary"]["accuracy"], off["summary"]["accuracy"]
    return ", ".join(
        f"{budget}: {(on_acc[name][budget]['mean'] - off_acc[base][budget]['mean']) * 100:+.1f}"
        for budget in on_acc[name]
        if budget in off_acc.get(base, {})
    )


def traffic_rows(off: dict[str, Any], on_name: str, bench: str) -> list[Row]:
    """What learning from traffic adds: the same streams with ``--traffic on`` (``on_name``'s
    results) against ``--traffic off`` (``off``), pt by label budget."""
    on = load(on_name)
    if on is None or on.get("config", {}).get("traffic", "on") != "on":
        return []
    seeds = len(off.get("seeds", [])) or "?"
    rows: list[Row] = [
        (
            f"{bench} what learning from traffic adds to winnow's heads (same {seeds} streams, "
            "--traffic on minus off, pt at each label count)",
            _on_minus_off(on, off, "winnow", "winnow"),
            "—",
            "—",
        )
    ]
    if "random_traffic" in on["summary"]["accuracy"]:
        rows.append(
            (
                f"{bench} the same for random labels (the next 2,000 inputs of the stream as "
                "traffic, minus labels alone)",
                _on_minus_off(on, on, "random_traffic", "random"),
                "—",
                "—",
            )
        )
    return rows


def b1_traffic_rows(report: dict[str, Any]) -> list[Row]:
    return traffic_rows(report, "label_efficiency", "B1")


def b5_traffic_rows(report: dict[str, Any]) -> list[Row]:
    return traffic_rows(report, "cold_start", "B5")


def _tower(parity: dict[str, Any]) -> str:
    """The precision a B12 parity run asked for, with what ``auto`` chose where it says."""
    chosen = json.loads(parity.get("precision_file") or "{}")
    if parity["precision"] != "auto" or not chosen:
        return str(parity["precision"])
    return f"auto, which chose {', '.join(sorted(set(chosen.values())))}"


def preset_rows(report: dict[str, Any]) -> list[Row]:
    photos = report["photos"]
    rows: list[Row] = []
    for parity in report["parity"]:
        same = [name for name, photo in parity["photos"].items() if photo["same_order"]]
        differ = [
            f"{name} {photo['overlap']}/5" for name, photo in parity["photos"].items()
            if not photo["same_order"]
        ]  # fmt: skip
        rows.append(
            (
                f"B12 imagenet preset on EfficientNet-Lite0 (tower {_tower(parity)}): photos "
                f"whose top 5 is the backbone's own classifier's, in order ({len(photos)} offline "
                "photos: scikit-image's and scikit-learn's)",
                f"{len(same)} of {len(parity['photos'])}"
                + (f" (otherwise {', '.join(differ)})" if differ else ""),
                "all",
                verdict(len(same) == len(parity["photos"])),
            )
        )
    cat = report.get("cat_photo_top1")
    if cat:
        rows.append(
            (
                "B12 the cat photo's top label",
                str(cat["label"]),
                "a cat class",
                verdict(bool(cat["is_cat_class"])),
            )
        )
    latency = report["latency"]
    ratios = latency["ratio_to_trained"]
    sizes = latency["response_bytes"]
    trimmed = ""
    if "preset_1000/label_count_5" in ratios:  # since labelCount
        trimmed = (
            f"; 1,000 labels answering 5 (`?labelCount=5`) "
            f"{ratios['preset_1000/label_count_5']:.2f}x, "
            f"{sizes['preset_1000/label_count_5']:,} bytes against "
            f"{sizes['preset_1000/capture']:,}"
        )
    rows.append(
        (
            "B12 invoke latency of a preset function over a trained one's "
            f"({latency['trained_head']} head; median of {latency['repeats']}, with capture): "
            "1,000 labels; a 4-label subset",
            f"{ratios['preset_1000/capture']:.2f}x; {ratios['preset_4/capture']:.2f}x{trimmed}",
            "—",
            "—",
        )
    )
    return rows


def augmentation_rows(report: dict[str, Any]) -> list[Row]:
    seeds = len(report.get("seeds", [])) or "?"
    names = {"selected": "the head train_head selects", "logistic": "a fixed logistic head"}
    rows: list[Row] = []
    for head in ("selected", "logistic"):
        cells = [r for r in report["accuracy"] if r["head"] == head]
        views = sorted({r["k"] for r in cells if r["k"]})

        def gains(per_class: int, cells: list[dict[str, Any]] = cells) -> str:
            row = [r for r in cells if r["per_class"] == per_class]
            base = next(r["accuracy_mean"] for r in row if not r["k"])
            added = " ".join(f"{r['gain_mean_pt']:+.1f}" for r in row if r["k"])
            return f"{per_class}/class: {added} pt (from {base:.1f}%)"

        per_class = sorted({r["per_class"] for r in cells})
        rows.append(
            (
                f"Augmented views (not shipped): {names[head]}, test accuracy gain with k views of "
                f"each labelled image (k = {', '.join(map(str, views))}; Fashion-MNIST, "
                f"{seeds} seeds, paired)",
                "; ".join(gains(n) for n in per_class),
                ">= +1 pt to ship",
                verdict(any(r["gain_mean_pt"] >= 1.0 for r in cells if r["k"])),
            )
        )
    costs = report["upload_cost"]
    rows.append(
        (
            "Augmented views: upload time per image with k views over without (one thread, median)",
            "; ".join(
                f"{image}: "
                + ", ".join(f"k={c['k']} {c['ratio']:.1f}x" for c in costs if c["image"] == image)
                for image in dict.fromkeys(c["image"] for c in costs)
            ),
            "—",
            "—",
        )
    )
    return rows


def cv_repeats_rows(report: dict[str, Any]) -> list[Row]:
    summary = report["summary"]
    seeds = len(report["config"]["seeds"])
    arms = {
        "labels_only_1_shuffle": "logistic grid, labels only",
        "with_traffic_1_shuffles": "with the semi-supervised candidates, 1 shuffle (as shipped)",
        "with_traffic_5_shuffles": "the same over 5 shuffles",
        "spreading_unselected": "the semi-supervised head unselected",
    }
    budgets = list(summary)
    return [
        (
            f"Model selection on random labels ({', '.join(budgets)} labels, {seeds} streams, "
            f"validation accuracy): {label}",
            " / ".join(pct(summary[b][arm]) for b in budgets),
            "—",
            "—",
        )
        for arm, label in arms.items()
    ]


def finetune_rows(report: dict[str, Any]) -> list[Row]:
    table, serving = report["table"], report["serving"]
    setup = (
        f"{report['backbone']}, last {report['tuned_blocks']} blocks + head, "
        f"{report['views']} views per image"
        + (
            f", label smoothing {report['label_smoothing']:g}, mixup {report['mixup']:g}"
            if report.get("label_smoothing") or report.get("mixup")
            else ""
        )
        + f"; Fashion-MNIST, {len(report['seeds'])} "
        f"seed{'s' if len(report['seeds']) != 1 else ''}, "
        f"pool {report['pool']:,}"
    )
    target = next((row for row in table if row["budget"] == 2000), None)
    smallest = table[0]
    flags = report["machine"].get("cpu_flags") or ["no AVX2"]
    cpu = f"{report['machine'].get('cpu', 'unknown CPU')}, {' '.join(flags)}"
    tuned_path = (
        "the tuned one runs the shared trunk and its own tail"
        if "tuned_path" in serving
        else "eager; the tuned one also ran the frozen tail, as the service did then"
    )
    return [
        (
            f"B13 fine-tuned challenger vs the frozen champion, test accuracy ({setup})",
            "; ".join(
                f"{row['budget']:,} labels: {row['tuned_mean']:.1f}% vs "
                f"{row['champion_mean']:.1f}% ({row['gain_mean_pt']:+.1f} pt"
                + (
                    ""
                    if row.get("refit_gain_mean_pt") is None
                    else f", refitted on every label {row['refit_gain_mean_pt']:+.1f} pt"
                )
                + f"; guard deployed {row['deployed']}/{row['seeds']})"
                for row in table
            ),
            ">= +4 pt at 2,000 labels (mean of 3 seeds)",
            # one seed's gain neither meets nor misses a mean over three
            verdict(
                None if target is None or target["seeds"] < 3 else target["gain_mean_pt"] >= 4.0
            ),
        ),
        (
            f"B13 guard at {smallest['budget']} labels: tuned versions deployed that are not more "
            "accurate on the test split than the frozen champion (deploys only on a significant "
            "win on a 20% holdout)",
            f"{smallest['guard_wrong']} (deployed in {smallest['deployed']} of "
            f"{smallest['seeds']} runs); all budgets: {sum(r['guard_wrong'] for r in table)} "
            f"(deployed in {sum(r['deployed'] for r in table)} of "
            f"{sum(r['seeds'] for r in table)} runs)",
            "0",
            verdict(smallest["guard_wrong"] == 0),
        ),
        (
            f"B13 costs on 2 cores ({cpu}): tuning seconds per 1,000 labelled images (views "
            "included); trunk seconds per 1,000 images (once per stored image and view); "
            f"serving throughput of a tuned function / a frozen one (fp32, batch 8, interleaved; "
            f"{tuned_path}); tuned weights",
            "; ".join(
                f"{row['budget']:,}: {row['tuning_seconds_per_1000_images']:.0f} s" for row in table
            )
            + f" ({table[-1]['epoch_seconds_per_1000_images']:.0f} s per epoch); trunk "
            f"{report['trunk_seconds_per_1000_images']:.0f} s; serving {serving['ratio']:.2f} "
            f"({serving['tuned_images_per_s']:.1f} vs {serving['frozen_images_per_s']:.1f} "
            f"img/s); {report['tuned_bytes'] / 1e6:.1f} MB per tuned function",
            "serving >= 0.7",
            verdict(serving["ratio"] >= 0.7),
        ),
    ]


def tuned_serving_rows(report: dict[str, Any]) -> list[Row]:
    flags = report["machine"].get("cpu_flags") or ["no AVX2"]
    cpu = f"{report['machine'].get('cpu', 'unknown CPU')}, {' '.join(flags)}"
    targets = report["targets"]
    rows: list[Row] = []
    for row in report["results"]:
        serving = row["serving"]
        drop = 100 * (row["fp32_accuracy"] - row["accuracy"])
        rows.append(
            (
                f"B13 tuned function served as `--precision auto --runtime {row['runtime']}` "
                f"chose ({report['backbone']}, last {report['tuned_blocks']} blocks tuned on "
                f"{report['budget']} labels; 2 cores, {cpu}): throughput / a frozen function's "
                "(batch 8, interleaved); its vectors and answers against fp32's on "
                f"{report['test']:,} Fashion-MNIST test images",
                f"frozen {row['frozen_serves']}, tuned {row['tuned_serves']}: "
                f"{serving['ratio']:.2f} ({serving['tuned_images_per_s']:.1f} vs "
                f"{serving['frozen_images_per_s']:.1f} img/s; with the tuned one in fp32 "
                f"{row['serving_fp32']['ratio']:.2f}); cosine min "
                f"{row['min_cosine']:.4f}, same label {pct(row['agreement'], 2)}, "
                f"accuracy {pct(row['accuracy'], 2)} vs {pct(row['fp32_accuracy'], 2)}",
                f"serving >= {targets['serving_ratio']}; accuracy within "
                f"{targets['accuracy_drop_pt']} pt of fp32",
                verdict(
                    serving["ratio"] >= targets["serving_ratio"]
                    and drop <= targets["accuracy_drop_pt"]
                ),
            )
        )
    tuning = report["tuning"]
    if "estimated_seconds" in tuning:
        rows.append(
            (
                f"B13 `--finetune auto`'s cost estimate ({report['tuned_blocks']} blocks, "
                f"{report['budget']} labels, {report['epochs']} epochs; 2 cores, {cpu}): "
                "seconds estimated from timed training steps / seconds the tune took",
                f"{tuning['estimated_seconds']:.0f} s "
                f"({1000 * tuning['seconds_per_image_epoch']:.0f} ms per image and epoch) / "
                f"{tuning['seconds']:.0f} s: {tuning['estimated_seconds'] / tuning['seconds']:.2f}",
                "—",
                "—",
            )
        )
    return rows


def finetune_refit_rows(report: dict[str, Any]) -> list[Row]:
    """B13 as the service deploys it (``--refit-from``): a challenger the guard deployed serves
    refitted on every label, one it kept out leaves the frozen champion serving (gain 0)."""
    runs = report["runs"]
    served = [run["refit_gain_pt"] if run["deployed"] else 0.0 for run in runs]
    mean = statistics.mean(served)
    budgets = sorted({run["budget"] for run in runs})
    flags = report["machine"].get("cpu_flags") or ["no AVX2"]
    refit = statistics.mean(100 * run["refit_test_accuracy"] for run in runs)
    frozen = statistics.mean(100 * run["refit_champion_test_accuracy"] for run in runs)
    judged = statistics.mean(run["gain_pt"] for run in runs)
    per_image = statistics.median(1000 * run["refit_seconds"] / run["budget"] for run in runs)
    return [
        (
            "B13 fine-tuned challenger as deployed: refitted on every label for the epochs its "
            f"early stopping kept, when the guard deploys it ({report['backbone']}, last "
            f"{report['tuned_blocks']} blocks + head, the recorded runs' recipe and judgement; "
            f"Fashion-MNIST, {len(runs)} seeds, {', '.join(f'{b:,}' for b in budgets)} labels; "
            f"refit on 2 cores, {' '.join(flags)})",
            f"{mean:+.2f} pt (per seed {', '.join(f'{gain:+.2f}' for gain in served)}; "
            f"refit {refit:.1f}% vs frozen {frozen:.1f}%; as judged, trained without the "
            f"holdout: {judged:+.2f} pt; guard deployed {sum(r['deployed'] for r in runs)}/"
            f"{len(runs)}); refit {per_image:.0f} s per 1,000 labelled images",
            ">= +4 pt at 2,000 labels (mean of 3 seeds)",
            verdict(None if len(runs) < 3 or budgets != [2000] else mean >= 4.0),
        )
    ]


def finetune_with_seed_zero(first: str) -> Callable[[dict[str, Any]], list[Row]]:
    """Rows of a run of further seeds together with ``first``'s run of seed 0 (the same recipe
    and CPU, checked), so that the mean over all seeds meets or misses the target; serving comes
    from the later run."""

    def build(report: dict[str, Any]) -> list[Row]:
        from bench.finetune import summarise

        base = load(first)
        if base is None:
            return finetune_rows(report)
        recipe = ("backbone", "pool", "test", "tuned_blocks", "views", "label_smoothing", "mixup")
        differ = [key for key in recipe if base.get(key) != report.get(key)]
        if base["machine"].get("cpu_flags") != report["machine"].get("cpu_flags"):
            differ.append("CPU")
        if differ:
            raise ValueError(f"{first} has another recipe ({', '.join(differ)})")
        runs = base["runs"] + report["runs"]
        budgets = sorted({run["budget"] for run in runs})
        seeds = base["seeds"] + report["seeds"]
        return finetune_rows(
            {**report, "seeds": seeds, "runs": runs, "table": summarise(runs, budgets)}
        )

    return build


def space_move_rows(report: dict[str, Any]) -> list[Row]:
    per = report["seconds_per_1000"]
    return [
        (
            f"B13 vector space, moving a function's stored vectors ({report['samples']:,} "
            f"Fashion-MNIST samples, EfficientNet-Lite0 {report['precision']}, median of "
            f"{report['rounds']}): into the tuned space / back, per 1,000 vectors; ratio to "
            "embedding the same images alone",
            f"{per['move_in']:.1f} s (x{report['move_in_over_baseline']:.2f}) / "
            f"{per['move_out']:.1f} s (x{report['move_out_over_baseline']:.2f})",
            "— (a cost to know: the deploy waits for it)",
            verdict(None),
        )
    ]


def tuned_space_rows(report: dict[str, Any]) -> list[Row]:
    seeds = len(report["seeds"])
    setup = (
        f"last {report['tuned_blocks']} blocks tuned {report['epochs']} epochs, Fashion-MNIST, "
        f"{seeds} "
        f"seed{'s' if seeds != 1 else ''}"
    )

    def b7(space: dict[str, Any]) -> str:
        after, reviewed = space["proposed_after_worst"], space["proposed_after_with_reviewer_worst"]
        return (
            f"AUROC {space['auroc_winnow']['mean']:.3f}, proposed after "
            f"{'never' if after is None else after} (with a reviewer "
            f"{'never' if reviewed is None else reviewed}), "
            f"seen-only proposals {space['seen_only_proposals_max']}"
        )

    def proposes(space: dict[str, Any]) -> bool:
        return space["all_proposed_before_300"] and space["seen_only_proposals_max"] == 0

    rows: list[Row] = [
        (
            f"B13 vector space, B7 {scenario} ({'/'.join(spaces['unseen'])} unseen; tail tuned "
            f"on {report['per_class']} labels per seen class, {setup}): frozen vectors / tuned",
            f"{b7(spaces['frozen'])} / {b7(spaces['tuned'])}",
            "proposed after < 300, 0 seen-only",
            verdict(proposes(spaces["tuned"])),
        )
        for scenario, spaces in report["novelty"].items()
    ]
    frozen, tuned = report["rules"]["frozen"], report["rules"]["tuned"]
    rows.append(
        (
            f"B13 vector space, capture rules (5 examples, oracle threshold at precision >= 0.9, "
            f"10 classes x {report['rule_seeds']}; one tail tuned on {report['rule_labels']:,} "
            f"labels, last {report['tuned_blocks']} blocks, {report['epochs']} epochs): mean "
            "recall, shirt: frozen / tuned",
            f"{frozen['oracle_recall']:.2f}, shirt "
            f"{frozen['oracle_recall_per_class']['shirt']:.2f} / {tuned['oracle_recall']:.2f}, "
            f"shirt {tuned['oracle_recall_per_class']['shirt']:.2f}",
            "— (a ceiling: B5's threshold is not an oracle)",
            "—",
        )
    )
    return rows


def traffic_flush_rows(report: dict[str, Any]) -> list[Row]:
    results = report["results"]
    return [
        (
            f"Traffic sample: one flush of {results[db]['functions']} functions x "
            f"{results[db]['rows_per_function']} vectors ({report['dim']}-d) into {db} "
            "(serving worker, off the invoke path); reading a full ring of "
            f"{report['size']:,} at training",
            f"{results[db]['flush_ms_per_function']:.1f} ms per function; "
            f"{results[db]['read_full_ring_ms_median']:.0f} ms",
            "—",
            "—",
        )
        for db in results
    ]


SECTIONS: list[tuple[str, str, Callable[..., list[Row]]]] = [
    ("label_efficiency", "python -m bench.run --only b1", b1_rows),
    (
        "label_efficiency_no_traffic",
        "python -m bench.label_efficiency --quick --seeds 0 1 2 3 4 5 6 7 8 9 --traffic off "
        "--output bench/results/label_efficiency_no_traffic.json",
        b1_traffic_rows,
    ),
    ("label_efficiency_full", "python -m bench.run --only b1 --full", b1_full_rows),
    ("serving", "python -m bench.run --only b2", b2_rows),
    ("serving_clip", "python -m bench.run --only b2", b2_rows),
    (
        "serving_onnx",
        "python -m bench.serving --runtime onnx --bare --output bench/results/serving_onnx.json",
        b2_rows,
    ),
    (
        "serving_onnx_amx",
        "python -m bench.serving --runtime onnx --bare "
        "--output bench/results/serving_onnx_amx.json",
        b2_rows,
    ),
    (
        "serving_onnx_avx2",
        "python -m bench.serving --runtime onnx --bare "
        "--output bench/results/serving_onnx_avx2.json",
        b2_rows,
    ),
    (
        "serving_onnx_batch8",
        "python -m bench.serving --runtime onnx --per-request 8 --clients 4 "
        "--output bench/results/serving_onnx_batch8.json",
        b2_rows,
    ),
    ("capture_cost", "python -m bench.run --only b3", b3_rows),
    ("capture_cost_full", "python -m bench.run --only b3 --full", b3_rows),
    ("retrain_cost", "python -m bench.run --only b4", b4_rows),
    ("retrain_cost_full", "python -m bench.run --only b4 --full", b4_rows),
    ("cold_start", "python -m bench.run --only b5", b5_rows),
    (
        "cold_start_no_traffic",
        "python -m bench.cold_start --traffic off "
        "--output bench/results/cold_start_no_traffic.json",
        b5_traffic_rows,
    ),
    ("label_errors", "python -m bench.run --only b6", b6_rows),
    ("novelty", "python -m bench.run --only b7", b7_rows),
    ("invoke_latency", "python -m bench.invoke_latency --checkout OLD --checkout .", b8_rows),
    (
        "invoke_latency_clip",
        "python -m bench.invoke_latency --backbone clip:ViT-B-32/random-init --checkout OLD "
        "--checkout . --output bench/results/invoke_latency_clip.json",
        b8_rows,
    ),
    ("many_functions", "python -m bench.many_functions", b9_rows),
    ("onnx_export", "python -m bench.onnx_export", b10_rows),
    ("team_review", "python -m bench.team_review", b11_rows),
    ("preset", "python -m bench.preset", preset_rows),
    ("augmentation", "python -m bench.augmentation", augmentation_rows),
    ("cv_repeats", "python -m bench.cv_repeats", cv_repeats_rows),
    ("finetune", "python -m bench.finetune", finetune_rows),
    (
        "finetune_k5",
        "python -m bench.finetune --budgets 2000 --seeds 0 --tuned-blocks 5 --rounds 5 "
        "--output bench/results/finetune_k5.json",
        finetune_rows,
    ),
    (
        "finetune_refit",
        "python -m bench.finetune --budgets 2000 --refit --rounds 5 "
        "--output bench/results/finetune_refit.json",
        finetune_rows,
    ),
    (
        "finetune_regularised",
        "python -m bench.finetune --budgets 2000 --label-smoothing 0.1 --mixup 0.4 --rounds 5 "
        "--output bench/results/finetune_regularised.json",
        finetune_rows,
    ),
    (
        "finetune_k10",
        "python -m bench.finetune --budgets 2000 --seeds 0 --tuned-blocks 10 --label-smoothing 0.1 "
        "--mixup 0.4 --rounds 5 --output bench/results/finetune_k10.json",
        finetune_rows,
    ),
    (
        "finetune_k10_seeds12",
        "python -m bench.finetune --budgets 2000 --seeds 1 2 --tuned-blocks 10 "
        "--label-smoothing 0.1 --mixup 0.4 --rounds 5 "
        "--output bench/results/finetune_k10_seeds12.json",
        finetune_with_seed_zero("finetune_k10"),
    ),
    (
        "finetune_k13",
        "python -m bench.finetune --budgets 2000 --seeds 0 --tuned-blocks 13 "
        "--label-smoothing 0.1 --mixup 0.4 --rounds 3 --output bench/results/finetune_k13.json",
        finetune_rows,
    ),
    (
        "finetune_k13_seeds12",
        "python -m bench.finetune --budgets 2000 --seeds 1 2 --tuned-blocks 13 "
        "--label-smoothing 0.1 --mixup 0.4 --rounds 5 "
        "--output bench/results/finetune_k13_seeds12.json",
        finetune_with_seed_zero("finetune_k13"),
    ),
    (
        "finetune_k13_refit",
        "python -m bench.finetune --refit-from bench/results/finetune_k13.json "
        "bench/results/finetune_k13_seeds12.json --budgets 2000 --seeds 0 1 2 --rounds 5 "
        "--output bench/results/finetune_k13_refit.json",
        finetune_refit_rows,
    ),
    (
        "finetune_k13_200",
        "python -m bench.finetune --budgets 200 --seeds 0 1 2 --tuned-blocks 13 "
        "--label-smoothing 0.1 --mixup 0.4 --refit --rounds 3 "
        "--output bench/results/finetune_k13_200.json",
        finetune_rows,
    ),
    (
        "finetune_5000",
        "python -m bench.finetune --full --budgets 5000 --seeds 0 "
        "--output bench/results/finetune_5000.json",
        finetune_rows,
    ),
    (
        "finetune_5000_seeds12",
        "python -m bench.finetune --full --budgets 5000 --seeds 1 2 "
        "--output bench/results/finetune_5000_seeds12.json",
        finetune_with_seed_zero("finetune_5000"),
    ),
    ("tuned_serving", "python -m bench.tuned_serving", tuned_serving_rows),
    ("tuned_space", "python -m bench.tuned_space", tuned_space_rows),
    ("space_move", "python -m bench.space_move", space_move_rows),
    ("traffic_flush", "python -m bench.traffic_flush --postgres URL", traffic_flush_rows),
    ("cpu_precision", "python -m bench.cpu_precision --accuracy", cpu_precision_rows),
    (
        "cpu_precision_avx2",
        "python -m bench.cpu_precision --out bench/results/cpu_precision_avx2.json",
        cpu_precision_rows,
    ),
    (
        "cpu_precision_amx",
        "python -m bench.cpu_precision --accuracy --accuracy-precision onnx-int8 "
        "--out bench/results/cpu_precision_amx.json",
        cpu_precision_rows,
    ),
    ("gpu", "bench/gpu.sh (on a GPU machine, see docs/operations.md)", gpu_rows),
]


def measured_on(names: list[str]) -> str:
    """Date range of the named results, from the ``measured_on`` each bench writes."""
    dates = sorted({str((load(name) or {}).get("measured_on", "unknown")) for name in names})
    if not dates:
        return "never"
    return dates[0] if len(dates) == 1 else f"{dates[0]} to {dates[-1]}"


def performance_section() -> str:
    """The Markdown of the Performance page, from whatever results exist."""
    rows: list[str] = []
    missing, machines, ran = [], set(), []
    for name, command, build in SECTIONS:
        report = load(name)
        if report is None:
            missing.append(f"`{command}`")
            continue
        ran.append(name)
        machine = report.get("machine", "")
        if isinstance(machine, dict):  # richer records name the platform among other facts
            machine = machine.get("platform", "")
        machines.add(str(machine).split(",")[0])
        try:
            built = build(report)
        except (KeyError, TypeError, ValueError) as error:
            built = [(f"{name}: results in an unexpected shape ({error!r})", "", "", "")]
        rows += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in built]
    intro = (
        "Measured by `make bench` (`python -m bench.run`; `--full` for the larger sizes, "
        "`--only b2,b4` to select) on "
        f"{measured_on(ran)}. Generated from `bench/results/*.json` by `bench/report.py`; do not "
        "edit by hand. B1 accuracy-vs-labels curves with the seed spread: "
        "`bench/results/label_efficiency.png` (`label_efficiency_full.png` for `--full`). "
        "B1's quick run (a 3,000-image pool, up to 300 labels) keeps `make bench` short; its "
        "`--full` run streams the whole Fashion-MNIST training set but the 5,000 validation "
        "images (55,000, up to 5,500 labels, 10 seeds; 35 to 55 minutes on 2 cores, after "
        "30 to 50 minutes embedding the 70,000 images once, depending on the machine)."
    )
    machine = (
        f"Machine: {os.cpu_count()} CPU cores, CPU only (no GPU), "
        f"{', '.join(sorted(m for m in machines if m)) or 'unknown platform'}. Machines here are "
        "shared and noisy, so absolute times vary from run to run; compare ratios measured within "
        "one run. B2 times a window in which all its clients have a request in flight, "
        "interleaves its "
        "raw-loop and service rounds so both see the same load, runs each in a process session of "
        "its own (one scheduler group each; the HTTP clients in a third), and takes the fastest of "
        "several raw-loop variants (main thread; a worker thread with each torch thread count "
        "the encoder chooses from) at the precision the service serves (`--precision auto`'s "
        "choice, measured once in the raw loop's process and forced on the service); "
        "its latencies under load are those of all clients queueing for one model (p50 is about "
        "clients / throughput). The service's encoder runs two forward passes at once on a CPU, "
        "each with its share of the cores (`--encoder-workers`, `embeddings/pool.py`); its request "
        "threads decode and preprocess while the model runs (both backbones run as frozen "
        "TorchScript graphs, which do not hold the GIL), which the raw loop does in turn, so "
        "the ratio can exceed 1 (`bench/results/serving*.json` have every variant's rate). "
        "The CLIP rows serve the default architecture with seeded random weights: the compute "
        "of the real weights, which cannot be downloaded here. "
        "B3 divides by the embedding time measured in the same run, which "
        "grows with the machine's load. Per-bench commands: "
        "`python -m bench.serving [--backbone clip:ViT-B-32/random-init]` (`--profile --label "
        "NAME`: where an invoke's time goes, sampled by py-spy, in "
        "`bench/results/serving_profile_NAME.txt`; `--profile-capture off` samples invokes that "
        "do not capture), "
        "`python -m bench.capture_cost --embed-ms <ms>`, `python -m bench.retrain_cost [--full]`, "
        "`python -m bench.label_efficiency [--quick|--full]` (B1 starts winnow from cold-start "
        "capture; `--hand-cold-start` from the same 10 random labels as the baselines), "
        "`python -m bench.cold_start` (B5), `python -m bench.label_errors` (B6; "
        "cleanlab comes with the `dev` extra), `python -m bench.novelty` (B7), "
        "`python -m bench.team_review` (B11)."
    )
    lines = ["# Performance", "", *textwrap.wrap(intro, 100), ""]
    lines += ["| figure | measured | target | |", "|---|---|---|---|", *rows, ""]
    lines += textwrap.wrap(machine, 100)
    if missing:
        lines += ["", *textwrap.wrap("Not run yet: " + ", ".join(missing) + ".", 100)]
    return "\n".join(lines)


def write_page(page: Path = PAGE) -> None:
    """Rewrite the Performance page with fresh results."""
    page.write_text(performance_section() + "\n")


def main(argv: list[str] | None = None) -> int:
    page = Path(argv[0]) if argv else PAGE
    write_page(page)
    print(f"updated {page}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

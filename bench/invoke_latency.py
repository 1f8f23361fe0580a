"""Issue 28: invoke latency from one client over a stream that triggers every refit.

An invoke may do maintenance inline: load a newly deployed version, build the zero-shot head
(version 0), fit the novelty model, refit the cold-start clusters (k-means and a Gram matrix of
the reservoir every 100 inputs before any head exists), recalibrate novelty against the traffic
window. This bench times every invoke of one keep-alive client, sequentially, over a stream that
sets all of them off, so the spikes they cost show in p99 and max; the target is p99 <= 1.5 x p50.

The real service runs in a subprocess (``python -m api.cli serve``, free port, temporary data dir)
from each ``--checkout`` in turn (its own code: cwd and PYTHONPATH), a fresh service per round,
rounds interleaved (before, after, before, after...) so the machine's noise hits every checkout.
One round, on one function unless said:

1. ``cold_start``: a function without labels; ``--invokes`` invokes (cold-start capture judges
   from the 101st input on and refits every 100 inputs or after a cold-start capture);
2. ``labelled``: labels, ``--per-label`` labelled samples per label and a synchronous training,
   then ``--invokes`` invokes (the first fits the novelty model; calibration against the traffic
   window is redone every min(200, window / 10) inputs);
3. ``redeploy``: ``--invokes`` invokes; a third of the way more labelled samples and a retrain
   (deployed, explicitly if the champion check kept the old one), two thirds of the way a
   rollback to the first trained version;
4. ``zero_shot`` (backbones with a text tower only; the others skip it): a second function with
   two labels and no samples, so version 0 serves; ``--invokes`` invokes, a label created a
   quarter of the way, renamed half-way, another created three quarters of the way.

Triggers are made between two invokes by a second (admin) client, never timed as invokes: the
invoke after one shows only the work the invoke path does inline. Every invoke carries marks:
what came right before it (``first_invoke``, ``after_training``, ``after_retrain_deploy``,
``after_rollback``, ``after_label_create``, ``after_label_rename``), ``captured`` when it wrote a
review item, ``cold_start_refit``, ``novelty_fit`` and ``novelty_recalibration`` where the code at
bce0925 refits inline, and ``novelty_refit_start`` where it starts a background refit (the
counters and clocks of capture/cold_start.py, capture/traffic.py and capture/novelty_models.py,
replayed here from the answers and the time, not reported by the service; recalibrations are
approximate after a background refit, whose end is not seen).
Images: handwritten digits (sklearn), tinted per image and upscaled to ``--image-size`` px JPEGs,
sent as JSON data URIs (bench/serving.py's stream); digits 0-3 are the labels.

Usage (from the repository root)::

    git -C . archive <commit> | tar -x -C /tmp/before
    python -m bench.invoke_latency --checkout /tmp/before --checkout .
    python -m bench.invoke_latency --backbone clip:ViT-B-32/random-init   # with phase 4
    python -m bench.invoke_latency --backbone tiny-clip --invokes 120 --rounds 1  # harness check

Writes ``bench/results/invoke_latency.json`` and prints a table: per checkout the median over
rounds of p50, p99, max and p99/p50, for the whole stream and per phase, and per mark.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # also runnable as ``python bench/invoke_latency.py``
    sys.path.insert(0, str(ROOT))

from bench.results_file import write_result  # noqa: E402
from bench.serving import (  # noqa: E402
    ADMIN_KEY,
    LABELS,
    checkout_env,
    data_uri,
    data_uri_body,
    make_images,
    running_service,
    served_backbone,
)

TARGET_RATIO = 1.5  # p99 / p50
PHASES = ("cold_start", "labelled", "redeploy", "zero_shot")
# The counters of capture/cold_start.py and capture/traffic.py at bce0925, replayed client-side.
COLD_START_MIN_TRAFFIC, COLD_START_REFIT_EVERY = 100, 100
TRAFFIC_WINDOW, RECALIBRATE_EVERY = 2000, 200
NOVELTY_MIN_REFIT_S = 30.0  # capture/novelty_models.py: least time between two refits
SLOWEST = 10  # invokes listed per round


@dataclass
class Answer:
    """One timed invoke."""

    phase: str
    n: int  # position in the round's timed stream
    ms: float
    status: int
    marks: list[str]
    at_s: float = 0.0  # when it was sent, seconds into the round
    reason: str | None = None  # capture reason, if captured
    version: int | None = None  # model version that answered
    error: str = ""


@dataclass
class ColdStartCounter:
    """Whether an input makes ``ColdStartSelector.judge`` refit, from the inputs and captures."""

    seen: int = 0
    since_refit: int = 0
    fitted: bool = False

    def judge(self, captured: bool) -> bool:
        refit = self.seen >= COLD_START_MIN_TRAFFIC and (
            not self.fitted or self.since_refit >= COLD_START_REFIT_EVERY
        )
        if refit:
            self.fitted, self.since_refit = True, 0
        self.seen, self.since_refit = self.seen + 1, self.since_refit + 1
        if captured:  # ``captured`` sends the next input to a refit
            self.since_refit = COLD_START_REFIT_EVERY
        return refit


@dataclass
class TrafficCounter:
    """Whether an input makes ``RecentTraffic`` recalibrate the novelty model to the window."""

    seen: int = 0
    calibrated_at: int | None = None  # None: the model changed (or none was calibrated yet)

    def score(self, scored: bool) -> bool:
        recalibrate = False
        if scored:
            step = min(RECALIBRATE_EVERY, max(1, min(self.seen, TRAFFIC_WINDOW) // 10))
            if self.calibrated_at is None or self.seen - self.calibrated_at >= step:
                recalibrate, self.calibrated_at = True, self.seen
        self.seen += 1
        return recalibrate


@dataclass
class NoveltyFitClock:
    """When ``NoveltyModels.current`` fits a function's novelty model: inline at its first use,
    then in a background thread at the first use >= 30 s after the last fit once labelled data
    moved on (the swap to the new model comes when that fit ends; taken here as at its start)."""

    fitted: tuple[int, float] | None = None  # revision and time of the last fit

    def use(self, revision: int, now: float) -> str | None:
        if self.fitted is None:
            self.fitted = (revision, now)
            return "novelty_fit"
        fitted_revision, fitted_at = self.fitted
        if fitted_revision != revision and now - fitted_at >= NOVELTY_MIN_REFIT_S:
            self.fitted = (revision, now)
            return "novelty_refit_start"
        return None


@dataclass
class Stream:
    """One round's stream against one service: the timed invoker and the admin client."""

    invoker: httpx.Client
    admin: httpx.Client
    bodies: Iterator[bytes]
    pool: Iterator[tuple[bytes, int]]  # labelled-sample candidates (image, digit)
    answers: list[Answer] = field(default_factory=list)
    triggers: list[dict[str, Any]] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)  # marks for the next invoke
    cold: dict[str, ColdStartCounter] = field(default_factory=dict)
    traffic: dict[str, TrafficCounter] = field(default_factory=dict)
    novelty: dict[str, NoveltyFitClock] = field(default_factory=dict)
    revisions: dict[str, int] = field(default_factory=dict)  # labelled samples added
    started: float = field(default_factory=time.perf_counter)

    def invoke(self, function_id: str, phase: str) -> Answer:
        marks, self.pending = self.pending, []
        body = next(self.bodies)
        started = time.perf_counter()
        response = self.invoker.post(f"/v1/functions/{function_id}/invoke", content=body)
        ms = 1000 * (time.perf_counter() - started)
        at = started - self.started
        answer = Answer(phase, len(self.answers), ms, response.status_code, marks, at)
        if response.status_code != 200:
            answer.error = response.text[:200]
        else:
            payload = response.json()
            capture = payload.get("capture") or {}
            answer.reason, answer.version = capture.get("reason"), payload.get("modelVersion")
            cold = self.cold.setdefault(function_id, ColdStartCounter())
            traffic = self.traffic.setdefault(function_id, TrafficCounter())
            if answer.reason is not None:  # the invoke wrote a review item
                marks.append("captured")
            if answer.version is None and cold.judge(answer.reason == "cold_start"):
                marks.append("cold_start_refit")
            revision = self.revisions.get(function_id, 0)
            if answer.version is not None and revision:  # a model serves: novelty is scored
                clock = self.novelty.setdefault(function_id, NoveltyFitClock())
                fit = clock.use(revision, at)
                if fit is not None:
                    marks.append(fit)
                    traffic.calibrated_at = None  # a new model is calibrated afresh
            if traffic.score(capture.get("novelty") is not None):
                marks.append("novelty_recalibration")
        self.answers.append(answer)
        return answer

    def trigger(self, mark: str, action: Callable[[], Any]) -> Any:
        """Run ``action`` between two invokes; the next invoke carries ``mark``."""
        started = time.perf_counter()
        result = action()
        seconds = time.perf_counter() - started
        self.triggers.append({"mark": mark, "before_invoke": len(self.answers), "s": seconds})
        self.pending.append(mark)
        return result

    def create_function(self, name: str, labels: list[str], budget: int) -> str:
        response = self.admin.post("/v1/functions", json={"name": name, "labels": labels})
        response.raise_for_status()
        function_id = str(response.json()["id"])
        if budget:  # captures go on through the whole stream, and so do the refits they set off
            policy = {"maxPerHour": budget, "maxPerDay": budget}
            put = self.admin.put(f"/v1/functions/{function_id}/capture-policy", json=policy)
            put.raise_for_status()
        return function_id

    def add_samples(self, function_id: str, per_label: int) -> int:
        """Add ``per_label`` labelled digits for each of ``LABELS``; returns how many."""
        wanted = dict.fromkeys(range(len(LABELS)), per_label)
        added = 0
        while any(wanted.values()):
            data, digit = next(self.pool)
            if not wanted.get(digit):
                continue
            body = {"data": data_uri(data), "annotation": {"labelName": LABELS[digit]}}
            self.admin.post(f"/v1/functions/{function_id}/samples", json=body).raise_for_status()
            wanted[digit] -= 1
            added += 1
        self.revisions[function_id] = self.revisions.get(function_id, 0) + added
        return added

    def train(self, function_id: str) -> int:
        """Train now and make the new version serve (deployed explicitly if the champion check
        kept the old one); returns it."""
        response = self.admin.post(f"/v1/functions/{function_id}/train")
        response.raise_for_status()
        version = int(response.json()["version"])
        if self.deployed(function_id) != version:
            self.deploy(function_id, version)
        return version

    def deploy(self, function_id: str, version: int) -> None:
        path = f"/v1/functions/{function_id}/models/{version}/deploy"
        self.admin.post(path, params={"pin": "false"}).raise_for_status()

    def deployed(self, function_id: str) -> int | None:
        response = self.admin.get(f"/v1/functions/{function_id}")
        response.raise_for_status()
        return response.json()["deployedVersion"]  # type: ignore[no-any-return]

    def warm_up(self, function_id: str, count: int) -> None:
        """Untimed invokes that capture nothing (nothing joins any counter): the backbone's first
        batches, thread and precision choices, before the timed stream."""
        for _ in range(count):
            path = f"/v1/functions/{function_id}/invoke?capture=false"
            self.invoker.post(path, content=next(self.bodies)).raise_for_status()


def run_round(stream: Stream, args: argparse.Namespace) -> dict[str, Any]:
    """The four phases (see the module notes) against one service; the round's summary."""
    n = args.invokes
    started = time.perf_counter()
    main = stream.create_function("InvokeLatency", [], args.budget)
    stream.warm_up(main, args.warmup)
    stream.pending.append("first_invoke")
    for _ in range(n):
        stream.invoke(main, "cold_start")

    def label_and_train() -> int:
        for name in LABELS:
            response = stream.admin.post(f"/v1/functions/{main}/labels", json={"name": name})
            response.raise_for_status()
        text_tower.append(stream.deployed(main) == 0)  # version 0 serves from the labels
        stream.add_samples(main, args.per_label)
        return stream.train(main)

    text_tower: list[bool] = []
    first = stream.trigger("after_training", label_and_train)
    for _ in range(n):
        stream.invoke(main, "labelled")

    for i in range(n):
        if i == n // 3:
            stream.trigger(
                "after_retrain_deploy",
                lambda: (stream.add_samples(main, args.more_per_label), stream.train(main)),
            )
        if i == 2 * n // 3:
            stream.trigger("after_rollback", lambda: stream.deploy(main, first))
        stream.invoke(main, "redeploy")

    if text_tower[0]:
        zero = stream.create_function("InvokeLatencyZeroShot", LABELS[:2], args.budget)
        stream.pending.append("first_invoke")
        renamed: dict[str, str] = {}

        def create_label(name: str) -> None:
            response = stream.admin.post(f"/v1/functions/{zero}/labels", json={"name": name})
            response.raise_for_status()
            renamed[name] = str(response.json()["id"])

        def rename_label(name: str, new_name: str) -> None:
            path = f"/v1/functions/{zero}/labels/{renamed[name]}"
            stream.admin.put(path, json={"name": new_name}).raise_for_status()

        for i in range(n):
            if i == n // 4:
                stream.trigger("after_label_create", lambda: create_label(LABELS[2]))
            if i == n // 2:
                stream.trigger("after_label_rename", lambda: rename_label(LABELS[2], "digit two"))
            if i == 3 * n // 4:
                stream.trigger("after_label_create", lambda: create_label(LABELS[3]))
            stream.invoke(zero, "zero_shot")
    summary = summarise(stream.answers)
    summary["text_tower"] = text_tower[0]
    summary["triggers"] = stream.triggers
    summary["seconds"] = time.perf_counter() - started
    return summary


def latency(ms: list[float]) -> dict[str, Any]:
    """Count, p50, p99, max, mean (ms) and p99 / p50 of some invokes."""
    if not ms:
        return {"count": 0}
    values = np.asarray(ms)
    p50, p99 = float(np.percentile(values, 50)), float(np.percentile(values, 99))
    return {
        "count": len(ms),
        "p50_ms": p50,
        "p99_ms": p99,
        "max_ms": float(values.max()),
        "mean_ms": float(values.mean()),
        "p99_over_p50": p99 / p50,
    }


def summarise(answers: list[Answer]) -> dict[str, Any]:
    """A round: latency over the stream, per phase, per mark and unmarked; the slowest invokes."""
    ok = [a for a in answers if a.status == 200]
    errors = [a for a in answers if a.status != 200]
    phases = {p: latency([a.ms for a in ok if a.phase == p]) for p in PHASES}
    by_mark: dict[str, list[float]] = {}
    for answer in ok:
        for mark in answer.marks:
            by_mark.setdefault(mark, []).append(answer.ms)
    marks = {
        mark: {"count": len(ms), "median_ms": float(np.median(ms)), "max_ms": float(max(ms))}
        for mark, ms in sorted(by_mark.items())
    }
    slowest = sorted(ok, key=lambda a: -a.ms)[:SLOWEST]

    def row(answer: Answer) -> dict[str, Any]:
        return asdict(answer) | {"ms": round(answer.ms, 2), "at_s": round(answer.at_s, 2)}

    return {
        "stream": latency([a.ms for a in ok]),
        "phases": {p: s for p, s in phases.items() if s["count"]},
        "marks": marks,
        "unmarked": latency([a.ms for a in ok if not a.marks]),
        "slowest": [row(a) for a in slowest],
        # every invoke with a mark other than ``captured`` (the captures are counted in ``marks``)
        "marked": [row(a) for a in ok if set(a.marks) - {"captured"}],
        "captures": dict(Counter(a.reason or "none" for a in ok)),
        "errors": len(errors),
        "first_error": f"{errors[0].status}: {errors[0].error}" if errors else None,
    }


PROBE = """
import dataclasses, json, api, winnow_client
from service.settings import Settings
names = {f.name for f in dataclasses.fields(Settings)}
print(json.dumps({"api": api.__file__, "client": winnow_client.__file__,
                  "admin_key": "admin_key" in names}))
"""


def probe_checkout(checkout: Path) -> dict[str, Any]:
    """Where a checkout's code is imported from (it must be its own), its commit, its auth."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=checkout, env=checkout_env(checkout),
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    info: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    for module in ("api", "client"):
        if not Path(info[module]).resolve().is_relative_to(checkout):
            raise RuntimeError(f"{checkout}: {module} is imported from {info[module]}")
    git = ["git", "-C", str(checkout)]
    commit = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run([*git, "status", "--porcelain"], capture_output=True, text=True)
    info["commit"] = commit.stdout.strip() if commit.returncode == 0 else None
    info["dirty"] = bool(dirty.stdout.strip()) if dirty.returncode == 0 else None
    return info


def median_over_rounds(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Per checkout: the median over rounds of every latency figure, stream, phases and marks."""

    def medians(summaries: list[dict[str, Any]]) -> dict[str, Any]:
        present = [s for s in summaries if s.get("count")]
        if not present:
            return {"count": 0}
        keys = [k for k in present[0] if k != "count"]
        out = {k: float(np.median([s[k] for s in present])) for k in keys}
        return {"count": int(np.median([s["count"] for s in present])), **out}

    phases = {p: medians([r["phases"].get(p, {}) for r in rounds]) for p in PHASES}
    marks = sorted({m for r in rounds for m in r["marks"]})
    return {
        "stream": medians([r["stream"] for r in rounds]),
        "phases": {p: s for p, s in phases.items() if s["count"]},
        "marks": {m: medians([r["marks"].get(m, {}) for r in rounds]) for m in marks},
        "unmarked": medians([r["unmarked"] for r in rounds]),
    }


def print_table(checkouts: dict[str, dict[str, Any]]) -> None:
    print(f"\n{'checkout':<24} {'invokes':<28} {'n':>5} {'p50':>7} {'p99':>7} {'max':>7} p99/p50")
    for name, result in checkouts.items():
        median = result["median"]
        rows = [("stream", median["stream"]), *median["phases"].items()]
        rows += [("unmarked", median["unmarked"])]
        rows += [(f"mark {m}", s) for m, s in median["marks"].items()]
        for label, s in rows:
            if "p50_ms" in s:
                print(
                    f"{name[-24:]:<24} {label:<28} {s['count']:>5} {s['p50_ms']:>7.1f} "
                    f"{s['p99_ms']:>7.1f} {s['max_ms']:>7.1f} {s['p99_over_p50']:>7.2f}"
                )
            else:  # a mark: the median over rounds of its invokes' median and max
                print(
                    f"{name[-24:]:<24} {label:<28} {s['count']:>5} {s['median_ms']:>7.1f} "
                    f"{'':>7} {s['max_ms']:>7.1f}"
                )
    print("(ms; median over rounds; a mark's p50 column is its invokes' median)")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--checkout", type=Path, action="append", help="source tree to serve (repeatable; "
        "default: this one); rounds go through them in the order given",
    )  # fmt: skip
    parser.add_argument("--backbone", default="efficientnet-lite0")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--invokes", type=int, default=400, help="timed invokes per phase")
    parser.add_argument("--warmup", type=int, default=8, help="untimed invokes before phase 1")
    parser.add_argument("--per-label", type=int, default=8, help="labelled samples per label")
    parser.add_argument("--more-per-label", type=int, default=4, help="more for the retrain")
    parser.add_argument(
        "--budget", type=int, default=10_000, help="captures per hour and day (0: the default)"
    )
    parser.add_argument("--image-size", type=int, default=224, help="JPEG width and height")
    parser.add_argument("--batch-size", type=int, default=8, help="the service's --batch-size")
    parser.add_argument("--encoder-threads", type=int, default=0, help="its --encoder-threads")
    parser.add_argument("--start-timeout", type=float, default=180.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--output", type=Path, default=ROOT / "bench" / "results" / "invoke_latency.json"
    )
    args = parser.parse_args(argv)
    if args.invokes <= COLD_START_MIN_TRAFFIC:
        print(f"note: {args.invokes} invokes a phase: the cold start never refits")
    checkouts = [path.resolve() for path in (args.checkout or [ROOT])]
    names = [str(path) for path in (args.checkout or [Path(".")])]
    if len(set(checkouts)) != len(checkouts):
        raise SystemExit("each --checkout once")
    args.backbone, backbone_name = served_backbone(args.backbone)
    args.clients = 1  # running_service sizes the queue from it
    probes = [probe_checkout(path) for path in checkouts]

    count = args.warmup + 4 * args.invokes + 40 * (args.per_label + args.more_per_label)
    images = make_images(count, args.image_size, args.seed)
    stream_end = args.warmup + 4 * args.invokes
    bodies = [data_uri_body(data) for data, _ in images[:stream_end]]
    pool = images[stream_end:]
    load_before = os.getloadavg()
    print(f"issue 28 invoke latency: backbone {backbone_name}, {args.invokes} invokes a phase")

    results: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    precision: bytes | None = None  # the first service's --precision auto choice, for all
    with tempfile.TemporaryDirectory(prefix="winnow-bench-") as tmp:
        for round_number in range(args.rounds):
            for name, checkout, probe in zip(names, checkouts, probes, strict=True):
                data_dir = Path(tmp) / f"r{round_number}-{checkouts.index(checkout)}" / "data"
                data_dir.mkdir(parents=True)
                if precision is not None:
                    (data_dir / "precision.json").write_bytes(precision)
                flags: list[str] = []
                headers: dict[str, str] = {}
                if probe["admin_key"]:
                    flags = ["--admin-key", ADMIN_KEY]
                    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
                with (
                    running_service(args, data_dir, flags, checkout=checkout) as service,
                    httpx.Client(
                        base_url=service.url,
                        headers={**headers, "content-type": "application/json"},
                        timeout=120,
                    ) as invoker,
                    httpx.Client(base_url=service.url, headers=headers, timeout=900) as admin,
                ):
                    stream = Stream(invoker, admin, iter(bodies), iter(pool))
                    summary = run_round(stream, args)
                if precision is None and (data_dir / "precision.json").exists():
                    precision = (data_dir / "precision.json").read_bytes()
                results[name].append(summary)
                s = summary["stream"]
                print(
                    f"  round {round_number + 1} {name}: p50 {s['p50_ms']:.1f} ms, "
                    f"p99 {s['p99_ms']:.1f}, max {s['max_ms']:.1f}, p99/p50 "
                    f"{s['p99_over_p50']:.2f}, errors {summary['errors']}, "
                    f"{summary['seconds']:.0f} s",
                    flush=True,
                )
                shutil.rmtree(data_dir.parent, ignore_errors=True)

    report_checkouts: dict[str, dict[str, Any]] = {}
    for name, probe in zip(names, probes, strict=True):
        rounds = results[name]
        median = median_over_rounds(rounds)
        errors = sum(r["errors"] for r in rounds)
        ratio = median["stream"]["p99_over_p50"]
        report_checkouts[name] = {
            "source": probe,
            "median": median,
            "passed": ratio <= TARGET_RATIO and errors == 0,
            "errors": errors,
            "zero_shot_phase": "run" if rounds[0]["text_tower"] else (
                "skipped: the backbone has no text tower, so no version 0"
            ),
            "rounds": rounds,
        }  # fmt: skip
    report = {
        "bench": "issue 28 invoke latency",
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
        | {"checkout": names},
        "backbone": backbone_name,
        "image": f"{args.image_size}x{args.image_size} JPEG sent as a JSON data URI",
        "target": f"p99 <= {TARGET_RATIO} x p50 over the stream, one client",
        "precision_memory": json.loads(precision) if precision else None,
        "checkouts": report_checkouts,
        "machine": f"{platform.platform()}, {os.cpu_count()} CPU cores",
        "load_average": {"before": load_before, "after": os.getloadavg()},
    }
    print_table(report_checkouts)
    for name, result in report_checkouts.items():
        verdict = "passed" if result["passed"] else "failed"
        print(
            f"  {name}: p99/p50 {result['median']['stream']['p99_over_p50']:.2f} "
            f"(target <= {TARGET_RATIO}) {verdict}; zero-shot phase {result['zero_shot_phase']}"
        )
    write_result(args.output, report)
    print(f"  wrote {args.output}")
    return report


if __name__ == "__main__":
    main()

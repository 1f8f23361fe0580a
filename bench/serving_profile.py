"""Where a served invoke's time goes: py-spy samples every thread of the running service.

py-spy reads the stacks of another process from outside it (as root, or with ptrace permission),
so the service runs unmodified and every thread is seen: the event loop (HTTP, multipart), the
request threads (database, decoding, the head, capture), the encoder's worker (the forward pass).
It samples every thread, waiting or not (``--idle``), without pausing the service
(``--nonblocking``), and each thread's CPU time over the same window is read from /proc.
:func:`summarise` sorts the samples into stages:

* a sample whose innermost frame blocks (``wait``, ``select``, a thread pool waiting for work) is a
  wait, named by the code that waits: a request thread waiting for its batch's vectors, the
  encoder's worker waiting for images, an idle thread;
* any other sample counts for a step of the invoke (database, body parsing, decoding, capture,
  the head) if any of its frames belongs to one, so a database read made by capture counts as
  database and numpy under capture as capture; else for the stage of its innermost frame that
  belongs to one (the encoder, validation and JSON, logging, the HTTP server), so the middleware
  around every request does not take what runs inside it. :func:`stage_of` has the rule.

Thread time per stage is divided by the invokes answered while sampling: "ms per invoke". A
stage's time on the stack is wall time of the threads in it, waiting for the GIL included; its
CPU time is each thread's CPU (exact, from /proc) shared out over that thread's stages in
proportion to its samples (an estimate: it assumes a thread waits for the GIL alike in every
stage). py-spy cannot tell whether the OS runs a thread (its own check counts GIL waiters as
running here), hence the /proc clock. C code with no Python frame of its own (uvloop's event loop,
httptools' parser) counts for the frame that runs it: ``Runner.run``, HTTP, idle time included.
Threads with no Python frame (torch's and FAISS's OpenMP teams) have CPU time only.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bench.live import wait_until

ROOT = Path(__file__).resolve().parents[1]
TOP = 30  # functions listed by inclusive and by self time

# (stage, what it holds, path prefixes of its frames); see stage_of. Paths are shortened: inside
# the checkout, site-packages or the standard library.
STAGES: list[tuple[str, str, tuple[str, ...]]] = [
    (
        "database",
        "database and blob store (SQLAlchemy, sqlite3, store/)",
        ("sqlalchemy/", "sqlmodel/", "sqlite3/", "psycopg/", "store/"),
    ),
    (
        "body",
        "request body parsing (multipart, data URI; api/inputs.py)",
        ("starlette/formparsers.py", "python_multipart/", "multipart/", "api/inputs.py"),
    ),
    (
        "decode",
        "image decoding and preprocessing (PIL, torchvision, embeddings/decode.py, preprocess)",
        ("PIL/", "torchvision/", "embeddings/decode.py", "embeddings/pix"),  # pixels, pixel_budget
    ),
    (
        "capture",
        "capture (capture/, service/capture.py, novelty, review_queue/, FAISS)",
        ("capture/", "service/capture.py", "service/novelty.py", "review_queue/", "faiss/"),
    ),
    ("head", "the head (learner/, scikit-learn)", ("learner/", "sklearn/", "scipy/", "joblib/")),
    (
        "encoder",
        "encoder: forward pass and batching (torch, embeddings/)",
        ("torch/", "embeddings/"),
    ),
    (
        "response",
        "validation and JSON (pydantic, json, service/schemas/)",
        ("pydantic/", "pydantic_core/", "json/", "fastapi/encoders.py", "service/schemas/"),
    ),
    (
        "observe",
        "logging and metrics",
        ("logging/", "prometheus_client/", "service/metrics.py", "api/observability.py"),
    ),
    ("service", "the rest of service/ and api/ (auth, routing, use cases)", ("service/", "api/")),
    (
        "http",
        "HTTP server, routing and thread hand-off (uvicorn, h11/httptools, starlette, anyio)",
        ("uvicorn/", "h11/", "httptools/", "starlette/", "fastapi/", "anyio/", "asyncio/"),
    ),
]
# Steps of an invoke that take every frame beneath them (numpy under capture, torch under
# preprocessing); the other stages are wrappers or helpers and go by a sample's innermost frame.
STEPS = ("database", "body", "decode", "capture", "head")
OTHER = ("other", "anything else")
_ENTRY_POINTS = ("api/cli.py",)  # under every frame of the main thread: no stage
# Innermost frames (function name, path) of a thread that blocks rather than works. uvloop's loop
# is C: its ``Runner.run`` is both idle and working (sockets, httptools), and counts as HTTP.
_WAIT_LEAVES = {
    ("wait", "threading.py"),
    ("_wait_for_tstate_lock", "threading.py"),
    ("get", "queue.py"),
    ("select", "selectors.py"),
    ("_worker", "concurrent/futures/thread.py"),
}
WAITS = {
    "wait_batch": "request thread waiting for its batch (queue, batch window, forward pass)",
    "wait_encoder_idle": "encoder worker waiting for images or for its batch to fill",
    "wait_decode_budget": "request thread waiting for room in the decode budget",
    "wait_capture": "waiting on a capture lock",
    "wait_database": "waiting on the database",
    "wait_event_loop": "event loop between events (asyncio's own loop; uvloop's counts as HTTP)",
    "wait_idle": "idle thread (thread pool waiting for work, other)",
}


def py_spy() -> str:
    """Path of the py-spy executable (beside this Python, else on PATH).

    Raises:
        RuntimeError: not installed (it comes with the ``dev`` extra).
    """
    here = Path(sys.executable).parent
    found = shutil.which("py-spy", path=f"{here}{os.pathsep}{os.environ.get('PATH', '')}")
    if found is None:
        raise RuntimeError("--profile needs py-spy: pip install py-spy (in the dev extra)")
    return found


@dataclass
class Sampled:
    """What :func:`sampling` recorded over ``seconds``: py-spy's collapsed stacks of every thread
    and each thread's CPU seconds (by OS thread id, as py-spy names threads)."""

    stacks: str = ""
    cpu: dict[int, float] = field(default_factory=dict)
    seconds: float = 0.0
    errors: int = 0  # samples py-spy could not take
    rate: int = 0


def thread_cpu_seconds(pid: int) -> dict[int, float]:
    """User + system CPU seconds of each thread of ``pid`` so far, from /proc (Linux)."""
    seconds = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended
            continue
        seconds[int(task.name)] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return seconds


@contextmanager
def sampling(pid: int, *, rate: int = 100) -> Iterator[Sampled]:
    """Sample every thread of process ``pid`` with py-spy while the body runs.

    Yields once py-spy has attached; the result is filled in when the body ends.

    Raises:
        RuntimeError: py-spy could not attach (no ptrace permission: run as root, or set
            ``kernel.yama.ptrace_scope`` to 0) or failed.
    """
    sampled = Sampled(rate=rate)
    with tempfile.TemporaryDirectory(prefix="winnow-profile-") as tmp:
        output, log_path = Path(tmp) / "stacks.txt", Path(tmp) / "py-spy.log"
        command = [
            py_spy(), "record", "--pid", str(pid), "--rate", str(rate), "--format", "raw",
            "--idle", "--nonblocking", "--threads", "--full-filenames", "--nolineno",
            "--output", str(output),
        ]  # fmt: skip
        with open(log_path, "wb") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_until(
                lambda: "Sampling process" in log_path.read_text() or process.poll() is not None,
                timeout=30,
                what="py-spy to attach",
            )
            if process.poll() is not None:
                raise RuntimeError(f"py-spy failed: {log_path.read_text()[-2000:]}")
            cpu_before, started = thread_cpu_seconds(pid), time.perf_counter()
            yield sampled
            sampled.seconds = time.perf_counter() - started
            cpu_after = thread_cpu_seconds(pid)
            process.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
            process.wait(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        errors = re.search(r"Errors: (\d+)", log_path.read_text())
        if errors is None or not output.exists():
            raise RuntimeError(f"py-spy wrote nothing: {log_path.read_text()[-2000:]}")
        sampled.errors, sampled.stacks = int(errors[1]), output.read_text()
        sampled.cpu = {
            tid: seconds - cpu_before.get(tid, 0.0) for tid, seconds in cpu_after.items()
        }


@dataclass(frozen=True)
class Frame:
    function: str
    path: str  # shortened, see short_path

    def __str__(self) -> str:
        return f"{self.function} ({self.path})"


def short_path(path: str) -> str:
    """``path`` relative to site-packages (checked first: ``make install``'s virtual environment
    lies inside the checkout), the checkout or the standard library."""
    for marker in ("/site-packages/", "/dist-packages/"):
        if marker in path:
            return path.rsplit(marker, 1)[1]
    if path.startswith(f"{ROOT}/"):
        return path[len(str(ROOT)) + 1 :]
    match = re.search(r"/lib/python3\.\d+/(.*)$", path)
    return match.group(1) if match else path


def parse(stacks: str) -> list[tuple[str, list[Frame], int]]:
    """py-spy's raw (collapsed) output with ``--threads``: (thread, frames from the root to the
    innermost, sample count) per distinct stack; a thread reads ``thread (<id>): <name>``."""
    parsed = []
    for line in stacks.splitlines():
        body, _, count = line.rpartition(" ")
        if not body or not count.isdigit():
            continue
        thread, *names = body.split(";")
        frames = []
        for name in names:
            function, _, path = name.rpartition(" (")
            frames.append(Frame(function or name, short_path(path.removesuffix(")"))))
        parsed.append((thread, frames, int(count)))
    return parsed


def thread_group(thread: str) -> str:
    """The kind of a thread, its name up to a number: ``thread (12): AnyIO worker thread`` ->
    ``AnyIO worker thread``, ``ThreadPoolExecutor-0_3`` -> ``ThreadPoolExecutor``."""
    name = thread.split(": ", 1)[-1]
    return re.sub(r"[-_ ]?\d+(_\d+)?$", "", name) or name


def stage_of(frames: list[Frame], thread: str) -> str:
    """The stage (a key of :data:`STAGES` or :data:`WAITS`, or ``other``) one sample counts for.

    A blocked sample is a wait. Otherwise the first of the :data:`STEPS` that any frame belongs
    to takes it (a database read made by capture is database, a PIL call made by preprocessing is
    decoding); else the stage of its innermost frame that belongs to one, so the middleware
    around every request does not take what runs inside it.
    """
    if frames:
        leaf = frames[-1]
        if (leaf.function.rsplit(".", 1)[-1], leaf.path) in _WAIT_LEAVES:
            return _wait_kind(frames, thread)
    frames = [frame for frame in frames if not frame.path.startswith(_ENTRY_POINTS)]
    for stage, _, prefixes in STAGES:  # the first step any frame belongs to
        if stage in STEPS and any(_belongs(frame, stage, prefixes) for frame in frames):
            return stage
    for frame in reversed(frames):  # else the innermost frame that belongs to a stage
        for stage, _, prefixes in STAGES:
            if stage not in STEPS and frame.path.startswith(prefixes):
                return stage
    return OTHER[0]


def _belongs(frame: Frame, stage: str, prefixes: tuple[str, ...]) -> bool:
    return frame.path.startswith(prefixes) or (stage == "decode" and "preprocess" in frame.function)


def _wait_kind(frames: list[Frame], thread: str) -> str:
    """Which wait a blocked sample is, from the innermost frame of the project that waits."""
    for frame in reversed(frames):
        path = frame.path
        if path.startswith("embeddings/pixel_budget.py"):
            return "wait_decode_budget"
        if path.startswith("embeddings/"):
            return "wait_encoder_idle" if "encoder" in thread_group(thread) else "wait_batch"
        if path.startswith(("capture/", "service/capture.py", "service/novelty.py")):
            return "wait_capture"
        if path.startswith(("sqlalchemy/", "store/")):
            return "wait_database"
    if frames and frames[-1].path.startswith("asyncio/"):
        return "wait_event_loop"
    return "wait_idle"


NATIVE = "threads with no Python frame (torch's and FAISS's OpenMP teams)"


def thread_id(thread: str) -> int | None:
    """The OS thread id in py-spy's ``thread (<id>): <name>``."""
    match = re.match(r"thread \((\d+)\)", thread)
    return int(match[1]) if match else None


@dataclass
class Summary:
    text: str
    ms_per_invoke: dict[str, dict[str, float]]  # cpu / on_stack / waits -> stage -> thread ms
    # per answered invoke


def summarise(sampled: Sampled, *, invokes: int, header: list[str], top: int = TOP) -> Summary:
    """A text report of what :func:`sampling` recorded: ms per invoke by stage (CPU and on a
    thread's stack), the waits, by kind of thread, and the ``top`` functions by inclusive and
    self time on the stack.

    Args:
        sampled: the stacks and CPU times, over ``sampled.seconds`` in which the service
            answered ``invokes`` requests.
        header: lines that say what was measured, written first.
        top: functions listed in each ranking.
    """
    per_invoke = 1000.0 / max(invokes, 1)  # seconds over the window -> ms per invoke
    samples: Counter[str] = Counter()  # thread -> samples
    work: dict[str, Counter[str]] = defaultdict(Counter)  # thread -> stage -> samples
    waits: Counter[str] = Counter()
    inclusive: Counter[Frame] = Counter()
    own: Counter[Frame] = Counter()
    stage_of_function: dict[Frame, Counter[str]] = defaultdict(Counter)
    for thread, frames, count in parse(sampled.stacks):
        samples[thread] += count
        stage = stage_of(frames, thread)
        if stage in WAITS:
            waits[stage] += count
            continue
        work[thread][stage] += count
        if frames:
            own[frames[-1]] += count
            for frame in set(frames):
                inclusive[frame] += count
                stage_of_function[frame][stage] += count
    ticks = max(samples.values(), default=0)  # --idle samples every thread at each tick
    ms_per_sample = sampled.seconds / max(ticks, 1) * per_invoke
    on_stack: Counter[str] = Counter()
    for counts in work.values():
        on_stack.update(counts)
    cpu: dict[str, float] = defaultdict(float)  # stage -> CPU seconds shared out by samples
    kinds: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    seen = set()
    for thread, total in samples.items():
        tid, kind = thread_id(thread), thread_group(thread)
        seen.add(tid)
        seconds = sampled.cpu.get(tid, 0.0) if tid is not None else 0.0
        worked = sum(work[thread].values())
        for stage, count in work[thread].items():
            cpu[stage] += seconds * count / worked
        if not worked:
            cpu[OTHER[0]] += seconds
        kinds[kind]["threads"] += 1
        kinds[kind]["cpu"] += seconds
        kinds[kind]["stack"] += worked
        kinds[kind]["wait"] += total - worked
    native = sum(seconds for tid, seconds in sampled.cpu.items() if tid not in seen)
    cpu_total = sum(cpu.values()) + native
    stack_total = sum(on_stack.values())

    def ms(count: float) -> str:
        return f"{count * ms_per_sample:9.2f}"

    def cpu_ms(seconds: float) -> str:
        return f"{seconds * per_invoke:9.2f}"

    def share(part: float, total: float) -> str:
        return f"{100.0 * part / total if total else 0.0:5.1f}%"

    lines = [*header, ""]
    lines.append(
        f"{sampled.seconds:.1f} s sampled, {ticks / max(sampled.seconds, 1e-9):.0f} samples/s "
        f"per thread ({sampled.errors} lost), {invokes} invokes answered; ms = thread "
        "milliseconds per answered invoke"
    )
    lines += [
        "",
        "Work by stage (see bench/serving_profile.py for which sample counts where); CPU is",
        "each thread's /proc CPU time shared out over its samples, on stack includes GIL waits",
        f"  {'CPU ms':>9}  {'share':>6}  {'on stack':>9}  stage",
    ]
    for stage, description, _ in [*STAGES, (*OTHER, ())]:
        lines.append(
            f"  {cpu_ms(cpu[stage])}  {share(cpu[stage], cpu_total)}  {ms(on_stack[stage])}  "
            f"{description}"
        )
    lines.append(f"  {cpu_ms(native)}  {share(native, cpu_total)}  {'':>9}  {NATIVE}")
    lines.append(f"  {cpu_ms(cpu_total)}  100.0%  {ms(stack_total)}  all work")
    lines += ["", "Waits (latency, not cost)", f"  {'ms':>9}  wait"]
    for wait, description in WAITS.items():
        lines.append(f"  {ms(waits[wait])}  {description}")
    lines += ["", "By kind of thread"]
    lines.append(f"  {'CPU ms':>9}  {'on stack':>9}  {'waiting':>9}  threads")
    for kind, figures in sorted(kinds.items(), key=lambda item: -item[1]["cpu"]):
        lines.append(
            f"  {cpu_ms(figures['cpu'])}  {ms(figures['stack'])}  {ms(figures['wait'])}  "
            f"{kind} (x{figures['threads']:.0f})"
        )
    lines.append(f"  {cpu_ms(native)}  {'':>9}  {'':>9}  {NATIVE}")
    for title, ranking in (("inclusive", inclusive), ("self", own)):
        lines += ["", f"Top {top} functions by {title} time on the stack (waits left out)"]
        lines.append(f"  {'on stack':>9}  {'share':>6}  {'stage':<9} function")
        for frame, count in ranking.most_common(top):
            stage = stage_of_function[frame].most_common(1)[0][0]
            lines.append(f"  {ms(count)}  {share(count, stack_total)}  {stage:<9} {frame}")
    stages = [stage for stage, _, _ in STAGES] + [OTHER[0]]
    return Summary(
        text="\n".join(lines) + "\n",
        ms_per_invoke={
            "cpu": {
                **{stage: cpu[stage] * per_invoke for stage in stages},
                "native": native * per_invoke,
            },
            "on_stack": {stage: on_stack[stage] * ms_per_sample for stage in stages},
            "waits": {wait: waits[wait] * ms_per_sample for wait in WAITS},
        },
    )

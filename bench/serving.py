"""B2: invoke throughput and latency of the running HTTP service against a raw backbone loop.

The service is started for real (``python -m api.cli serve`` in a subprocess, on a free port with a
temporary data dir); a function is created, given a few labelled samples and trained; then
``--clients`` threads, each with its own keep-alive ``httpx.Client``, post the images (``--body``:
multipart ``file`` uploads, what apps send, or JSON data URIs) as fast as they are answered;
throughput is timed over a window in which every client has a request in flight (after
``--warmup`` answers, for ``--requests`` answers). The same images are also encoded by a plain
loop over the same backbone at the same batch size and the same precision (``load_backbone`` +
decode + preprocess + encode; the fastest of several thread set-ups counts) in a child process,
in rounds interleaved with the service's so that background load on a shared machine hits both
sides. The service and the raw loop each run in a session of their own, so Linux's autogroup
scheduler gives each the same share of a busy machine and the HTTP clients (remote in production)
take share from neither.

Both sides run the image tower at one precision (``--precision``): the service serves
``--precision auto``'s choice, which on a CPU with native bf16 runs about twice fp32's speed, so a
raw loop left at fp32 would make the service look faster than the model. With ``auto`` (default)
the raw-loop process measures the choice once, as the service would at start, and the service is
started with that precision forced; a precision named is passed to both.

The figure of merit is the throughput ratio service / raw (target >= 0.9): what the HTTP layer,
batching, the head and capture cost on top of the model. It is measured with ``capture=false`` and
with capture on (the default policy), and reported with client-side p50 / p99 latency, both under
the full load and for one client alone.

``--bare`` also drives :mod:`bench.bare_http` in every round: the same model behind a bare HTTP
route (no authentication, database, head or capture), the most any HTTP service can reach here.

``--profile`` adds a phase (capture on, or off with ``--profile-capture off``) after the measured
rounds (so they are not slowed) during which py-spy samples every thread of the service process,
and writes where an invoke's time goes
(HTTP and multipart parsing, database, capture, waiting for the batch, the encoder's forward pass)
to ``bench/results/serving_profile[_<label>].txt`` (:mod:`bench.serving_profile`).

Usage (from the repository root)::

    python -m bench.serving                         # efficientnet-lite0, real weights
    python -m bench.serving --backbone clip:ViT-B-32/random-init
    python -m bench.serving --backbone tiny-clip    # quick check of the harness
    python -m bench.serving --profile --label before  # also where an invoke's time goes
    python -m bench.serving --runtime onnx --bare   # and the bare route's ceiling beside it

``clip:<arch>/random-init`` serves an open_clip architecture with seeded random weights, saved
once as a checkpoint under ``bench/cache/`` and loaded like any local checkpoint: the compute of the
real weights, which cannot be downloaded here (throughput does not depend on the weights' values).

Writes ``bench/results/serving.json`` (``serving_<label>.json`` with ``--label``) and prints a
summary.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import io
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # also runnable as ``python bench/serving.py``
    sys.path.insert(0, str(ROOT))

from bench.cpu_precision import machine  # noqa: E402
from bench.live import free_port  # noqa: E402
from bench.results_file import write_result  # noqa: E402

TARGET_RATIO = 0.9
RANDOM_INIT = "random-init"
CACHE = ROOT / "bench" / "cache"
MAX_PIXELS = 40_000_000
ADMIN_KEY = "bench-admin-key"
LABELS = ["zero", "one", "two", "three"]  # digit classes used to train the function


def served_backbone(spec: str) -> tuple[str, str]:
    """The spec to serve for ``spec``, and how the report names it.

    ``clip:<arch>/random-init`` becomes ``clip:<arch>/<checkpoint>``, the checkpoint of a seeded
    random-init model, written once (to a temporary name, then renamed).
    """
    body = spec.removeprefix("clip:")
    arch, _, weights = body.partition("/")
    if body == spec or weights != RANDOM_INIT:
        return spec, spec
    path = CACHE / RANDOM_INIT / f"{arch}.pt"
    if not path.exists():
        import open_clip
        import torch

        path.parent.mkdir(parents=True, exist_ok=True)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = open_clip.create_model(arch)
        partial = path.with_suffix(".partial")
        torch.save(model.state_dict(), partial)
        partial.replace(path)
    return f"clip:{arch}/{path}", f"clip:{arch} at random init"


def make_images(count: int, size: int, seed: int) -> list[tuple[bytes, int]]:
    """``count`` distinct ``size``x``size`` RGB JPEGs of handwritten digits with their digit.

    Deterministic for a given ``seed``: the raw-loop process rebuilds the same stream.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(digits.images), size=count, replace=count > len(digits.images))
    images = []
    for i in picks:
        grey = (255 - digits.images[i] * 16).clip(0, 255).astype(np.uint8)
        tint = rng.uniform(0.6, 1.0, size=3)  # a colour cast per image, so every JPEG differs
        rgb = (grey[:, :, None] * tint[None, None, :]).astype(np.uint8)
        picture = Image.fromarray(rgb).resize((size, size), Image.Resampling.BICUBIC)
        buffer = io.BytesIO()
        picture.save(buffer, format="JPEG", quality=90)
        images.append((buffer.getvalue(), int(digits.target[i])))
    return images


def add_stream_arguments(parser: argparse.ArgumentParser) -> None:
    """The backbone, the invoke stream and the labelled samples: arguments this bench and
    bench/ray_encoder.py share (``stream_and_training_images`` reads them)."""
    parser.add_argument("--backbone", default="efficientnet-lite0")
    parser.add_argument("--requests", type=int, default=160, help="timed invokes per phase")
    parser.add_argument("--images", type=int, default=160, help="distinct images in the stream")
    parser.add_argument("--image-size", type=int, default=224, help="JPEG width and height")
    parser.add_argument("--per-label", type=int, default=5, help="labelled samples per label")
    parser.add_argument("--seed", type=int, default=0)


def add_load_arguments(parser: argparse.ArgumentParser) -> None:
    """How the service runs and how hard it is driven: arguments this bench and
    bench/serving_checkouts.py share (``running_service`` and ``drive`` read them)."""
    parser.add_argument("--batch-size", type=int, default=8, help="service and raw-loop batch")
    parser.add_argument(
        "--encoder-threads", type=int, default=0, help="the service's --encoder-threads (0: auto)"
    )
    parser.add_argument("--clients", type=int, default=16, help="concurrent HTTP clients")
    parser.add_argument(
        "--warmup", type=int, default=32, help="untimed invokes before each phase's window"
    )
    parser.add_argument("--start-timeout", type=float, default=180.0)
    parser.add_argument(
        "--key",
        choices=("admin", "invoke"),
        default="admin",
        help="the key invokes send: the admin key, or a stored key with the invoke scope on the "
        "function (what an app holds)",
    )


def stream_and_training_images(
    args: argparse.Namespace,
) -> tuple[list[tuple[bytes, int]], list[tuple[bytes, int]]]:
    """The invoke stream and the pool the labelled samples come from (digits 0-3 are ~40%)."""
    images = make_images(
        args.images + 10 * len(LABELS) * args.per_label, args.image_size, args.seed
    )
    return images[: args.images], images[args.images :]


def raw_throughput(
    backbone: Any, images: list[bytes], batch_size: int, max_pixels: int
) -> dict[str, float]:
    """Images per second of decode + preprocess + encode in one thread, ``batch_size`` at a time."""
    import torch

    from embeddings import decode_image

    started, cpu_started = time.perf_counter(), time.process_time()
    for start in range(0, len(images), batch_size):
        chunk = images[start : start + batch_size]
        batch = torch.stack(
            [backbone.preprocess(decode_image(d, max_pixels=max_pixels)) for d in chunk]
        )
        backbone.encode(batch)
    return _rates(len(images), started, cpu_started)


def _rates(images: int, started: float, cpu_started: float) -> dict[str, float]:
    """Throughput and CPU per image of ``images`` encoded since ``started`` (perf_counter) and
    ``cpu_started`` (process_time, every thread of the process)."""
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started
    return {
        "images": images,
        "seconds": seconds,
        "images_per_s": images / seconds,
        "cpu_ms_per_image": 1000.0 * cpu_seconds / images,
    }


def parallel_raw_throughput(
    backbone: Any, images: list[bytes], batch_size: int, max_pixels: int, workers: int
) -> dict[str, float]:
    """:func:`raw_throughput` of ``workers`` threads at once, one torch thread each, each taking
    every ``workers``-th batch: images per second of wall time until the last one ends."""
    import torch

    batches = [images[start : start + batch_size] for start in range(0, len(images), batch_size)]
    ready = threading.Barrier(workers + 1)

    def run(share: list[bytes]) -> None:
        torch.set_num_threads(1)
        ready.wait()
        raw_throughput(backbone, share, batch_size, max_pixels)

    # each thread's share, batch after batch: only the last batch of all may be short
    shares = [[image for batch in batches[k::workers] for image in batch] for k in range(workers)]
    threads = [threading.Thread(target=run, args=(share,)) for share in shares]
    for thread in threads:
        thread.start()
    ready.wait()
    started, cpu_started = time.perf_counter(), time.process_time()
    for thread in threads:
        thread.join()
    return _rates(len(images), started, cpu_started)


def best_raw_throughput(
    backbone: Any, images: list[bytes], batch_size: int, max_pixels: int
) -> dict[str, Any]:
    """The fastest of :func:`raw_throughput` run several ways, the fair baseline for the service.

    In the calling thread with torch's default thread count, in a fresh thread with each
    thread count the encoder worker chooses from (``thread_choices``): on a loaded machine
    torch's OpenMP team can be several times slower in one of these than in another; and on a
    CPU, as the service's encoder runs, in :func:`embeddings.pool.default_workers` threads at
    once with one torch thread each (:func:`parallel_raw_throughput`), which can beat one thread
    using every core (1.6x for ONNX Runtime int8 on a 2-core AVX2 EPYC).
    """
    import torch

    from embeddings.pool import default_workers
    from embeddings.threads import thread_choices

    variants: dict[str, Any] = {
        "main_thread": {
            "torch_threads": torch.get_num_threads(),
            **raw_throughput(backbone, images, batch_size, max_pixels),
        }
    }
    for count in thread_choices(backbone.device) or [torch.get_num_threads()]:
        result: dict[str, Any] = {"torch_threads": count}

        def run(count: int = count, result: dict[str, Any] = result) -> None:
            torch.set_num_threads(count)
            result.update(raw_throughput(backbone, images, batch_size, max_pixels))

        thread = threading.Thread(target=run)
        thread.start()
        thread.join()
        variants[f"worker_thread_{count}"] = result
    workers = default_workers(backbone.device)
    if workers > 1:
        variants[f"{workers}_worker_threads"] = {
            "torch_threads": 1,
            "workers": workers,
            **parallel_raw_throughput(backbone, images, batch_size, max_pixels, workers),
        }
    best = max(variants.values(), key=lambda run: run["images_per_s"])
    return {
        "images_per_s": best["images_per_s"],
        "cpu_ms_per_image": best["cpu_ms_per_image"],
        "variants": variants,
    }


def service_settings() -> set[str]:
    """Names of the settings this checkout's service has (older ones lack some)."""
    from service.settings import Settings

    return {f.name for f in dataclasses.fields(Settings)}


def auth_headers() -> tuple[list[str], dict[str, str]]:
    """CLI flags and request headers for the admin key, if this version of the service has one."""
    if "admin_key" in service_settings():
        return ["--admin-key", ADMIN_KEY], {"Authorization": f"Bearer {ADMIN_KEY}"}
    return [], {}


@dataclasses.dataclass(frozen=True)
class RunningService:
    url: str
    pid: int

    def cpu_seconds(self) -> float | None:
        """User + system CPU time of the service process (every thread), from /proc; None where
        there is no /proc (not Linux)."""
        try:
            stat = Path(f"/proc/{self.pid}/stat").read_text()
        except OSError:
            return None
        fields = stat.rsplit(")", 1)[1].split()  # after the command name: state, ppid, ...
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def checkout_env(checkout: Path) -> dict[str, str]:
    """The environment in which ``python -m ...`` runs ``checkout``'s own code (its client too),
    ahead of the project the virtual environment has installed."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(checkout), str(checkout / "client")])}


@contextmanager
def running_service(
    args: argparse.Namespace, data_dir: Path, flags: list[str], *, checkout: Path | None = None
) -> Iterator[RunningService]:
    """Start ``winnow serve`` in a subprocess; yield it once /health answers.

    ``checkout``: serve that source tree's code (cwd and PYTHONPATH) instead of this one's.
    """
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "api.cli",
        "serve",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
        "--backbone",
        args.backbone,
        "--batch-size",
        str(args.batch_size),
        "--queue-limit",
        str(max(64, 4 * args.clients)),
        "--encoder-threads",
        str(args.encoder_threads),
        "--retrain-interval",
        "0",
        "--seed",
        "0",
        "--log-level",
        "warning",
        *flags,
    ]
    with started_server(
        command, data_dir.parent / "serve.log", port, args.start_timeout, checkout=checkout
    ) as server:
        yield server


@contextmanager
def running_bare(
    args: argparse.Namespace, log_path: Path, runtime: str, precision: str
) -> Iterator[RunningService]:
    """Start :mod:`bench.bare_http` (the ceiling) with the service's tower and batching."""
    port = free_port()
    command = [sys.executable, "-m", "bench.bare_http", "--port", str(port)]
    command += ["--backbone", args.backbone, "--batch-size", str(args.batch_size)]
    command += ["--runtime", runtime, "--precision", precision]
    command += ["--queue-limit", str(max(64, 4 * args.clients))]
    command += ["--encoder-threads", str(args.encoder_threads)]
    with started_server(command, log_path, port, args.start_timeout) as server:
        yield server


@contextmanager
def started_server(
    command: list[str],
    log_path: Path,
    port: int,
    start_timeout: float,
    *,
    checkout: Path | None = None,
) -> Iterator[RunningService]:
    """Run ``command`` (an HTTP server on ``port``) in a session of its own; yield it once its
    /health answers; stop it at the end."""
    with open(log_path, "wb") as log:
        process = subprocess.Popen(  # own session: see ``raw_loop_process``
            command,
            cwd=checkout or ROOT,
            env=None if checkout is None else checkout_env(checkout),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        base_url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + start_timeout
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"{command[2]} exited: {log_path.read_text()[-2000:]}")
                try:
                    if httpx.get(f"{base_url}/health", timeout=2).status_code < 500:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{command[2]} did not start in {start_timeout} s")
                time.sleep(0.2)
            yield RunningService(base_url, process.pid)
        finally:
            process.terminate()
            _reap(process, timeout=20)


@contextmanager
def raw_loop_process(
    args: argparse.Namespace,
) -> Iterator[tuple[Callable[[], dict[str, Any]], dict[str, Any]]]:
    """A child process that holds the backbone and runs the raw loop whenever asked; yields the
    measuring call and the backbone's precision choice (``PrecisionChoice.describe()``).

    The raw loop and the service each run in a process of their own session, so with Linux's
    autogroup scheduling each gets one group's share of a busy machine, and the load generator
    (the HTTP clients in this process, remote in production) takes share from neither.
    """
    command = [sys.executable, "-m", "bench.serving", "--raw-worker"]
    command += ["--backbone", args.backbone, "--batch-size", str(args.batch_size)]
    command += ["--images", str(args.images), "--image-size", str(args.image_size)]
    command += ["--seed", str(args.seed), "--warmup", str(args.warmup)]
    command += ["--per-label", str(args.per_label), "--precision", args.precision]
    command += ["--runtime", args.runtime]
    process = subprocess.Popen(
        command, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    assert process.stdin is not None and process.stdout is not None
    requests, replies = process.stdin, process.stdout

    def measure() -> dict[str, Any]:
        requests.write("run\n")
        requests.flush()
        line = replies.readline()
        if not line:
            raise RuntimeError("the raw-loop process exited")
        return json.loads(line)  # type: ignore[no-any-return]

    try:
        ready = replies.readline()
        if not ready.startswith("ready "):
            raise RuntimeError("the raw-loop process did not start")
        yield measure, json.loads(ready.removeprefix("ready "))
    finally:
        requests.close()  # the worker exits at end of input
        _reap(process, timeout=30)


def _reap(process: subprocess.Popen[str] | subprocess.Popen[bytes], timeout: float) -> None:
    """Wait for ``process`` to exit, killing it after ``timeout`` seconds."""
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def raw_worker(args: argparse.Namespace) -> None:
    """Body of the raw-loop process: load the backbone at ``--precision`` (``auto`` measures the
    candidates on a probe batch of the batch size, as the service does at start), say which
    precision it runs in, then measure on each ``run`` line."""
    from embeddings import load_backbone
    from embeddings.tower_options import TowerOptions

    stream, _ = stream_and_training_images(args)
    images = [data for data, _ in stream][: max(args.batch_size, 64)]
    tower = TowerOptions(args.precision, probe_batch=args.batch_size, runtime=args.runtime)
    backbone = load_backbone(args.backbone, tower=tower)
    raw_throughput(backbone, images[: args.warmup], args.batch_size, MAX_PIXELS)  # warm up
    choice = getattr(backbone, "precision", None)  # local backbones have it, the protocol not
    if choice is None:
        raise RuntimeError(f"{backbone.spec} does not say which precision it runs in")
    print("ready " + json.dumps(choice.describe()), flush=True)
    for line in sys.stdin:
        if line.strip() == "run":
            result = best_raw_throughput(backbone, images, args.batch_size, MAX_PIXELS)
            print(json.dumps({**result, "backbone": backbone.spec}), flush=True)


def data_uri(data: bytes) -> str:
    """A JPEG's bytes as a data URI (what JSON bodies carry)."""
    return "data:image/jpeg;base64," + base64.b64encode(data).decode()


def data_uri_body(data: bytes) -> bytes:
    return json.dumps({"data": data_uri(data)}).encode()


MULTIPART_BOUNDARY = "winnow-bench-7d1f0c9a4b3e"
BODY_TYPES = {  # --body: the content type of an invoke and how an image becomes its body
    "multipart": f"multipart/form-data; boundary={MULTIPART_BOUNDARY}",
    "data-uri": "application/json",
}


def multipart_body(*images: bytes) -> bytes:
    """A multipart/form-data body with each image as a ``file`` part (as an app's upload)."""
    head = (
        f"--{MULTIPART_BOUNDARY}\r\n"
        'Content-Disposition: form-data; name="file"; filename="image.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()
    parts = b"\r\n".join(head + data for data in images)
    return parts + f"\r\n--{MULTIPART_BOUNDARY}--\r\n".encode()


def invoke_bodies(images: list[bytes], body: str, per_request: int = 1) -> list[bytes]:
    """Invoke bodies of kind ``body`` (a key of :data:`BODY_TYPES`): each image alone, or (for
    ``/invoke/batch``) ``per_request`` consecutive images of the stream each, wrapping round."""
    if per_request == 1:
        encode = multipart_body if body == "multipart" else data_uri_body
        return [encode(data) for data in images]
    groups = [
        [images[(start + k) % len(images)] for k in range(per_request)]
        for start in range(0, len(images), per_request)
    ]
    if body == "multipart":
        return [multipart_body(*group) for group in groups]
    return [
        json.dumps({"items": [{"data": data_uri(data)} for data in group]}).encode()
        for group in groups
    ]


def prepare_function(
    http: httpx.Client, train_images: list[tuple[bytes, int]], per_label: int
) -> str:
    """Create a function, add ``per_label`` labelled digits per label, train; return its id."""
    response = http.post("/v1/functions", json={"name": "ServingBench", "labels": LABELS})
    response.raise_for_status()
    function_id = str(response.json()["id"])
    added = dict.fromkeys(range(len(LABELS)), 0)
    for data, digit in train_images:
        if digit not in added or added[digit] >= per_label:
            continue
        body = {"data": data_uri(data), "annotation": {"labelName": LABELS[digit]}}
        response = http.post(f"/v1/functions/{function_id}/samples", json=body)
        response.raise_for_status()
        added[digit] += 1
    if min(added.values()) < 2:
        raise RuntimeError(f"not enough training digits per label: {added}")
    http.post(f"/v1/functions/{function_id}/train", timeout=600).raise_for_status()
    return function_id


def invoke_headers(
    http: httpx.Client, function_id: str, headers: dict[str, str], key: str
) -> dict[str, str]:
    """The headers invokes send: ``headers`` (the admin key's), or for ``key`` "invoke" those of
    a stored key created now with the invoke scope on ``function_id``."""
    if key == "admin":
        return headers
    body = {"function_id": function_id, "scopes": ["invoke"], "name": "serving bench"}
    response = http.post("/v1/keys", json=body)
    response.raise_for_status()
    return {**headers, "Authorization": f"Bearer {response.json()['key']}"}


def drive(
    base_url: str,
    path: str,
    bodies: list[bytes],
    *,
    clients: int,
    requests: int,
    warmup: int,
    headers: dict[str, str],
    cpu_seconds: Callable[[], float | None] = lambda: None,
    content_type: str = "application/json",
    images_per_request: int = 1,
) -> dict[str, Any]:
    """``clients`` threads post bodies back to back; throughput and latency of a steady window.

    ``requests`` and ``warmup`` count answers; ``images_per_s`` counts images, so a body of
    ``images_per_request`` images (``/invoke/batch``) counts as that many when answered 200, and
    latencies are per request.

    Every client keeps one request in flight until the window closes. The window opens when the
    ``warmup``-th answer arrives and closes with the ``warmup + requests``-th, so the ramp-up (new
    connections, part-filled batches while clients arrive) and the drain at the end (fewer
    clients than a batch left waiting) are outside it: the raw loop it is compared with has
    neither. ``cpu_seconds`` (the service's CPU clock) is read as the window opens and closes.
    ``sent`` in the result counts every request the service answered, ramp and drain included.
    """
    if warmup < 1 or requests < 1:
        raise ValueError("warmup and requests must be >= 1")
    lock = threading.Lock()
    done = threading.Event()
    sent = 0
    answers: list[tuple[float, float, int, str]] = []  # finished at, latency, status, error text
    cpu_marks: list[float | None] = []
    client_marks: list[float] = []  # this process's CPU clock: the clients' share of the cores
    request_headers = {**headers, "content-type": content_type}

    def client_loop() -> None:
        nonlocal sent
        with httpx.Client(base_url=base_url, headers=request_headers, timeout=120) as http:
            while not done.is_set():
                with lock:
                    n, sent = sent, sent + 1
                started = time.perf_counter()
                response = http.post(path, content=bodies[n % len(bodies)])
                error = "" if response.status_code == 200 else response.text[:200]
                with lock:
                    if done.is_set():
                        break
                    finished = time.perf_counter()  # under the lock: answers stay in time order
                    answers.append((finished, finished - started, response.status_code, error))
                    if len(answers) in (warmup, warmup + requests):
                        cpu_marks.append(cpu_seconds())
                        client_marks.append(time.process_time())
                    if len(answers) == warmup + requests:
                        done.set()

    threads = [threading.Thread(target=client_loop) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if len(answers) < warmup + requests:
        raise RuntimeError(f"the service answered {len(answers)} of {warmup + requests} invokes")
    window = answers[warmup:]
    seconds = window[-1][0] - answers[warmup - 1][0]
    latencies = [latency for _, latency, status, _ in window if status == 200]
    failures = [f"{status}: {error}" for _, _, status, error in window if status != 200]
    ms = np.array(latencies) * 1000 if latencies else np.array([np.nan])
    result = {
        "requests": requests,
        "sent": sent,
        "ok": len(latencies),
        "errors": len(failures),
        "first_error": failures[0] if failures else None,
        "seconds": seconds,
        "images_per_request": images_per_request,
        "requests_per_s": len(latencies) / seconds,
        "images_per_s": len(latencies) * images_per_request / seconds,
        "latency_ms_p50": float(np.percentile(ms, 50)),
        "latency_ms_p99": float(np.percentile(ms, 99)),
        "latency_ms_mean": float(np.mean(ms)),
    }
    cpu_start, cpu_end = cpu_marks
    if cpu_start is not None and cpu_end is not None and latencies:
        images = len(latencies) * images_per_request
        result["cpu_ms_per_image"] = 1000 * (cpu_end - cpu_start) / images
    if latencies:
        result["client_cpu_ms_per_image"] = (
            1000 * (client_marks[1] - client_marks[0]) / (len(latencies) * images_per_request)
        )
    return result


def profile_phase(
    args: argparse.Namespace,
    service_process: RunningService,
    path: str,
    bodies: list[bytes],
    *,
    headers: dict[str, str],
    content_type: str,
    header: list[str],
) -> dict[str, Any]:
    """One more phase (capture as ``--profile-capture`` says), sampled by py-spy; writes the
    profile's text next to the JSON result and returns its figures."""
    from bench import serving_profile

    with serving_profile.sampling(service_process.pid, rate=args.profile_rate) as sampled:
        phase = drive(
            service_process.url, path, bodies, clients=args.clients,
            requests=args.profile_requests, warmup=args.warmup, headers=headers,
            cpu_seconds=service_process.cpu_seconds, content_type=content_type,
        )  # fmt: skip
    header = [
        *header,
        f"sampled phase: {phase['images_per_s']:.2f} img/s, p50 {phase['latency_ms_p50']:.0f} "
        f"ms, service CPU {phase.get('cpu_ms_per_image', float('nan')):.1f} ms per image "
        f"(py-spy --rate {args.profile_rate} --nonblocking)",
    ]
    summary = serving_profile.summarise(sampled, invokes=phase["sent"], header=header)
    suffix = f"_{args.label}" if args.label else ""
    text_path = args.output.parent / f"serving_profile{suffix}.txt"
    text_path.parent.mkdir(parents=True, exist_ok=True)
    text_path.write_text(summary.text)
    print(summary.text)
    print(f"  wrote {text_path}")
    return {
        "file": text_path.name,
        "seconds": sampled.seconds,
        "invokes": phase["sent"],
        "phase": phase,
        "ms_per_invoke": summary.ms_per_invoke,
    }


def median_rate(runs: list[dict[str, Any]]) -> float:
    return float(np.median([run["images_per_s"] for run in runs]))


def median_of(runs: list[dict[str, Any]], key: str) -> float | None:
    """Median of ``key`` over the runs that measured it (None if none did)."""
    values = [run[key] for run in runs if run.get(key) is not None]
    return float(np.median(values)) if values else None


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_stream_arguments(parser)
    add_load_arguments(parser)
    parser.add_argument("--rounds", type=int, default=5, help="raw/service rounds, interleaved")
    parser.add_argument(
        "--latency-requests", type=int, default=40, help="invokes from one client, for latency"
    )
    parser.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "fp32", "bf16", "int8"],
        help="the image tower's precision on both sides (auto: measured once, then forced)",
    )
    parser.add_argument(
        "--runtime",
        default="torch",
        choices=["torch", "onnx", "auto"],
        help="what runs the image tower on both sides (auto: measured once, then forced)",
    )
    parser.add_argument(
        "--body", default="multipart", choices=sorted(BODY_TYPES), help="how invokes send images"
    )
    parser.add_argument(
        "--per-request",
        type=int,
        default=1,
        help="images per invoke: more than 1 posts them together to /invoke/batch",
    )
    parser.add_argument("--quick", action="store_true", help="fewer requests (harness check)")
    parser.add_argument(
        "--bare",
        action="store_true",
        help="also drive bench.bare_http (the model behind a bare HTTP route) in every round: "
        "the ceiling of any HTTP service here",
    )
    parser.add_argument(
        "--profile", action="store_true", help="sample the service with py-spy in one more phase"
    )
    parser.add_argument(
        "--profile-requests", type=int, default=0, help="invokes sampled (0: 3 x --requests)"
    )
    parser.add_argument("--profile-rate", type=int, default=100, help="py-spy samples per second")
    parser.add_argument(
        "--profile-capture",
        choices=["on", "off"],
        default="on",
        help="whether the sampled phase's invokes capture (default on)",
    )
    parser.add_argument("--label", default="", help="names the outputs: serving_<label>.json ...")
    parser.add_argument("--output", type=Path, default=None, help="the JSON result's path")
    parser.add_argument("--raw-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.raw_worker:
        raw_worker(args)
        return {}
    if args.quick:
        args.requests, args.warmup, args.images, args.rounds = 64, 16, 64, 1
        args.latency_requests = 16
    if args.label and not re.fullmatch(r"[\w.-]+", args.label):
        parser.error("--label takes letters, digits, '.', '-' and '_'")
    if args.output is None:
        name = f"serving_{args.label}.json" if args.label else "serving.json"
        args.output = ROOT / "bench" / "results" / name
    args.profile_requests = args.profile_requests or 3 * args.requests
    if "precision" not in service_settings():
        args.precision = "fp32"  # what a service from before the precision setting serves
    args.backbone, backbone_name = served_backbone(args.backbone)

    stream, train_images = stream_and_training_images(args)
    if args.per_request < 1 or (args.per_request > 1 and (args.bare or args.profile)):
        raise SystemExit("--per-request must be >= 1, and 1 with --bare or --profile")
    bodies = invoke_bodies([data for data, _ in stream], args.body, args.per_request)
    content_type = BODY_TYPES[args.body]
    flags, headers = auth_headers()
    load_before = os.getloadavg()

    print(
        f"B2 serving: backbone {backbone_name}, batch {args.batch_size}, {args.clients} clients, "
        f"{args.body} bodies of {args.per_request} image(s), precision {args.precision}"
    )

    def raw_round() -> None:
        run = measure_raw()
        raw_runs.append(run)
        variants = ", ".join(
            f"{name} ({variant['torch_threads']} torch threads) {variant['images_per_s']:.2f}"
            for name, variant in run["variants"].items()
        )
        print(f"  raw loop: {run['images_per_s']:.2f} img/s ({variants})", flush=True)

    raw_runs: list[dict[str, Any]] = []
    phases: dict[str, list[dict[str, Any]]] = {"capture_off": [], "capture_on": []}
    if args.bare:
        phases["bare_http"] = []
    profile: dict[str, Any] | None = None
    with (
        tempfile.TemporaryDirectory(prefix="winnow-bench-") as tmp,
        raw_loop_process(args) as (measure_raw, raw_precision),
    ):
        precision = raw_precision["precision"]  # auto's choice, or the precision asked for
        runtime = raw_precision.get("runtime", "torch")
        if "precision" in service_settings():
            flags = [*flags, "--precision", precision]
        if "runtime" in service_settings():
            flags = [*flags, "--runtime", runtime]
        elif runtime != "torch":
            raise RuntimeError("this service has no --runtime setting")
        print(
            f"  image tower, both sides: {runtime} {precision} "
            f"(asked: {args.runtime} {args.precision})"
        )
        data_dir = Path(tmp) / "data"
        with ExitStack() as servers:
            service_process = servers.enter_context(running_service(args, data_dir, flags))
            base_url = service_process.url
            with httpx.Client(base_url=base_url, headers=headers, timeout=120) as http:
                function_id = prepare_function(http, train_images, args.per_label)
                invoking = invoke_headers(http, function_id, headers, args.key)
            invoke = f"/v1/functions/{function_id}/invoke"
            if args.per_request > 1:
                invoke += "/batch"  # up to --max-batch-invoke (64) images
            # each phase: the server it drives and the path it posts to
            targets = {
                "capture_off": (service_process, f"{invoke}?capture=false"),
                "capture_on": (service_process, invoke),
            }
            if args.bare:
                bare_log = Path(tmp) / "bare.log"
                bare = servers.enter_context(running_bare(args, bare_log, runtime, precision))
                targets["bare_http"] = (bare, "/invoke")
            order = list(targets)
            for _ in range(args.rounds):
                raw_round()
                for name in order:
                    server, path = targets[name]
                    phase = drive(
                        server.url,
                        path,
                        bodies,
                        clients=args.clients,
                        requests=args.requests,
                        warmup=args.warmup,
                        headers=invoking,
                        cpu_seconds=server.cpu_seconds,
                        content_type=content_type,
                        images_per_request=args.per_request,
                    )
                    phases[name].append(phase)
                    print(
                        f"  service {name}: {phase['images_per_s']:.2f} img/s, "
                        f"p50 {phase['latency_ms_p50']:.0f} ms, "
                        f"p99 {phase['latency_ms_p99']:.0f} ms, errors {phase['errors']}",
                        flush=True,
                    )
                order = order[1:] + order[:1]  # no phase always runs first after the raw loop
            if args.profile:
                header = [
                    f"B2 serving profile{f' ({args.label})' if args.label else ''}: "
                    f"{backbone_name} in {precision}, batch {args.batch_size}, {args.clients} "
                    f"clients, {args.image_size} px JPEGs as {args.body} bodies, "
                    f"capture {args.profile_capture}",
                    f"checkout {ROOT}, {platform.platform()}, {os.cpu_count()} CPU cores",
                ]
                sampled_path = targets[f"capture_{args.profile_capture}"][1]
                profile = profile_phase(
                    args, service_process, sampled_path, bodies,
                    headers=invoking, content_type=content_type, header=header,
                )  # fmt: skip
            single: dict[str, dict[str, Any]] = {}
            for name, (server, path) in targets.items():
                single[name] = drive(
                    server.url, path, bodies, clients=1, requests=args.latency_requests, warmup=2,
                    headers=invoking, content_type=content_type,
                    images_per_request=args.per_request,
                )  # fmt: skip
                print(
                    f"  one client, {name}: p50 {single[name]['latency_ms_p50']:.0f} ms, "
                    f"p99 {single[name]['latency_ms_p99']:.0f} ms",
                    flush=True,
                )
            with httpx.Client(base_url=base_url, headers=headers, timeout=30) as http:
                counts = http.get(f"/v1/functions/{function_id}/review/counts")
                captured = counts.json() if counts.status_code == 200 else None
        raw_round()

    raw_rate = median_rate(raw_runs)
    # Round k of the service is bracketed by raw rounds k and k + 1: compare it with their mean,
    # so a change of background load between rounds does not decide the verdict.
    bracket = [
        (raw_runs[k]["images_per_s"] + raw_runs[k + 1]["images_per_s"]) / 2
        for k in range(args.rounds)
    ]
    service: dict[str, Any] = {}
    for name, runs in phases.items():
        best = max(runs, key=lambda run: run["images_per_s"])
        rate = median_rate(runs)
        errors = sum(run["errors"] for run in runs)
        ratios = [run["images_per_s"] / raw for run, raw in zip(runs, bracket, strict=True)]
        ratio = float(np.median(ratios))
        service[name] = {
            "images_per_s": rate,
            "ratio": ratio,
            "round_ratios": ratios,
            "latency_ms_p50": float(np.median([run["latency_ms_p50"] for run in runs])),
            "latency_ms_p99": float(np.median([run["latency_ms_p99"] for run in runs])),
            "errors": errors,
            "first_error": next((run["first_error"] for run in runs if run["first_error"]), None),
            "best_round_images_per_s": best["images_per_s"],
            # CPU time the service process spent per answered image (HTTP, decoding, batching,
            # the model, the head, capture), against the raw loop's: what the service costs
            # on top of the model, free of the throughput's noise on a shared machine
            "cpu_ms_per_image": median_of(runs, "cpu_ms_per_image"),
            "raw_cpu_ms_per_image": median_of(raw_runs, "cpu_ms_per_image"),
            # the load generator's CPU per answered image: its threads share the service's cores
            "client_cpu_ms_per_image": median_of(runs, "client_cpu_ms_per_image"),
            "rounds": runs,
            "one_client": single[name],
            "passed": ratio >= TARGET_RATIO and errors == 0,
        }
    report = {
        "bench": "B2 serving",
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "backbone": backbone_name,
        "backbone_spec": raw_runs[0]["backbone"],
        "batch_size": args.batch_size,
        "clients": args.clients,
        "label": args.label,
        "body": args.body,
        "images_per_request": args.per_request,
        "image": f"{args.image_size}x{args.image_size} JPEG sent as "
        + ("a multipart file part" if args.body == "multipart" else "a JSON data URI"),
        # the image tower's precision, the same on both sides: the raw loop ran it, the service
        # was started with --precision forced to it
        "precision": precision,
        "runtime": runtime,
        "precision_choice": raw_precision,
        "raw": {"images_per_s": raw_rate, "rounds": raw_runs},
        "service": service,
        "review_counts_after": captured,
        "target_ratio": TARGET_RATIO,
        "machine": f"{platform.platform()}, {os.cpu_count()} CPU cores",
        "cpu": machine(),
        "load_average": {"before": load_before, "after": os.getloadavg()},
        "profile": profile,
    }
    print(
        "  ratio service/raw (median over rounds): "
        f"capture off {service['capture_off']['ratio']:.3f}, "
        f"capture on {service['capture_on']['ratio']:.3f} (target >= {TARGET_RATIO}); "
        f"load average {load_before[0]:.1f} -> {os.getloadavg()[0]:.1f}"
    )
    if args.bare:
        bare = service["bare_http"]
        print(
            f"  bare HTTP route over the same model (the ceiling): ratio {bare['ratio']:.3f}, "
            f"CPU ms per image {bare['cpu_ms_per_image']:.1f}"
        )
    if service["capture_off"]["cpu_ms_per_image"] is not None:
        print(
            "  CPU ms per image (median over rounds): raw loop "
            f"{service['capture_off']['raw_cpu_ms_per_image']:.1f}, service capture off "
            f"{service['capture_off']['cpu_ms_per_image']:.1f}, capture on "
            f"{service['capture_on']['cpu_ms_per_image']:.1f}; the clients "
            f"{service['capture_off']['client_cpu_ms_per_image']:.1f} and "
            f"{service['capture_on']['client_cpu_ms_per_image']:.1f}"
        )
    write_result(args.output, report)
    print(f"  wrote {args.output}")
    return report


if __name__ == "__main__":
    main()

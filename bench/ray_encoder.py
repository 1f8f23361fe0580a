"""Ray encoder: invoke throughput of 2 API replicas sharing 1 Ray Serve encoder replica against one
service with the in-process encoder, same backbone, batch size, images and machine.

Both set-ups run the real service (``python -m api.cli serve`` subprocesses, see
:mod:`bench.serving`), each API replica with its own temporary data dir and a function trained on
the same labelled digits. Phases, one after the other so they never share the CPUs:

1. ``local``: one service, ``--encoder local``;
2. ``ray``: a local Ray instance started by this process (so it ends with it), two services with
   ``--encoder ray --ray-address <it>``; the first deploys the encoder application, the second
   finds it; the clients are split evenly over the two, as a load balancer would.

Throughput is timed over a window in which every client has a request in flight (after
``--warmup`` answers, for ``--requests`` answers), as in B2; one client alone gives the
per-request latency, where Ray's per-call cost shows. Figure of merit: ray / local throughput.
On one machine the Ray set-up cannot win: its encoder replica shares the same cores with two API
processes, Ray's own processes and the clients, and every image pays Ray's call overhead and a
serialised array. It is the price of the layout that lets API replicas and GPU encoder replicas
scale apart.

Usage (from the repository root)::

    python -m bench.ray_encoder                 # efficientnet-lite0, real weights
    python -m bench.ray_encoder --quick         # tiny-clip, fewer requests (harness check)

Writes ``bench/results/ray_encoder.json`` and prints a table. Needs the ``ray`` extra.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # also runnable as ``python bench/ray_encoder.py``
    sys.path.insert(0, str(ROOT))

from bench.results_file import write_result  # noqa: E402
from bench.serving import (  # noqa: E402
    add_stream_arguments,
    auth_headers,
    data_uri_body,
    drive,
    prepare_function,
    running_service,
    stream_and_training_images,
)

Target = tuple[str, str]  # (base URL, invoke path) of one API replica


def machine_cpu_seconds() -> float | None:
    """Busy CPU seconds of the whole machine since boot (every process: the services, Ray's,
    the clients, and anything else running); None where there is no /proc (not Linux)."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return None
    ticks = [int(value) for value in fields[:8]]
    busy = sum(ticks) - ticks[3] - ticks[4]  # all but idle and iowait
    return busy / os.sysconf("SC_CLK_TCK")


def drive_replicas(
    targets: list[Target],
    bodies: list[bytes],
    *,
    clients: int,
    requests: int,
    warmup: int,
    headers: dict[str, str],
) -> dict[str, Any]:
    """:func:`bench.serving.drive` over several replicas: client ``i`` sends to target
    ``i % len(targets)``; one steady window over all answers."""
    lock = threading.Lock()
    done = threading.Event()
    sent = 0
    answers: list[tuple[float, float, int]] = []  # finished at, latency, status
    request_headers = {**headers, "content-type": "application/json"}

    def client_loop(base_url: str, path: str) -> None:
        nonlocal sent
        with httpx.Client(base_url=base_url, headers=request_headers, timeout=120) as http:
            while not done.is_set():
                with lock:
                    n, sent = sent, sent + 1
                started = time.perf_counter()
                response = http.post(path, content=bodies[n % len(bodies)])
                with lock:
                    if done.is_set():
                        break
                    finished = time.perf_counter()
                    answers.append((finished, finished - started, response.status_code))
                    if len(answers) == warmup + requests:
                        done.set()

    threads = [
        threading.Thread(target=client_loop, args=targets[i % len(targets)]) for i in range(clients)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    window = answers[warmup:]
    seconds = window[-1][0] - answers[warmup - 1][0]
    ok = [latency for _, latency, status in window if status == 200]
    ms = np.array(ok) * 1000 if ok else np.array([np.nan])
    return {
        "answers": len(answers),
        "ok": len(ok),
        "errors": len(window) - len(ok),
        "seconds": seconds,
        "images_per_s": len(ok) / seconds,
        "latency_ms_p50": float(np.percentile(ms, 50)),
        "latency_ms_p99": float(np.percentile(ms, 99)),
    }


def run_phase(
    name: str,
    args: argparse.Namespace,
    flags: list[str],
    replicas: int,
    bodies: list[bytes],
    train_images: list[tuple[bytes, int]],
    headers: dict[str, str],
) -> dict[str, Any]:
    """Start ``replicas`` services with ``flags``, train a function on each, drive them."""
    with tempfile.TemporaryDirectory(prefix="winnow-bench-ray-") as tmp, ExitStack() as stack:
        targets: list[Target] = []
        services = []
        for index in range(replicas):  # one after the other: the first deploys the encoder
            data_dir = Path(tmp) / f"replica-{index}" / "data"
            data_dir.parent.mkdir(parents=True)
            service = stack.enter_context(running_service(args, data_dir, flags))
            services.append(service)
            with httpx.Client(base_url=service.url, headers=headers, timeout=600) as http:
                function_id = prepare_function(http, train_images, args.per_label)
            targets.append((service.url, f"/v1/functions/{function_id}/invoke?capture=false"))
        api_cpu, machine_cpu = _cpu_marks(services)
        loaded = drive_replicas(
            targets,
            bodies,
            clients=args.clients,
            requests=args.requests,
            warmup=args.warmup,
            headers=headers,
        )
        api_cpu_end, machine_cpu_end = _cpu_marks(services)
        # over the whole drive (warm-up included): the share each part of the set-up costs
        for key, start, end in (
            ("api_cpu_ms_per_image", api_cpu, api_cpu_end),
            ("machine_cpu_ms_per_image", machine_cpu, machine_cpu_end),
        ):
            loaded[key] = 1000 * (end - start) / loaded["answers"] if start and end else None
        base_url, path = targets[0]
        alone = drive(
            base_url, path, bodies, clients=1, requests=args.latency_requests, warmup=2,
            headers=headers,
        )  # fmt: skip
    print(
        f"  {name}: {loaded['images_per_s']:.1f} img/s ({args.clients} clients), "
        f"p50 {loaded['latency_ms_p50']:.0f} ms; one client p50 {alone['latency_ms_p50']:.0f} ms, "
        f"errors {loaded['errors']}",
        flush=True,
    )
    return {"replicas": replicas, "loaded": loaded, "one_client": alone}


def _cpu_marks(services: list[Any]) -> tuple[float | None, float | None]:
    """CPU seconds of the API processes together, and of the whole machine."""
    per_service = [service.cpu_seconds() for service in services]
    api = None if None in per_service else sum(per_service)
    return api, machine_cpu_seconds()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_stream_arguments(parser)
    parser.add_argument("--batch-size", type=int, default=8, help="encoder batch, both set-ups")
    parser.add_argument(
        "--encoder-threads", type=int, default=0, help="--encoder-threads of every service"
    )
    parser.add_argument("--clients", type=int, default=8, help="concurrent HTTP clients")
    parser.add_argument("--warmup", type=int, default=32, help="untimed invokes first")
    parser.add_argument("--latency-requests", type=int, default=30, help="one client's invokes")
    parser.add_argument("--start-timeout", type=float, default=300.0)
    parser.add_argument("--quick", action="store_true", help="tiny-clip, fewer requests")
    parser.add_argument(
        "--output", type=Path, default=ROOT / "bench" / "results" / "ray_encoder.json"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.backbone, args.requests, args.warmup, args.images = "tiny-clip", 64, 16, 64
        args.latency_requests = 16
    import ray

    from embeddings.ray_deployer import NAMESPACE

    stream, train_images = stream_and_training_images(args)
    bodies = [data_uri_body(data) for data, _ in stream]
    auth_flags, headers = auth_headers()
    print(
        f"Ray encoder: backbone {args.backbone}, batch {args.batch_size}, {args.clients} clients, "
        f"{os.cpu_count()} CPU cores"
    )
    local = run_phase(
        "local (1 API process, in-process encoder)",
        args, [*auth_flags, "--encoder", "local"], 1, bodies, train_images, headers,
    )  # fmt: skip
    started = time.perf_counter()
    ray.init(include_dashboard=False, namespace=NAMESPACE, log_to_driver=False)
    try:
        address = ray.get_runtime_context().gcs_address
        print(f"  local Ray at {address} up in {time.perf_counter() - started:.1f} s", flush=True)
        flags = [*auth_flags, "--encoder", "ray", "--ray-address", address]
        remote = run_phase(
            "ray (2 API processes, 1 Ray Serve encoder replica)",
            args, flags, 2, bodies, train_images, headers,
        )  # fmt: skip
    finally:
        ray.shutdown()

    ratio = remote["loaded"]["images_per_s"] / local["loaded"]["images_per_s"]
    rows = [("local", local), ("ray", remote)]
    print()
    print(
        "| set-up | API replicas | img/s | p50 ms | p99 ms | one client p50 ms | "
        "API CPU ms/img | machine CPU ms/img | errors |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, phase in rows:
        loaded, alone = phase["loaded"], phase["one_client"]
        print(
            f"| {name} | {phase['replicas']} | {loaded['images_per_s']:.1f} | "
            f"{loaded['latency_ms_p50']:.0f} | {loaded['latency_ms_p99']:.0f} | "
            f"{alone['latency_ms_p50']:.0f} | {_ms(loaded['api_cpu_ms_per_image'])} | "
            f"{_ms(loaded['machine_cpu_ms_per_image'])} | {loaded['errors']} |"
        )
    print(f"\nratio ray / local throughput: {ratio:.2f}")
    report = {
        "bench": "Ray encoder",
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "backbone": args.backbone,
        "batch_size": args.batch_size,
        "clients": args.clients,
        "local": local,
        "ray": remote,
        "ratio": ratio,
        "machine": f"{platform.platform()}, {os.cpu_count()} CPU cores",
        "load_average_after": os.getloadavg(),
    }
    write_result(args.output, report)
    print(f"wrote {args.output}")
    return report


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


if __name__ == "__main__":
    main()

"""B2's load against several checkouts' services at once, rounds interleaved: before / after.

Each ``--checkout NAME=PATH`` serves its own code (cwd and PYTHONPATH, as
``bench.invoke_latency`` does) with the same settings B2 uses (``bench.serving.running_service``),
its own data dir and its own function trained on the same images. Then, round after round, each
service in turn (the order rotating) takes B2's load of ``--clients`` clients with capture on and
with capture off. It reports per checkout the median throughput and the median CPU the service
process spent per image: what a change to the invoke path buys, with the machine's noise shared.

Usage (from the repository root; ``git worktree add /tmp/before <commit>`` makes a checkout)::

    python -m bench.serving_checkouts --checkout before=/tmp/before --checkout after=. \\
        --runtime onnx --precision int8 --output bench/results/serving_checkouts.json
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import serving  # noqa: E402
from bench.results_file import write_result  # noqa: E402

PHASES = {"capture_on": "", "capture_off": "?capture=false"}


def commit_of(checkout: Path) -> str:
    """The checkout's commit, with ``+dirty`` if it has uncommitted changes."""
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=checkout, capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=checkout,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return head + ("+dirty" if dirty else "")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    serving.add_stream_arguments(parser)
    serving.add_load_arguments(parser)
    parser.set_defaults(start_timeout=300.0)  # several services start one after another
    parser.add_argument("--checkout", action="append", required=True, help="NAME=PATH")
    parser.add_argument("--runtime", default="torch")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args(argv)
    checkouts = dict(entry.split("=", 1) for entry in args.checkout)
    args.backbone, backbone_name = serving.served_backbone(args.backbone)
    stream, train_images = serving.stream_and_training_images(args)
    bodies = serving.invoke_bodies([data for data, _ in stream], "multipart")
    content_type = serving.BODY_TYPES["multipart"]
    flags, headers = serving.auth_headers()
    flags += ["--precision", args.precision, "--runtime", args.runtime]
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {
        name: {phase: [] for phase in PHASES} for name in checkouts
    }
    print(f"B2 load on {', '.join(checkouts)}: {backbone_name}, {args.runtime} {args.precision}")
    with tempfile.TemporaryDirectory(prefix="winnow-checkouts-") as tmp, ExitStack() as stack:
        services = {}
        for name, path in checkouts.items():
            data_dir = Path(tmp) / name / "data"
            data_dir.parent.mkdir(parents=True)
            checkout = Path(path).resolve()
            service = stack.enter_context(
                serving.running_service(args, data_dir, flags, checkout=checkout)
            )
            with httpx.Client(base_url=service.url, headers=headers, timeout=600) as http:
                function_id = serving.prepare_function(http, train_images, args.per_label)
                invoking = serving.invoke_headers(http, function_id, headers, args.key)
            services[name] = (service, f"/v1/functions/{function_id}/invoke", invoking)
        order = list(services)
        for round_ in range(args.rounds):
            for name in order:
                service, invoke, invoking = services[name]
                for phase, query in PHASES.items():
                    run = serving.drive(
                        service.url, invoke + query, bodies, clients=args.clients,
                        requests=args.requests, warmup=args.warmup, headers=invoking,
                        cpu_seconds=service.cpu_seconds, content_type=content_type,
                    )  # fmt: skip
                    runs[name][phase].append(run)
                    print(
                        f"  round {round_} {name} {phase}: {run['images_per_s']:.1f} img/s, "
                        f"{run.get('cpu_ms_per_image', float('nan')):.2f} ms CPU per image",
                        flush=True,
                    )
            order = order[1:] + order[:1]
    summary: dict[str, dict[str, Any]] = {
        name: {
            "path": str(Path(path).resolve()),
            "commit": commit_of(Path(path)),
            **{
                phase: {
                    "images_per_s": serving.median_rate(phase_runs),
                    "cpu_ms_per_image": serving.median_of(phase_runs, "cpu_ms_per_image"),
                    "errors": sum(run["errors"] for run in phase_runs),
                    "rounds": phase_runs,
                }
                for phase, phase_runs in runs[name].items()
            },
        }
        for name, path in checkouts.items()
    }
    for name, result in summary.items():
        print(
            f"  {name} ({result['commit']}): "
            + "; ".join(
                f"{phase} {result[phase]['images_per_s']:.1f} img/s, "
                f"{result[phase]['cpu_ms_per_image']:.2f} ms CPU per image"
                for phase in PHASES
            )
        )
    report = {
        "bench": "B2 load on several checkouts",
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "backbone": backbone_name,
        "checkouts": summary,
        "machine": f"{platform.platform()}, {os.cpu_count()} CPU cores",
    }
    if args.output is not None:
        write_result(args.output, report)
        print(f"  wrote {args.output}")
    return report


if __name__ == "__main__":
    main()

"""Decode burst: peak memory of the running service under concurrent maximum-size images.

A PNG of one flat colour at the largest accepted size (6,324 x 6,324, just under the 40-megapixel
cap) is about 100 KB on the wire and 120 MB as RGB, so a burst of small requests can ask for
gigabytes of decoded pixels. The service is started for real (``winnow serve`` in a subprocess,
``bench.serving.running_service``), once with the default decode budget (``--decode-pixel-budget``
0: from the machine's memory) and once with the budget effectively off; each time ``--requests``
clients post the image to invoke at once (``capture=false``) while the service's RSS is sampled
from ``/proc/PID/status`` (and its VmHWM, reset first, read after). Reported: the peak RSS increase
over the idle service against the budget in bytes (pixels x 3, as RGB), the answers (200 / 503)
and the wall time.

Usage (from the repository root; Linux; 2-5 min on 2 busy CPU cores; the run without a budget
needs ~12 GB of free memory)::

    python -m bench.decode_burst
    python -m bench.decode_burst --requests 8 --backbone efficientnet-lite0

Writes ``bench/results/decode_burst.json`` and prints a summary.
"""

from __future__ import annotations

import argparse
import io
import re
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # also runnable as ``python bench/decode_burst.py``
    sys.path.insert(0, str(ROOT))

from bench.results_file import write_result  # noqa: E402
from bench.serving import RunningService, auth_headers, data_uri_body, running_service  # noqa: E402
from service.runtime import decode_pixel_budget  # noqa: E402
from service.settings import Settings  # noqa: E402

SIDE = 6324  # 39,992,976 pixels: the largest square under the default 40-megapixel cap
OFF = 10**15  # a budget no burst reaches
GB = 1e9


def flat_png(side: int) -> bytes:
    """A ``side`` x ``side`` PNG of one colour: a few hundred bytes per row of pixels."""
    buffer = io.BytesIO()
    Image.new("RGB", (side, side), (120, 60, 200)).save(buffer, format="PNG", compress_level=9)
    return buffer.getvalue()


def kb_field(path: str, field: str) -> int:
    """A ``kB`` field of a /proc file (VmRSS, VmHWM of ``/proc/PID/status``), in bytes."""
    match = re.search(rf"^{field}:\s+(\d+) kB", Path(path).read_text(), re.MULTILINE)
    if match is None:
        raise RuntimeError(f"no {field} in {path}")
    return int(match.group(1)) * 1024


def status_bytes(pid: int, field: str) -> int:
    return kb_field(f"/proc/{pid}/status", field)


def burst(service: RunningService, function_id: str, body: bytes, requests: int) -> dict[str, Any]:
    """Post ``body`` to invoke from ``requests`` clients at once; statuses, wall time, peak RSS."""
    headers = {**auth_headers()[1], "Content-Type": "application/json"}
    url = f"{service.url}/v1/functions/{function_id}/invoke?capture=false"
    idle = status_bytes(service.pid, "VmRSS")
    Path(f"/proc/{service.pid}/clear_refs").write_text("5")  # VmHWM := VmRSS
    statuses: list[int] = []
    retry_after: set[str] = set()
    lock, start = threading.Lock(), threading.Barrier(requests + 1)

    def client() -> None:
        with httpx.Client(timeout=300) as http:
            start.wait()
            response = http.post(url, content=body, headers=headers)
        with lock:
            statuses.append(response.status_code)
            if response.status_code == 503:
                retry_after.add(response.headers.get("retry-after", "missing"))

    threads = [threading.Thread(target=client) for _ in range(requests)]
    for thread in threads:
        thread.start()
    start.wait()
    began, sampled_peak = time.monotonic(), idle
    while any(thread.is_alive() for thread in threads):
        sampled_peak = max(sampled_peak, status_bytes(service.pid, "VmRSS"))
        time.sleep(0.01)
    wall = time.monotonic() - began
    peak = max(sampled_peak, status_bytes(service.pid, "VmHWM"))
    counts = Counter(statuses)
    return {
        "answers": {str(status): n for status, n in sorted(counts.items())},
        "retry_after": sorted(retry_after),
        "wall_s": round(wall, 2),
        "idle_rss_bytes": idle,
        "peak_rss_increase_bytes": peak - idle,
    }


def run(args: argparse.Namespace, flags: list[str], body: bytes) -> dict[str, Any]:
    serving_args = argparse.Namespace(
        backbone=args.backbone,
        batch_size=8,
        clients=args.requests,
        encoder_threads=0,
        start_timeout=180.0,
    )
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        with running_service(serving_args, data_dir, auth_headers()[0] + flags) as service:
            with httpx.Client(base_url=service.url, headers=auth_headers()[1], timeout=60) as http:
                created = http.post("/v1/functions", json={"name": "DecodeBurst"})
                created.raise_for_status()
                function_id = created.json()["id"]
                small = data_uri_body(flat_png(64))  # loads the backbone before the burst
                warm = http.post(f"/v1/functions/{function_id}/invoke?capture=false", content=small)
                warm.raise_for_status()
            return burst(service, function_id, body, args.requests)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbone", default="tiny-clip")
    parser.add_argument("--requests", type=int, default=32, help="concurrent invokes")
    parser.add_argument("--side", type=int, default=SIDE, help="image width and height")
    parser.add_argument(
        "--output", type=Path, default=ROOT / "bench" / "results" / "decode_burst.json"
    )
    args = parser.parse_args(argv)
    png = flat_png(args.side)
    body = data_uri_body(png)
    pixels = args.side * args.side
    auto = decode_pixel_budget(Settings())
    needed = args.requests * pixels * 8  # the run without a budget: every image decoded at once
    if kb_field("/proc/meminfo", "MemAvailable") < 1.2 * needed:
        raise SystemExit(f"the run without a budget needs ~{needed / GB:.1f} GB free")
    report: dict[str, Any] = {
        "backbone": args.backbone,
        "requests": args.requests,
        "image": f"{args.side}x{args.side} PNG, {len(png)} bytes",
        "runs": {},
    }
    print(f"decode burst: {args.requests} concurrent {report['image']} to invoke ({args.backbone})")
    for name, budget, flags in (
        ("default", auto, []),
        ("off", OFF, ["--decode-pixel-budget", str(OFF)]),
    ):
        result = {"budget_pixels": budget, "budget_rgb_bytes": 3 * budget, **run(args, flags, body)}
        report["runs"][name] = result
        budget_text = f"{budget / 1e6:.0f} MP = {3 * budget / GB:.2f} GB as RGB"
        print(
            f"  budget {name} ({'unbounded' if budget == OFF else budget_text}): "
            f"answers {result['answers']}, Retry-After {result['retry_after'] or '-'}, "
            f"peak RSS +{result['peak_rss_increase_bytes'] / GB:.2f} GB, "
            f"wall {result['wall_s']:.1f} s"
        )
    write_result(args.output, report)
    return report


if __name__ == "__main__":
    main()

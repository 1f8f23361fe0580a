"""What the traffic sample costs the database: one flush, and training's read of the sample.

Invokes buffer their distinct inputs in memory (:class:`service.traffic_sample.TrafficSample`);
the serving worker writes the buffers every ``traffic_flush_seconds``, one transaction per
function of at most ``size // 10`` rows. This times :meth:`TrafficSample.flush` with
``--functions`` functions each holding a full buffer (the worst case: 200 vectors of 512
float32 per function at the default size 2000), until every ring has wrapped, and the read of one
function's full ring (what a training does once). SQLite in a temp dir, and PostgreSQL when
``--postgres URL`` names a server (a fresh database is created there and dropped).

Usage (from the repository root)::

    python -m bench.traffic_flush                     # SQLite
    python -m bench.traffic_flush --postgres postgresql://postgres@127.0.0.1:5432/test

Writes ``bench/results/traffic_flush.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import platform
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # also runnable as ``python bench/traffic_flush.py``
    sys.path.insert(0, str(ROOT))

from bench.results_file import write_result  # noqa: E402
from service.traffic_sample import TrafficSample  # noqa: E402
from store import Function, make_engine, session_scope  # noqa: E402


def measure(url: str, *, functions: int, size: int, dim: int, rounds: int) -> dict[str, Any]:
    """Median seconds of a flush of full buffers for ``functions`` functions, over ``rounds``
    flushes, and of reading one full ring."""
    engine = make_engine(url)
    try:
        with session_scope(engine) as session:
            rows = [Function(name=f"f{i}", backbone="bench") for i in range(functions)]
            session.add_all(rows)
        ids = [row.id for row in rows]
        sample = TrafficSample(engine, size=size, seed=0)
        rng = np.random.default_rng(0)
        flushes = []
        for _ in range(rounds):
            for function_id in ids:
                vectors = rng.standard_normal((sample.flush_rows, dim)).astype(np.float32)
                unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
                sample.offer(function_id, None, unit)
            started = time.perf_counter()
            written = sample.flush()
            flushes.append(time.perf_counter() - started)
            assert written == functions * sample.flush_rows
        reads, ring = [], min(size, rounds * sample.flush_rows)
        for function_id in ids[:5]:
            started = time.perf_counter()
            traffic = sample.read(function_id)
            reads.append(time.perf_counter() - started)
            assert traffic is not None and traffic.shape == (ring, dim)
        flush = statistics.median(flushes)
        return {
            "functions": functions,
            "rows_per_function": sample.flush_rows,
            "flush_seconds_median": round(flush, 4),
            "flush_ms_per_function": round(flush * 1000 / functions, 2),
            "flush_seconds_max": round(max(flushes), 4),
            "read_full_ring_ms_median": round(statistics.median(reads) * 1000, 1),
        }
    finally:
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--functions", type=int, default=50)
    parser.add_argument("--size", type=int, default=2000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=12, help="flushes (10 fill a ring)")
    parser.add_argument("--postgres", default="", help="PostgreSQL server URL (optional)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/traffic_flush.json")
    args = parser.parse_args()
    shape = {"functions": args.functions, "size": args.size, "dim": args.dim, "rounds": args.rounds}
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as scratch:
        results["sqlite"] = measure(f"sqlite:///{Path(scratch) / 'winnow.db'}", **shape)
    if args.postgres:
        results["postgresql"] = _on_fresh_postgres(args.postgres, shape)
    report = {
        "benchmark": "traffic_flush",
        "command": "python -m bench.traffic_flush" + (" --postgres URL" if args.postgres else ""),
        "machine": {"python": platform.python_version(), "processor": platform.machine()},
        **shape,
        "results": results,
    }
    write_result(args.out, report)
    print(f"{'database':<12}{'flush (s)':>12}{'ms/function':>14}{'max (s)':>10}{'read (ms)':>11}")
    for name, row in results.items():
        print(
            f"{name:<12}{row['flush_seconds_median']:>12}{row['flush_ms_per_function']:>14}"
            f"{row['flush_seconds_max']:>10}{row['read_full_ring_ms_median']:>11}"
        )


def _on_fresh_postgres(server: str, shape: dict[str, int]) -> dict[str, Any]:
    """:func:`measure` on a database created for it on ``server``, dropped afterwards."""
    import psycopg

    name = f"winnow_bench_{secrets.token_hex(4)}"
    admin = server.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        base = admin.rpartition("/")[0].replace("postgresql://", "postgresql+psycopg://", 1)
        return measure(f"{base}/{name}", **shape)
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()

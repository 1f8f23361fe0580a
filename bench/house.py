"""The code's shape: lines per package, the largest modules, and import cycles between modules.

``python -m bench.house [ROOT]`` reads a checkout (this one by default; another for a before/after
comparison, e.g. a ``git archive`` of an older commit) with grimp, the import graph library behind
import-linter, and prints one line per package, the 8 largest modules and every group of modules
that import each other in a circle (strongly connected, more than one module).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import grimp
import networkx as nx

PACKAGES = ("api", "service", "capture", "embeddings", "learner", "review_queue", "store")
CLIENT = "client/winnow_client"


def lines(path: Path) -> int:
    return len(path.read_text().splitlines())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", nargs="?", type=Path, default=Path(__file__).resolve().parents[1])
    root = parser.parse_args(argv).root.resolve()
    packages = [p for p in PACKAGES if (root / p).is_dir()]
    sys.path[:0] = [str(root), str(root / "client")]  # that checkout's code, not this one's
    modules = {p: sorted((root / p).rglob("*.py")) for p in [*packages, CLIENT]}
    for package, files in modules.items():
        print(f"{package:22s} {sum(map(lines, files)):6d} lines in {len(files)} files")
    largest = sorted((f for files in modules.values() for f in files), key=lines, reverse=True)
    print("largest:", ", ".join(f"{f.relative_to(root)} {lines(f)}" for f in largest[:8]))
    graph = grimp.build_graph(*packages)
    edges = nx.DiGraph(
        (module, imported)
        for module in graph.modules
        for imported in graph.find_modules_directly_imported_by(module)
    )
    cycles = [group for group in nx.strongly_connected_components(edges) if len(group) > 1]
    print(f"import cycles (groups of modules importing each other): {len(cycles)}")
    for group in cycles:
        print(f"  {len(group)} modules: {', '.join(sorted(group))}")


if __name__ == "__main__":
    main()

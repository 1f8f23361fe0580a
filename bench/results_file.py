"""Writing a benchmark's JSON result: the one place that stamps when it was measured."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any


def write_result(path: Path, report: dict[str, Any]) -> None:
    """Write ``report`` as indented JSON to ``path`` with a ``measured_on`` UTC date.

    The date travels with the file (a fresh clone resets modification times), so the Performance
    page (docs/performance.md) says when its figures were measured.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    stamped = {"measured_on": time.strftime("%Y-%m-%d", time.gmtime()), **report}
    path.write_text(json.dumps(stamped, indent=2) + "\n")

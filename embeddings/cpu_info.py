"""What Linux says about this machine's CPU (``/proc/cpuinfo``): its model and instruction sets.

Choices that depend on the CPU (which int8 weights ONNX Runtime gets, which remembered precision
applies, what a benchmark ran on) read it here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class CpuInfo:
    """The first processor's ``model name`` (None where the file has none, e.g. on ARM) and
    ``flags`` (empty where it has none)."""

    model: str | None
    flags: frozenset[str]


def cpu_info(path: Path = Path("/proc/cpuinfo")) -> CpuInfo:
    """The CPU as ``path`` describes it; nothing known when it cannot be read (not Linux)."""
    try:
        text = path.read_text()
    except OSError:
        return CpuInfo(None, frozenset())
    model: str | None = None
    flags: frozenset[str] | None = None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and model is None:
            model = value.strip()
        elif key == "flags" and flags is None:
            flags = frozenset(value.split())
    return CpuInfo(model, flags or frozenset())

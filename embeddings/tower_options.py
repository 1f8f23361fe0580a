"""How a backbone serves its image tower: runtime, precision, compilation, the device's batch size.

Plain settings shared by the service (``--runtime``, ``--precision``, ``--compile``,
``--batch-size``) and the backbones; :mod:`embeddings.precision` acts on them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

PRECISIONS = ("auto", "fp32", "bf16", "int8")
RUNTIMES = ("torch", "onnx", "auto")  # what runs the tower: torch, ONNX Runtime, or measured
ONNX_PRECISIONS = ("fp32", "int8")  # what ONNX Runtime serves (no bf16 kernels on most CPUs)
CPU_BATCH_SIZE = 8  # the CPU default B2 measures the service at (2 cores)
GPU_BATCH_SIZE = 256  # a GPU needs large batches to be busy; the encoder waits at most its
# batch wait for them, so a lone request is not delayed by this


def validate_precision(precision: str) -> str:
    """``precision`` stripped and lower-cased, if it is one of :data:`PRECISIONS`.

    Raises:
        ValueError: it is not.
    """
    return _one_of("precision", precision, PRECISIONS)


def validate_runtime(runtime: str) -> str:
    """``runtime`` stripped and lower-cased, if it is one of :data:`RUNTIMES`.

    Raises:
        ValueError: it is not.
    """
    return _one_of("runtime", runtime, RUNTIMES)


def _one_of(name: str, given: str, allowed: tuple[str, ...]) -> str:
    value = given.strip().lower()
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}, not {given!r}")
    return value


def served_label(runtime: str, precision: str) -> str:
    """How logs, health and the memory file name a served tower: ``bf16``, ``onnx-int8``."""
    return precision if runtime == "torch" else f"{runtime}-{precision}"


def parse_label(label: str) -> tuple[str, str] | None:
    """``(runtime, precision)`` of a :func:`served_label`; None if it names no concrete tower."""
    runtime, _, precision = label.rpartition("-")
    runtime = runtime or "torch"
    if runtime not in RUNTIMES or runtime == "auto" or precision not in PRECISIONS:
        return None
    if precision == "auto" or (runtime == "onnx" and precision not in ONNX_PRECISIONS):
        return None
    return runtime, precision


def parse_batch_size(value: str | int) -> int | None:
    """The encoder batch size a setting names: a positive number, or None for ``auto``.

    Raises:
        ValueError: neither ``auto`` nor a positive integer.
    """
    text = str(value).strip().lower()
    if text == "auto":
        return None
    try:
        size = int(text)
    except ValueError:
        size = 0
    if size < 1:
        raise ValueError(f"batch size must be auto or a positive integer, not {value!r}")
    return size


def auto_batch_size(device: torch.device) -> int:
    """The batch size ``auto`` means on ``device``: :data:`GPU_BATCH_SIZE` on CUDA, else
    :data:`CPU_BATCH_SIZE`."""
    return GPU_BATCH_SIZE if device.type == "cuda" else CPU_BATCH_SIZE


@dataclass(frozen=True)
class TowerOptions:
    """How a backbone serves its image tower (the service passes its settings down as this)."""

    precision: str = "fp32"  # one of PRECISIONS; the library default is exact, the service's auto
    compile: bool = False  # serve torch.compile of the tower (see compiling)
    probe_batch: int = 8  # probe batch size: the encoder's batch size, what auto should time
    # JSON file remembering auto's choice per machine and backbone (None: measure at each load).
    precision_memory: Path | None = None
    runtime: str = "torch"  # one of RUNTIMES: torch, onnx (ONNX Runtime) or auto (measured)

    def __post_init__(self) -> None:
        object.__setattr__(self, "precision", validate_precision(self.precision))
        object.__setattr__(self, "runtime", validate_runtime(self.runtime))
        if self.probe_batch < 1:
            raise ValueError("probe_batch must be >= 1")


DEFAULT_TOWER = TowerOptions()  # fp32, uncompiled: the library default (exact, deterministic)

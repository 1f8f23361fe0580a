"""``auto``'s precision choices remembered in a small JSON file, so a backbone keeps its precision.

Measuring the candidates at every start let a busy machine flip the choice (bf16 at one start,
fp32 at the next), and with it the vectors a function's samples and queries get. The first
measurement for a machine (CPU model or GPU name, and the torch version), a backbone, a probe
batch size and a request (runtime and precision asked for; the onnxruntime version where it may
serve) is kept and reused; delete the file to measure again. A choice is stored as its
:func:`embeddings.tower_options.served_label` (``bf16``, ``onnx-int8``).
"""

from __future__ import annotations

import json
import logging
import os
import platform
import threading
from pathlib import Path

import onnxruntime
import torch

from embeddings.cpu_info import cpu_info
from embeddings.tower_options import parse_label

logger = logging.getLogger(__name__)

_write_lock = threading.Lock()  # backbones of one process may load at the same time


def choice_key(
    device: torch.device,
    backbone: str,
    probe_batch: int,
    *,
    runtime: str = "torch",
    precision: str = "auto",
) -> str:
    """What a remembered choice holds for: the machine, torch, the backbone, the batch timed and
    what was asked (torch and ``auto`` keep the key they had before runtimes were a choice)."""
    machine = torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_model()
    key = f"{machine} | torch {torch.__version__} | {backbone} | batch {probe_batch}"
    if runtime != "torch":
        key += f" | runtime {runtime} (onnxruntime {onnxruntime.__version__})"
    if precision != "auto":
        key += f" | precision {precision}"
    return key


def recall(path: Path, key: str) -> tuple[str, str] | None:
    """The ``(runtime, precision)`` remembered for ``key`` in ``path``; None when absent or
    unreadable."""
    label = _read(path).get(key)
    return parse_label(label) if isinstance(label, str) else None


def remember(path: Path, key: str, label: str) -> None:
    """Record the served tower's ``label`` (``int8``, ``onnx-int8``) for ``key``, keeping the
    other entries; written whole or not at all."""
    with _write_lock:
        choices = _read(path)
        choices[key] = label
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        # 0600 like everything in the data dir: it names this machine's processor
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(json.dumps(choices, indent=2, sort_keys=True) + "\n")
        os.replace(temporary, path)


def _read(path: Path) -> dict[str, object]:
    try:
        choices = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        logger.warning("%s: unreadable (%s); precision is measured again", path, exc)
        return {}
    if not isinstance(choices, dict):
        logger.warning("%s: not a JSON object; precision is measured again", path)
        return {}
    return choices


def _cpu_model() -> str:
    return cpu_info().model or platform.processor() or platform.machine()

"""``auto``'s precision choices remembered in a small JSON file, so a backbone keeps its precision.

Measuring the candidates at every start let a busy machine flip the choice (bf16 at one start,
fp32 at the next), and with it the vectors a function's samples and queries get. The first
measurement for a machine (CPU model or GPU name, and the torch version), a backbone and a probe
batch size is kept and reused; delete the file to measure again.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import threading
from pathlib import Path

import torch

from embeddings.tower_options import PRECISIONS

logger = logging.getLogger(__name__)

_write_lock = threading.Lock()  # backbones of one process may load at the same time


def choice_key(device: torch.device, backbone: str, probe_batch: int) -> str:
    """What a remembered choice holds for: the machine, torch, the backbone and the batch timed."""
    machine = torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_model()
    return f"{machine} | torch {torch.__version__} | {backbone} | batch {probe_batch}"


def recall(path: Path, key: str) -> str | None:
    """The precision remembered for ``key`` in ``path``; None when absent or unreadable."""
    precision = _read(path).get(key)
    if precision in PRECISIONS and precision != "auto":
        return str(precision)
    return None


def remember(path: Path, key: str, precision: str) -> None:
    """Record ``precision`` for ``key``, keeping the other entries; written whole or not at all."""
    with _write_lock:
        choices = _read(path)
        choices[key] = precision
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
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()

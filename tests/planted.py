"""A hostile model artifact: a well-formed winnow pickle whose unpickling runs code."""

from __future__ import annotations

import io
from pathlib import Path

import joblib


class Planted:
    """Creates ``marker`` when unpickled: stands in for an attacker's code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


def planted_artifact(marker: Path) -> bytes:
    """Bytes shaped like a winnow artifact (joblib, format 1) that create ``marker`` when loaded."""
    buffer = io.BytesIO()
    joblib.dump({"format": 1, "head": Planted(marker), "meta": {}}, buffer)
    return buffer.getvalue()

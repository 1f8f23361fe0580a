"""Labelled image folders in and out: one subfolder per label (the layout Keras'
``image_dataset_from_directory`` reads, e.g. PetImages/Cat, PetImages/Dog; named by
``label_folders``), plus the export manifest and label history. The file's path relative to the
folder is the sample's externalId, so a rerun of an import finds what is already there, and an
export puts each file back under the same name."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from winnow_client.bulk import SampleUpload
from winnow_client.images import is_image_file
from winnow_client.label_folders import EXPORT_FILES, folder_for_label, label_for_folder
from winnow_client.models import LabelEvent, Sample

MANIFEST_FIELDS = (
    "file",
    "sampleId",
    "labelName",
    "labelId",
    "externalId",
    "source",
    "createdAt",
    "annotatedAt",
    "annotatedBy",
)
# history.csv: one row per label change of an exported sample, oldest first per sample.
HISTORY_FIELDS = (
    "file",
    "sampleId",
    "at",
    "labelBefore",
    "labelAfter",
    "actors",
    "via",
    "reviewItemId",
)
_EXTENSIONS = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/gif": ".gif",
    "image/bmp": ".bmp",
    "image/webp": ".webp",
}


@dataclass
class LabelledFolder:
    """What an import found: the images by label, and the files it will not send (and why)."""

    labels: list[str]
    uploads: list[SampleUpload]
    not_images: list[Path] = field(default_factory=list)
    # Symlinks (to files or folders) that point outside the imported folder, not followed.
    outside: list[Path] = field(default_factory=list)


def scan_folder(root: Path, *, follow_symlinks: bool = False) -> LabelledFolder:
    """Every image under ``root/<label folder>/`` (nested folders too), labelled by its top
    folder's name decoded (``label_for_folder``).

    Files whose first bytes are no image the service decodes (Thumbs.db, empty files, notes) are
    listed in ``not_images`` without being read further; hidden files and folders are ignored.
    A symlink whose target lies outside ``root`` is listed in ``outside`` and not read, unless
    ``follow_symlinks``; each folder is walked once, so a symlink loop ends.
    """
    if not root.is_dir():
        raise NotADirectoryError(f"{root} is not a folder")
    found = LabelledFolder(labels=[], uploads=[])
    real_root = root.resolve()
    walked = {real_root}

    def leaves_root(path: Path) -> bool:
        return path.is_symlink() and not path.resolve().is_relative_to(real_root)

    def walk(folder: Path, label: str | None) -> None:
        """Walk ``folder``, whose images are ``label``'s (None: ``root``, the label folders)."""
        for path in sorted(folder.iterdir()):
            if path.name.startswith(".") or not (path.is_dir() or path.is_file()):
                continue  # hidden, or a dangling symlink, a socket, a pipe
            if label is None and not path.is_dir():
                continue  # files beside the label folders: an export's manifest, notes
            if not follow_symlinks and leaves_root(path):
                found.outside.append(path.relative_to(root))
            elif path.is_dir():
                folder_label = label_for_folder(path.name) if label is None else label
                if folder_label not in found.labels:
                    found.labels.append(folder_label)
                if path.resolve() not in walked:
                    walked.add(path.resolve())
                    walk(path, folder_label)
            elif is_image_file(path):
                relative = path.relative_to(root).as_posix()
                found.uploads.append(SampleUpload(path, label, relative))
            else:
                found.not_images.append(path.relative_to(root))

    walk(root, None)
    found.labels.sort()
    return found


def safe_name(name: str) -> str:
    """A single path component for a file name: no separators, never . or .., never hidden."""
    cleaned = re.sub(r"[/\\\x00]", "_", name).strip()
    if cleaned in ("", ".", ".."):
        return f"_{cleaned}_"
    return "_" + cleaned if cleaned.startswith(".") else cleaned


def export_path(sample: Sample, label: str, taken: set[str]) -> tuple[str, bool]:
    """Where a labelled sample goes, relative to the export folder (``<label>/<name>``), and
    whether the image's extension must still be appended.

    The name is the externalId's file path below its label folder when it was imported from such
    a folder (so a round trip keeps file names), else the sample id.
    """
    folder = folder_for_label(label)
    if sample.external_id and not sample.external_id.startswith("/"):
        parts = PurePosixPath(sample.external_id).parts
        if len(parts) >= 2:
            candidate = "/".join([folder, *(safe_name(part) for part in parts[1:])])
            if candidate not in taken:
                taken.add(candidate)
                return candidate, False
    return f"{folder}/{sample.id}", True


def extension(mime: str | None) -> str:
    return _EXTENSIONS.get(mime or "", "")


def manifest_row(sample: Sample, file: str) -> dict[str, Any]:
    annotation = sample.annotation
    return {
        "file": file,
        "sampleId": sample.id,
        "labelName": annotation.label_name if annotation else None,
        "labelId": annotation.label_id if annotation else None,
        "externalId": sample.external_id,
        "source": sample.source,
        "createdAt": sample.created_at.isoformat() if sample.created_at else None,
        "annotatedAt": sample.annotated_at.isoformat() if sample.annotated_at else None,
        "annotatedBy": sample.annotated_by,
    }


def history_rows(row: dict[str, Any], events: Sequence[LabelEvent]) -> list[dict[str, Any]]:
    """``history.csv``'s rows of one exported file (``row``: its manifest row); several actors
    (reviewers who agreed) are comma-separated, as in ``annotatedBy``."""
    return [
        {
            "file": row["file"],
            "sampleId": row["sampleId"],
            "at": event.at.isoformat(),
            "labelBefore": event.label_before,
            "labelAfter": event.label_after,
            "actors": ", ".join(event.actors),
            "via": event.via,
            "reviewItemId": event.review_item_id,
        }
        for event in events
    ]


def write_manifest(
    root: Path,
    rows: Sequence[dict[str, Any]],
    histories: Sequence[Sequence[LabelEvent]],
    about: dict[str, Any],
    metrics: Any,
) -> None:
    """``manifest.csv`` (one row per file), ``history.csv`` (one row per label change of each
    file's sample, ``histories`` in the order of ``rows``), ``manifest.json`` (the rows, each
    with its ``history`` as the service sent it, the function and the deployed model), and
    ``metrics.json`` (the deployed model version, or null): the ``EXPORT_FILES``, whose names no
    label folder takes."""
    manifest_csv, manifest_json, metrics_json, history_csv = EXPORT_FILES
    _write_csv(root / manifest_csv, MANIFEST_FIELDS, rows)
    changes = [
        c for row, events in zip(rows, histories, strict=True) for c in history_rows(row, events)
    ]
    _write_csv(root / history_csv, HISTORY_FIELDS, changes)
    samples = [
        {**row, "history": [event.raw for event in events]}
        for row, events in zip(rows, histories, strict=True)
    ]
    document = {**about, "deployedModel": metrics, "samples": samples}
    _write_json(root / manifest_json, document)
    _write_json(root / metrics_json, metrics)


def read_reviewers(root: Path) -> dict[str, str]:
    """File (relative to ``root``) -> ``annotatedBy`` from the ``manifest.csv`` an export wrote
    there, for files with one; empty without a manifest (a folder that is no export)."""
    manifest = root / EXPORT_FILES[0]
    if not manifest.is_file():
        return {}
    try:
        with manifest.open(newline="", encoding="utf-8") as file:
            return {
                row["file"]: row["annotatedBy"]
                for row in csv.DictReader(file)
                if row.get("file") and row.get("annotatedBy")
            }
    except (UnicodeDecodeError, csv.Error):  # someone else's manifest.csv: no reviewers
        return {}


def _write_csv(path: Path, fields: Sequence[str], rows: Iterable[dict[str, Any]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def label_counts(rows: Iterable[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["labelName"]] = counts.get(row["labelName"], 0) + 1
    return dict(sorted(counts.items()))

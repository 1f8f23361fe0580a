"""The dataset commands: ``import`` a labelled folder, ``export`` one back out, ``invoke`` files,
``export-model`` to download a model as ONNX.

Installed as ``winnow-client`` by this distribution; the server's ``winnow`` command adds the same
subcommands (``winnow import ...``) next to ``winnow serve``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from tqdm.auto import tqdm

from winnow_client.datasets import (
    export_path,
    extension,
    label_counts,
    manifest_row,
    read_reviewers,
    scan_folder,
    write_manifest,
)
from winnow_client.errors import Forbidden, NotFound, WinnowError
from winnow_client.images import sniff_image_type
from winnow_client.models import Function, LabelEvent, Prediction, Sample
from winnow_client.sync import Client

DEFAULT_URL = "http://127.0.0.1:8000"


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``import``, ``export`` and ``invoke`` to a parser's subcommands."""
    connection = argparse.ArgumentParser(add_help=False)
    connection.add_argument(
        "--url", default=os.environ.get("WINNOW_URL", DEFAULT_URL), help="service URL (WINNOW_URL)"
    )
    connection.add_argument(
        "--key", default=os.environ.get("WINNOW_API_KEY"), help="API key (WINNOW_API_KEY)"
    )
    connection.add_argument("--concurrency", type=int, default=4, help="requests in flight")
    connection.add_argument("--quiet", action="store_true", help="no progress bar")

    load = commands.add_parser(
        "import", parents=[connection], help="upload a folder with one subfolder per label"
    )
    load.add_argument("folder", type=Path, metavar="DIR")
    load.add_argument("--function", required=True, metavar="NAME", help="created if missing")
    load.add_argument(
        "--follow-symlinks",
        action="store_true",
        help="also read symlinked files and folders that point outside DIR",
    )
    load.add_argument(
        "--no-annotated-by",
        action="store_true",
        help="record the labels as this key's reviewer, not as the annotatedBy of an export's "
        "manifest.csv in DIR (which needs an admin key)",
    )
    load.set_defaults(run=import_folder)

    save = commands.add_parser(
        "export", parents=[connection], help="download labelled samples, one folder per label"
    )
    save.add_argument("--function", required=True, metavar="NAME")
    save.add_argument("folder", type=Path, metavar="DIR")
    save.set_defaults(run=export_folder)

    model = commands.add_parser(
        "export-model",
        parents=[connection],
        help="download a version as one ONNX file (runs with onnxruntime alone)",
    )
    model.add_argument("--function", required=True, metavar="NAME")
    model.add_argument("--version", type=int, default=None, help="default: the deployed one")
    model.add_argument("out", type=Path, metavar="OUT.onnx")
    model.set_defaults(run=export_model)

    call = commands.add_parser("invoke", parents=[connection], help="classify image files")
    call.add_argument("files", type=Path, nargs="+", metavar="FILE")
    call.add_argument("--function", required=True, metavar="NAME")
    call.add_argument("--json", action="store_true", help="one JSON object per line")
    call.add_argument("--capture", action="store_true", help="let the service capture inputs")
    call.set_defaults(run=invoke_files)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="winnow-client",
        description="Import a labelled image folder into winnow, export one back out, or "
        "classify image files (the same commands as `winnow import | export | invoke`).",
    )
    add_commands(parser.add_subparsers(dest="command", required=True))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run(args)


def run(args: argparse.Namespace) -> int:
    """Run a parsed dataset command; errors of the service end it with status 1."""
    try:
        with Client(args.url, api_key=args.key) as client:
            return int(args.run(client, args))
    except (WinnowError, httpx.HTTPError, OSError) as exc:
        print(f"winnow: {exc}", file=sys.stderr)
        return 1


def find_function(client: Client, name: str) -> Function:
    """The function called ``name`` (or with that id)."""
    function = client.find_function(name)
    if function is not None:
        return function
    try:
        return client.get_function(name)
    except NotFound:
        raise NotFound(404, f"no function called {name!r}") from None


def export_model(client: Client, args: argparse.Namespace) -> int:
    """Write the function's model to ``OUT.onnx`` (through a temporary file, then renamed)."""
    function = find_function(client, args.function)
    data = client.export_model(function.id, args.version)
    partial = args.out.with_name(args.out.name + ".partial")
    partial.write_bytes(data)
    partial.replace(args.out)
    version = "deployed" if args.version is None else f"v{args.version}"
    print(f"{function.name} ({version}): wrote {args.out} ({len(data):,} bytes)", file=sys.stderr)
    return 0


def import_folder(client: Client, args: argparse.Namespace) -> int:
    """Upload every image of ``DIR/<label>/`` as an import (its label history says so), each
    label given by the reviewer an export's manifest names for its file, unless
    ``--no-annotated-by``; exit 1 only when none of them is in the function."""
    folder = scan_folder(args.folder, follow_symlinks=args.follow_symlinks)
    uploads = folder.uploads
    if not args.no_annotated_by:
        reviewers = read_reviewers(args.folder)
        uploads = [u._replace(annotated_by=reviewers.get(u.external_id or "")) for u in uploads]
    function = client.ensure_function(args.function, folder.labels)
    try:
        report = client.upload_samples(
            function.id,
            uploads,
            concurrency=args.concurrency,
            progress=not args.quiet,
            via="import",
        )
    except Forbidden:
        if any(u.annotated_by for u in uploads):
            print(
                "winnow: the manifest names who labelled each file (annotatedBy), which only an "
                "admin key may record; --no-annotated-by imports them as this key's reviewer",
                file=sys.stderr,
            )
        raise
    for path in folder.not_images:
        print(f"skipped {path}: not an image (JPEG, PNG, GIF, BMP or WebP)", file=sys.stderr)
    for path in folder.outside:
        print(
            f"skipped {path}: a symlink to outside {args.folder} (--follow-symlinks reads it)",
            file=sys.stderr,
        )
    for name, error in report.failed:
        print(f"failed {name}: {error}", file=sys.stderr)
    print(
        f"{function.name} ({function.id}): uploaded {report.uploaded}, "
        f"already present {len(report.skipped)}, not images {len(folder.not_images)}, "
        f"failed {len(report.failed)}, links outside {len(folder.outside)}",
        file=sys.stderr,
    )
    return 0 if report.uploaded or report.skipped else 1


def export_folder(client: Client, args: argparse.Namespace) -> int:
    """Write each labelled sample to ``DIR/<label>/`` with a manifest, the samples' label
    history and the model's metrics."""
    function = find_function(client, args.function)
    samples = list(client.iter_samples(function.id, annotated=True))
    root: Path = args.folder
    root.mkdir(parents=True, exist_ok=True)
    taken: set[str] = set()
    targets = [export_path(s, s.label_name or "", taken) for s in samples]

    def download(sample: Sample, target: tuple[str, bool]) -> str:
        name, needs_extension = target
        if needs_extension:  # a resumed export keeps what it already wrote
            written = sorted((root / name).parent.glob((root / name).name + ".*"))
            if written:
                return written[0].relative_to(root).as_posix()
        elif (root / name).exists():
            return name
        data = client.sample_image(function.id, sample.id)
        if needs_extension:
            name += extension(sniff_image_type(data[:12]))
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
        return name

    def export(sample: Sample, target: tuple[str, bool]) -> tuple[str, list[LabelEvent]]:
        return download(sample, target), client.sample_history(function.id, sample.id)

    bar = tqdm(total=len(samples), desc="export", unit="img", disable=args.quiet)
    with bar, ThreadPoolExecutor(max_workers=max(1, args.concurrency)) as pool:
        futures = [pool.submit(export, s, t) for s, t in zip(samples, targets, strict=True)]
        files, histories = [], []
        for future in futures:
            file, history = future.result()
            files.append(file)
            histories.append(history)
            bar.update(1)
    rows = [manifest_row(s, f) for s, f in zip(samples, files, strict=True)]
    try:
        metrics: Any = client.metrics(function.id).raw
    except NotFound:
        metrics = None  # nothing deployed yet
    about = {
        "function": function.raw,
        "exportedAt": datetime.now(UTC).isoformat(),
        "labelCounts": label_counts(rows),
    }
    write_manifest(root, rows, histories, about, metrics)
    print(f"exported {len(rows)} samples of {function.name} to {root}", file=sys.stderr)
    return 0


def invoke_files(client: Client, args: argparse.Namespace) -> int:
    """Print each file's label and confidence; exit 1 when any file could not be classified."""
    function = find_function(client, args.function)
    readable: list[tuple[Path, bytes]] = []
    failed = 0
    for path in args.files:
        try:
            readable.append((path, path.read_bytes()))
        except OSError as exc:
            failed += _print_answer(path, exc, as_json=args.json)
    answers = client.invoke_many(
        function.id,
        [data for _, data in readable],
        concurrency=args.concurrency,
        capture=args.capture,
        progress=False,
    )
    for (path, _), answer in zip(readable, answers, strict=True):
        failed += _print_answer(path, answer, as_json=args.json)
    return 1 if failed else 0


def _print_answer(path: Path, answer: Prediction | Exception, *, as_json: bool) -> int:
    """Print one file's answer (stdout) or error (stderr); returns 1 for an error or for an
    answer without a label (no model serves yet: the file was not classified)."""
    if isinstance(answer, Prediction):
        unclassified = answer.label_name is None or answer.confidence is None
        if as_json:
            print(json.dumps({"file": str(path), **answer.raw}))
        elif unclassified:
            print(f"{path}\t-\t-\tno model yet")
        else:
            others = ", ".join(
                f"{c.label_name} {c.confidence:.3f}" for c in answer.label_confidences[1:3]
            )
            print(f"{path}\t{answer.label_name}\t{answer.confidence:.3f}\t{others}")
        return 1 if unclassified else 0
    if as_json:
        status = getattr(answer, "status", None)
        message = getattr(answer, "message", str(answer))
        print(json.dumps({"file": str(path), "error": {"status": status, "message": message}}))
    else:
        print(f"{path}\terror: {answer}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())

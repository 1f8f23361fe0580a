"""``winnow import / export / invoke`` on a 10-class Fashion-MNIST folder of 2,000 images (from
Debian's dataset package) with a few corrupt and non-image files, against a live service."""

import csv
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from winnow_client import Client
from winnow_client.cli import main as client_main
from winnow_client.datasets import read_reviewers

from api.cli import main as server_main
from tests.conftest import ADMIN_KEY, BLUE, RED, png_bytes
from tests.fashion import CLASSES, fashion_test_split, png

PER_CLASS = 200
# Files an import must not take in: two claim an image format but are broken (the service says
# 400), three are not images at all (skipped without a request).
CORRUPT = {"bag/truncated.png", "sandal/garbage.jpg"}
NOT_IMAGES = {"coat/empty.jpg", "dress/notes.txt", "shirt/Thumbs.db"}


def write_fashion_folder(root: Path) -> Counter[str]:
    images, labels = fashion_test_split()
    counts: Counter[str] = Counter()
    for index, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for i in np.flatnonzero(labels == index)[:PER_CLASS]:
            (root / name / f"{i}.png").write_bytes(png(images[i]))
            counts[name] += 1
    (root / "bag/truncated.png").write_bytes(png(images[0])[:60])
    (root / "sandal/garbage.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4)
    (root / "coat/empty.jpg").write_bytes(b"")
    (root / "dress/notes.txt").write_text("not a picture\n")
    (root / "shirt/Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0" + b"\0" * 100)
    return counts


def label_counts(winnow: Client, function_name: str) -> Counter[str]:
    function = winnow.find_function(function_name)
    assert function is not None
    return Counter(s.label_name or "" for s in winnow.iter_samples(function.id))


@pytest.mark.slow  # about 110 s on 2 shared CPU cores: 4,000 uploads, 2,000 downloads
def test_import_export_round_trip(live_url: str, tmp_path: Path, capsys) -> None:
    source, exported = tmp_path / "fashion", tmp_path / "exported"
    expected = write_fashion_folder(source)
    assert sum(expected.values()) == 2000
    connection = ["--url", live_url, "--key", ADMIN_KEY, "--quiet"]

    assert client_main(["import", str(source), "--function", "Fashion", *connection]) == 0
    report = capsys.readouterr().err
    assert "uploaded 2000, already present 0, not images 3, failed 2" in report
    for name in CORRUPT:
        assert f"failed {name}: 400" in report
    for name in NOT_IMAGES:
        assert f"skipped {name}: not an image" in report

    # A rerun (here through the server's `winnow` command) uploads nothing twice.
    assert server_main(["import", str(source), "--function", "Fashion", *connection]) == 0
    assert "uploaded 0, already present 2000" in capsys.readouterr().err

    with Client(live_url, api_key=ADMIN_KEY) as winnow:
        assert label_counts(winnow, "Fashion") == expected
        fashion = winnow.find_function("Fashion")
        assert fashion is not None and fashion.sample_count == 2000
        version = winnow.train(fashion.id)

    assert client_main(["export", "--function", "Fashion", str(exported), *connection]) == 0
    rows = list(csv.DictReader((exported / "manifest.csv").open(encoding="utf-8")))
    assert len(rows) == 2000 and Counter(row["labelName"] for row in rows) == expected
    assert {row["file"] for row in rows} == {row["externalId"] for row in rows}  # names kept
    assert all(row["sampleId"] and row["annotatedAt"] for row in rows)
    assert {row["annotatedBy"] for row in rows} == {"admin"}  # the key that imported them
    with (exported / "history.csv").open(encoding="utf-8") as history_csv:
        history = list(csv.DictReader(history_csv))
    assert len(history) == 2000  # each labelled once, by the first import
    assert {(h["labelBefore"], h["actors"], h["via"]) for h in history} == {("", "admin", "import")}
    manifest = json.loads((exported / "manifest.json").read_text())
    assert manifest["labelCounts"] == dict(sorted(expected.items()))
    assert manifest["deployedModel"]["version"] == version.version
    metrics = json.loads((exported / "metrics.json").read_text())
    assert metrics["metrics"]["accuracy"] == version.metrics["accuracy"]
    assert (exported / rows[0]["file"]).read_bytes()[:4] == b"\x89PNG"

    assert client_main(["import", str(exported), "--function", "Fashion2", *connection]) == 0
    assert "uploaded 2000, already present 0, not images 0, failed 0" in capsys.readouterr().err
    with Client(live_url, api_key=ADMIN_KEY) as winnow:
        assert label_counts(winnow, "Fashion2") == label_counts(winnow, "Fashion") == expected


def test_import_fails_only_when_nothing_gets_in(live_url: str, tmp_path: Path, capsys) -> None:
    folder = tmp_path / "in"  # (tmp_path also holds the service's data dir)
    (folder / "cat").mkdir(parents=True)
    (folder / "cat/broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    connection = ["--url", live_url, "--key", ADMIN_KEY, "--quiet"]
    assert client_main(["import", str(folder), "--function", "Cats", *connection]) == 1
    assert "uploaded 0, already present 0, not images 0, failed 1" in capsys.readouterr().err
    assert client_main(["import", str(tmp_path / "missing"), "--function", "C", *connection]) == 1
    assert client_main(["import", str(folder), "--function", "C", "--url", live_url]) == 1
    assert "401" in capsys.readouterr().err  # no key


def test_invoke_prints_labels_and_json_lines(live_url: str, tmp_path: Path, capsys) -> None:
    images, labels = fashion_test_split()
    folder = tmp_path / "data"
    for index in (1, 7):  # trouser, sneaker
        (folder / CLASSES[index]).mkdir(parents=True)
        for i in np.flatnonzero(labels == index)[:10]:
            (folder / CLASSES[index] / f"{i}.png").write_bytes(png(images[i]))
    connection = ["--url", live_url, "--key", ADMIN_KEY, "--quiet"]
    assert client_main(["import", str(folder), "--function", "Clothes", *connection]) == 0
    files = sorted(str(p) for p in folder.rglob("*.png"))[:3]
    with Client(live_url, api_key=ADMIN_KEY) as winnow:
        winnow.create_function("Empty")  # no labels, so no model, not even a zero-shot one
    capsys.readouterr()
    for output in ([], ["--json"]):  # an answer without a label did not classify the file
        assert client_main(["invoke", files[0], "--function", "Empty", *output, *connection]) == 1
    assert "no model yet" in capsys.readouterr().out

    with Client(live_url, api_key=ADMIN_KEY) as winnow:
        fn = winnow.find_function("Clothes")
        assert fn is not None
        winnow.train(fn.id)
    capsys.readouterr()

    assert client_main(["invoke", *files, "--function", "Clothes", "--json", *connection]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["file"] for line in lines] == files
    assert all(line["labelName"] in {"trouser", "sneaker"} and line["confidence"] for line in lines)

    missing = str(tmp_path / "missing.png")
    assert client_main(["invoke", files[0], missing, "--function", "Clothes", *connection]) == 1
    out, err = capsys.readouterr()
    assert out.startswith(files[0] + "\t") and missing in err


def test_export_writes_the_label_history_and_an_import_keeps_the_reviewers(
    live_url: str, tmp_path: Path, capsys
) -> None:
    as_admin = ["--url", live_url, "--quiet", "--key", ADMIN_KEY]
    exported = tmp_path / "exported"
    with Client(live_url, api_key=ADMIN_KEY) as winnow:
        fn = winnow.create_function("Colours", ["red", "blue"])
        for name in ("Back", "ByAna"):
            winnow.create_function(name, ["red", "blue"])
        ana_key = winnow.create_key(["annotate"], reviewer="ana").key
        winnow.create_sample(fn.id, png_bytes(RED), "red", external_id="red/r.png")
        with Client(live_url, api_key=ana_key) as ana:
            blue = ana.create_sample(fn.id, png_bytes(BLUE), "red", external_id="blue/b.png")
            ana.set_annotation(fn.id, blue.id, "blue")

    assert client_main(["export", "--function", "Colours", str(exported), *as_admin]) == 0
    with (exported / "manifest.csv").open(encoding="utf-8") as manifest_csv:
        rows = {row["file"]: row for row in csv.DictReader(manifest_csv)}
    assert {f: row["annotatedBy"] for f, row in rows.items()} == {
        "red/r.png": "admin",
        "blue/b.png": "ana",
    }
    with (exported / "history.csv").open(encoding="utf-8") as history_csv:
        history = list(csv.DictReader(history_csv))
    assert [
        (h["file"], h["labelBefore"], h["labelAfter"], h["actors"], h["via"]) for h in history
    ] == [
        ("red/r.png", "", "red", "admin", "sample_api"),
        ("blue/b.png", "", "red", "ana", "sample_api"),
        ("blue/b.png", "red", "blue", "ana", "sample_api"),
    ]
    assert history[1]["sampleId"] == blue.id and history[1]["at"]
    manifest = json.loads((exported / "manifest.json").read_text(encoding="utf-8"))
    in_json = {s["file"]: s["history"] for s in manifest["samples"]}
    assert [e["actors"] for e in in_json["blue/b.png"]] == [["ana"], ["ana"]]
    assert set(in_json["blue/b.png"][0]) >= {"at", "labelBefore", "labelAfter", "via"}

    def imported(function_name: str) -> dict[str, tuple[list[str], str]]:
        """externalId -> (actors, via) of each sample's one history event."""
        with Client(live_url, api_key=ADMIN_KEY) as winnow:
            function = winnow.find_function(function_name)
            assert function is not None
            out = {}
            for sample in winnow.iter_samples(function.id):
                [event] = winnow.sample_history(function.id, sample.id)
                out[sample.external_id or ""] = (event.actors, event.via)
            return out

    # an admin key records the manifest's reviewers, through the import path
    assert client_main(["import", str(exported), "--function", "Back", *as_admin]) == 0
    assert imported("Back") == {
        "red/r.png": (["admin"], "import"),
        "blue/b.png": (["ana"], "import"),
    }
    # another key may not name the people in the manifest: it is told how to import as itself
    capsys.readouterr()
    by_ana = ["import", str(exported), "--function", "ByAna", "--url", live_url, "--quiet"]
    by_ana += ["--key", ana_key]
    assert client_main(by_ana) == 1
    assert "--no-annotated-by" in capsys.readouterr().err
    assert imported("ByAna") == {}
    assert client_main([*by_ana, "--no-annotated-by"]) == 0
    assert imported("ByAna") == {
        "red/r.png": (["ana"], "import"),
        "blue/b.png": (["ana"], "import"),
    }


def test_reviewers_come_from_an_export_manifest_only(tmp_path: Path) -> None:
    assert read_reviewers(tmp_path) == {}  # no manifest: a plain labelled folder
    (tmp_path / "manifest.csv").write_bytes(b"\xff\xfe someone else's file")
    assert read_reviewers(tmp_path) == {}
    (tmp_path / "manifest.csv").write_text("notes\nx\n", encoding="utf-8")
    assert read_reviewers(tmp_path) == {}
    rows = "file,labelName,annotatedBy\ncat/1.png,cat,ana\ncat/2.png,cat,\n"
    (tmp_path / "manifest.csv").write_text(rows, encoding="utf-8")
    assert read_reviewers(tmp_path) == {"cat/1.png": "ana"}

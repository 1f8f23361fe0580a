"""Hostile label names through ``winnow export`` and back through ``winnow import``, and symlinks
out of an imported folder: one folder per label, never an export file's, decoded on import; links
out of the folder are skipped and reported unless ``--follow-symlinks``."""

import unicodedata
from collections import Counter
from pathlib import Path

import pytest
from winnow_client import Client
from winnow_client.bulk import SampleUpload
from winnow_client.cli import main as client_main
from winnow_client.datasets import scan_folder
from winnow_client.label_folders import EXPORT_FILES, folder_for_label, label_for_folder

from tests.conftest import ADMIN_KEY, BLUE, RED, png_bytes

# The labels the service takes today that a naive folder per label gets wrong.
HOSTILE = ["manifest.csv", "metrics.json", "a/b", "a_b", "a%2Fb", "..", ".hidden", "a\\b"]
HOSTILE += ["café", "猫 🐈", "CON", "nul.txt", "x:y?", "dot.", "%"]
# Names only this module's encoding meets (the service may refuse some of them).
ODD = ["", ".", "Manifest.CSV", "line\nbreak", "zero\u200bwidth", "\u202eevil", "tab\t"]
ODD += [unicodedata.normalize("NFD", "café"), "a%41", "trailing ", "\ud800"]


def test_every_label_has_its_own_folder_and_gets_it_back() -> None:
    labels = HOSTILE + [name for name in ODD if name]
    folders = [folder_for_label(label) for label in labels]
    assert len({folder.casefold() for folder in folders}) == len(labels)  # also on macOS, Windows
    for label, folder in zip(labels, folders, strict=True):
        assert label_for_folder(folder) == label
        assert folder not in ("", ".", "..") and not folder.startswith(".")
        assert not set(folder) & set('/\\<>:"|?*\0\n\t\u200b\u202e')
        assert folder.casefold() not in EXPORT_FILES and folder[-1] not in ". "
    assert folder_for_label("a/b") == "a%2Fb" and folder_for_label("a%2Fb") == "a%252Fb"
    assert folder_for_label("manifest.csv") == "%6Danifest.csv"
    assert folder_for_label(".hidden") == "%2Ehidden" and folder_for_label("..") == "%2E%2E"
    for plain in ("cat", "café", "Pet Images", "a_b", "猫 🐈"):
        assert folder_for_label(plain) == plain
    with pytest.raises(ValueError):
        folder_for_label("")


def test_folders_no_export_wrote_are_read_as_they_are() -> None:
    # Folders of an older export (labels with "/" became "_") and hand-made ones keep their names.
    for name in ("a_b", "_.._", "50%", "100% sure", "%zz"):
        assert label_for_folder(name) == name
    assert label_for_folder("bad%FFutf8") == "bad%FFutf8"


def test_hostile_labels_survive_export_and_import(live_url: str, tmp_path: Path, capsys) -> None:
    expected = Counter({label: 1 + i % 2 for i, label in enumerate(HOSTILE)})
    with Client(live_url, api_key=ADMIN_KEY) as winnow:
        function = winnow.create_function("Hostile", list(expected))
        uploads = [
            SampleUpload(png_bytes(RED if i % 2 else BLUE, seed=i), label)
            for i, label in enumerate(expected.elements())
        ]
        # An externalId naming a hidden file: exported under a visible name, so it comes back.
        uploads.append(SampleUpload(png_bytes(RED, seed=99), "a_b", "a_b/.hidden.png"))
        expected["a_b"] += 1
        report = winnow.upload_samples(function.id, uploads, progress=False)
        assert report.uploaded == expected.total() and not report.failed
    connection = ["--url", live_url, "--key", ADMIN_KEY, "--quiet"]
    exported = tmp_path / "exported"

    assert client_main(["export", "--function", "Hostile", str(exported), *connection]) == 0
    folders = {p.name for p in exported.iterdir() if p.is_dir()}
    assert folders == {folder_for_label(label) for label in expected}
    assert {p.name for p in exported.iterdir() if p.is_file()} == set(EXPORT_FILES)
    for label, count in expected.items():
        assert len(list((exported / folder_for_label(label)).iterdir())) == count

    capsys.readouterr()
    assert client_main(["import", str(exported), "--function", "Back", *connection]) == 0
    assert f"uploaded {expected.total()}, already present 0" in capsys.readouterr().err
    with Client(live_url, api_key=ADMIN_KEY) as winnow:
        back = winnow.find_function("Back")
        assert back is not None
        assert {label.name for label in winnow.list_labels(back.id)} == set(expected)
        assert Counter(s.label_name for s in winnow.iter_samples(back.id)) == expected


def write_tree_with_links(tmp_path: Path) -> Path:
    """``root/cat`` with an image, an image linked from outside, a link inside the tree and a
    loop; ``root/dog`` linked to a folder outside; ``root/bird`` with one image."""
    root, elsewhere = tmp_path / "root", tmp_path / "elsewhere"
    for folder in (root / "cat", root / "bird", elsewhere / "dogs"):
        folder.mkdir(parents=True)
    (root / "cat/1.png").write_bytes(png_bytes(RED, seed=1))
    (root / "bird/2.png").write_bytes(png_bytes(BLUE, seed=2))
    (elsewhere / "secret.png").write_bytes(png_bytes(RED, seed=3))
    (elsewhere / "dogs/4.png").write_bytes(png_bytes(BLUE, seed=4))
    (root / "cat/secret.png").symlink_to(elsewhere / "secret.png")
    (root / "cat/bird.png").symlink_to(Path("../bird/2.png"))  # inside the tree: read
    (root / "cat/loop").symlink_to(Path(".."), target_is_directory=True)
    (root / "dog").symlink_to(elsewhere / "dogs", target_is_directory=True)
    (root / "cat/dangling.png").symlink_to(tmp_path / "missing.png")
    return root


def test_scan_skips_links_out_of_the_folder_unless_told(tmp_path: Path) -> None:
    root = write_tree_with_links(tmp_path)
    found = scan_folder(root)
    assert found.labels == ["bird", "cat"]
    assert sorted(u.external_id for u in found.uploads) == [
        "bird/2.png",
        "cat/1.png",
        "cat/bird.png",
    ]
    assert sorted(found.outside) == [Path("cat/secret.png"), Path("dog")]
    assert not found.not_images

    followed = scan_folder(root, follow_symlinks=True)
    assert followed.labels == ["bird", "cat", "dog"] and not followed.outside
    uploads = {u.external_id: u.label for u in followed.uploads}
    assert uploads["cat/secret.png"] == "cat" and uploads["dog/4.png"] == "dog"
    assert len(uploads) == 5  # the loop back to root is walked once, the dangling link ignored


def test_import_reports_links_out_and_follows_them_on_request(
    live_url: str, tmp_path: Path, capsys
) -> None:
    root = write_tree_with_links(tmp_path)
    connection = ["--url", live_url, "--key", ADMIN_KEY, "--quiet"]
    assert client_main(["import", str(root), "--function", "Pets", *connection]) == 0
    report = capsys.readouterr().err
    assert f"skipped cat/secret.png: a symlink to outside {root}" in report
    assert f"skipped dog: a symlink to outside {root}" in report
    assert "uploaded 3, already present 0, not images 0, failed 0, links outside 2" in report
    with Client(live_url, api_key=ADMIN_KEY) as winnow:
        pets = winnow.find_function("Pets")
        assert pets is not None
        assert {label.name for label in winnow.list_labels(pets.id)} == {"bird", "cat"}

    follow = ["--follow-symlinks", *connection]
    assert client_main(["import", str(root), "--function", "Pets", *follow]) == 0
    assert "uploaded 2, already present 3, not images 0, failed 0, links outside 0" in (
        capsys.readouterr().err
    )

"""Versioned artifacts: round trip, immutability, corruption, verification and crash safety."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import joblib
import numpy as np
import pytest

from learner import (
    ArtifactCorrupt,
    ArtifactExists,
    ArtifactNotFound,
    ArtifactTampered,
    ArtifactUnverified,
    Candidate,
    InvalidFunctionId,
    ModelStore,
    train_head,
)
from tests.learner.conftest import make_clusters
from tests.planted import planted_artifact

REPO_ROOT = Path(__file__).resolve().parents[2]


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def trained() -> tuple[object, np.ndarray]:
    X, y = make_clusters({"a": 8, "b": 8, "c": 8}, noise=1.0, seed=20)
    result = train_head(X, y, candidates=[Candidate("logistic_regression", {"C": 1.0})])
    return result.head, X


def test_round_trip_gives_identical_probabilities(tmp_path: Path, trained) -> None:
    head, X = trained
    store = ModelStore(tmp_path)
    meta = {"labels": ["a", "b", "c"], "metrics": {"accuracy": 0.9}}

    digest = store.save("fn_1", 1, head, meta)

    path = tmp_path / "fn_1" / "v1.joblib"
    assert store.path("fn_1", 1) == path
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
    loaded_head, loaded_meta = store.load("fn_1", 1, sha256=digest)
    assert loaded_meta == meta
    assert np.array_equal(loaded_head.predict_proba(X), head.predict_proba(X))
    assert list(loaded_head.classes_) == list(head.classes_)


def test_versions_listing_and_immutability(tmp_path: Path, trained) -> None:
    head, _ = trained
    store = ModelStore(tmp_path)
    assert store.versions("fn") == []
    assert store.latest_version("fn") is None
    for version in (2, 10, 1):
        store.save("fn", version, head, {"v": version})
    assert store.versions("fn") == [1, 2, 10]
    assert store.latest_version("fn") == 10

    with pytest.raises(ArtifactExists):
        store.save("fn", 2, head, {"v": "again"})
    again = store.save("fn", 2, head, {"v": "again"}, overwrite=True)
    assert store.load("fn", 2, sha256=again)[1] == {"v": "again"}

    store.delete_function("fn")
    assert store.versions("fn") == []
    store.delete_function("never-existed")


def test_missing_and_corrupt_artifacts_raise_domain_errors(tmp_path: Path, trained) -> None:
    head, _ = trained
    store = ModelStore(tmp_path)
    with pytest.raises(ArtifactNotFound):
        store.load("fn", 1, sha256="0" * 64)
    store.save("fn", 1, head, {})
    path = store.path("fn", 1)

    # Damaged bytes recorded as written (the digest matches) still fail as corrupt, not crash.
    for damaged in (path.read_bytes()[: path.stat().st_size // 2], b"definitely not a pickle"):
        path.write_bytes(damaged)
        with pytest.raises(ArtifactCorrupt, match="cannot be read"):
            store.load("fn", 1, sha256=sha256_of(path))

    joblib.dump(["a", "foreign", "object"], path)
    with pytest.raises(ArtifactCorrupt, match="not a winnow artifact"):
        store.load("fn", 1, sha256=sha256_of(path))


@pytest.mark.parametrize("bad_id", ["", "../escape", "a/b", ".hidden", "x" * 200])
def test_function_ids_cannot_escape_the_root(tmp_path: Path, bad_id: str) -> None:
    with pytest.raises(InvalidFunctionId):
        ModelStore(tmp_path).versions(bad_id)


def test_failed_rename_keeps_previous_version(tmp_path: Path, trained, monkeypatch) -> None:
    head, X = trained
    store = ModelStore(tmp_path)
    digest = store.save("fn", 1, head, {"v": 1})

    def crash(*args: object) -> None:
        raise OSError("disk vanished during rename")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk vanished"):
        store.save("fn", 2, head, {"v": 2})
    monkeypatch.undo()

    assert store.versions("fn") == [1]
    assert store.load("fn", 1, sha256=digest)[1] == {"v": 1}
    assert sorted(p.name for p in (tmp_path / "fn").iterdir()) == ["v1.joblib"]


def test_killed_process_leaves_temp_file_that_is_ignored_then_swept(tmp_path: Path) -> None:
    """A real crash: a child process dies (os._exit) between writing the temp file and renaming."""
    script = textwrap.dedent(
        f"""
        import os
        from sklearn.dummy import DummyClassifier
        from learner import ModelStore

        store = ModelStore({str(tmp_path)!r})
        head = DummyClassifier(strategy="prior").fit([[0.0], [1.0]], ["a", "b"])
        store.save("fn", 1, head, {{"v": 1}})
        os.replace = lambda *args: os._exit(9)
        store.save("fn", 2, head, {{"v": 2}})
        """
    )
    child = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, timeout=120
    )
    assert child.returncode == 9, child.stderr.decode()

    store = ModelStore(tmp_path)
    leftovers = [p for p in (tmp_path / "fn").iterdir() if p.name != "v1.joblib"]
    assert len(leftovers) == 1 and leftovers[0].stat().st_size > 0
    assert store.versions("fn") == [1]
    digest = sha256_of(store.path("fn", 1))  # the whole file the child wrote before dying
    assert store.load("fn", 1, sha256=digest)[1] == {"v": 1}
    with pytest.raises(ArtifactNotFound):
        store.load("fn", 2, sha256=digest)

    assert store.sweep_temp_files(older_than_seconds=3600) == 0  # too fresh: maybe in flight
    assert store.sweep_temp_files() == 1
    assert sorted(p.name for p in (tmp_path / "fn").iterdir()) == ["v1.joblib"]
    assert store.load("fn", 1, sha256=digest)[1] == {"v": 1}


def test_a_planted_pickle_is_refused_unread(tmp_path: Path, trained) -> None:
    head, _ = trained
    store = ModelStore(tmp_path / "models")
    digest = store.save("fn", 1, head, {"v": 1})
    marker = tmp_path / "planted-code-ran"
    store.path("fn", 1).write_bytes(planted_artifact(marker))

    with pytest.raises(
        ArtifactTampered, match=f"SHA-256 digest .* does not match the recorded {digest}"
    ):
        store.load("fn", 1, sha256=digest)
    with pytest.raises(ArtifactUnverified, match="no recorded SHA-256 digest"):
        store.load("fn", 1, sha256=None)
    assert not marker.exists()


def test_artifacts_are_private_to_the_owner(tmp_path: Path, trained) -> None:
    head, _ = trained
    store = ModelStore(tmp_path / "models")
    store.save("fn", 1, head, {})
    assert (tmp_path / "models").stat().st_mode & 0o777 == 0o700
    assert (tmp_path / "models" / "fn").stat().st_mode & 0o777 == 0o700
    assert store.path("fn", 1).stat().st_mode & 0o777 == 0o600

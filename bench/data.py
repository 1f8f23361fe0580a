"""Benchmark data: Fashion-MNIST from the Debian package, embedded by winnow's own backbone.

The images come from ``/usr/share/datasets/fashion-mnist`` (Debian's ``fashion-mnist`` package, idx
format), so nothing is downloaded. Each 28x28 greyscale image becomes an RGB Pillow image and goes
through the same path an invoke takes: :func:`embeddings.to_rgb`, ``backbone.preprocess`` and
``backbone.encode`` on batches, giving L2-normalised vectors.

Embedding is slow on CPU (EfficientNet-Lite0 does ~10-15 images/s on two cores), so vectors are
cached on disk under ``bench/cache/`` in append-only chunk files, one directory per backbone spec
and idx file content hash; every chunk stores the image indices it holds. A larger ``--subset``
reuses everything already embedded, and an interrupted run keeps the chunks it finished.

Splits are prefixes of fixed permutations, so growing a split only adds images:

* ``pool``: the simulated production stream, drawn from the training file;
* ``val``: a disjoint slice of the training file, used only to tune the capture policy;
* ``test``: drawn from the t10k file, used only to report accuracy.

Usage (from the repository root)::

    python -m bench.data --pool 3000 --val 1000 --test 1000     # embed (or check) the cache
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import struct
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DATA_DIR = Path("/usr/share/datasets/fashion-mnist")
CACHE_DIR = ROOT / "bench" / "cache"
BACKBONE_SPEC = "efficientnet-lite0"
CLASS_NAMES = (
    "t-shirt/top",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle boot",
)
_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "t10k": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
_SPLIT_SEED = 20240601  # fixed: splits never change between runs or seeds
_CHUNK = 128  # images per cache chunk file (one is written every ~10 s on a busy CPU)


@dataclass(frozen=True)
class Split:
    """Embedded images of one split: vectors ``(n, dim)``, class names ``(n,)``, file indices."""

    vectors: np.ndarray
    labels: np.ndarray
    indices: np.ndarray


@dataclass(frozen=True)
class BenchmarkData:
    """Pool (the stream), validation (tuning only) and test (reporting only) splits."""

    pool: Split
    val: Split
    test: Split
    backbone: str

    def describe(self) -> dict[str, object]:
        """JSON-safe summary for result files."""
        return {
            "dataset": "fashion-mnist (Debian package, idx format)",
            "backbone": self.backbone,
            "dim": int(self.pool.vectors.shape[1]),
            "pool": len(self.pool.labels),
            "val": len(self.val.labels),
            "test": len(self.test.labels),
        }


def read_idx(path: Path) -> np.ndarray:
    """Decode a gzipped idx file (the MNIST family's format) into a uint8 array.

    Args:
        path: an ``*-idx1-ubyte.gz`` (labels) or ``*-idx3-ubyte.gz`` (images) file.
    """
    with gzip.open(path, "rb") as handle:
        raw = handle.read()
    zero, dtype_code, n_dims = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype_code != 0x08:
        raise ValueError(f"{path} is not an unsigned-byte idx file")
    shape = struct.unpack(f">{n_dims}I", raw[4 : 4 + 4 * n_dims])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * n_dims)
    return data.reshape(shape)


def file_digest(path: Path) -> str:
    """First 16 hex digits of the file's SHA-256 (part of the cache key)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def split_indices(n_pool: int, n_val: int, n_test: int) -> dict[str, np.ndarray]:
    """File indices of each split: prefixes of fixed permutations (pool and val are disjoint)."""
    rng = np.random.default_rng(_SPLIT_SEED)
    train_order = rng.permutation(60_000)
    test_order = rng.permutation(10_000)
    if n_pool + n_val > 60_000 or n_test > 10_000:
        raise ValueError("Fashion-MNIST has 60000 training and 10000 test images")
    # val comes from the end of the permutation so growing the pool never eats into it
    return {
        "pool": train_order[:n_pool],
        "val": train_order[60_000 - n_val :] if n_val else train_order[:0],
        "test": test_order[:n_test],
    }


class EmbeddingCache:
    """Append-only on-disk cache of one backbone's vectors for one idx image file."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._vectors: dict[int, np.ndarray] = {}
        if directory.is_dir():
            for chunk in sorted(directory.glob("chunk-*.npz")):
                with np.load(chunk) as stored:
                    for index, vector in zip(stored["indices"], stored["vectors"], strict=True):
                        self._vectors[int(index)] = vector

    def missing(self, indices: np.ndarray) -> np.ndarray:
        """Indices without a cached vector, in the order given."""
        return np.asarray([i for i in indices if int(i) not in self._vectors], dtype=np.int64)

    def add(self, indices: np.ndarray, vectors: np.ndarray) -> None:
        """Store vectors in a new chunk file (written atomically) and in memory."""
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"chunk-{time.time_ns()}-{int(indices[0])}.npz"
        temporary = self.directory / f".{name}.tmp.npz"
        np.savez(temporary, indices=indices.astype(np.int64), vectors=vectors.astype(np.float32))
        temporary.rename(self.directory / name)
        for index, vector in zip(indices, vectors, strict=True):
            self._vectors[int(index)] = vector

    def get(self, indices: np.ndarray) -> np.ndarray:
        """Cached vectors for ``indices`` (all must be present), shape ``(n, dim)``."""
        return np.stack([self._vectors[int(i)] for i in indices]).astype(np.float32)


def embed_images(
    file_key: str,
    indices: np.ndarray,
    *,
    spec: str = BACKBONE_SPEC,
    threads: int = 2,
    cache_dir: Path = CACHE_DIR,
    verbose: bool = True,
    precision: str = "fp32",
) -> np.ndarray:
    """Vectors of the given images of one idx file, embedding (and caching) those not cached.

    Args:
        file_key: ``"train"`` or ``"t10k"``.
        indices: image positions in that file.
        spec: backbone spec for :func:`embeddings.load_backbone`.
        threads: torch intra-op threads while embedding (the machine's cores are shared).
        cache_dir: root of the cache.
        verbose: print progress to stderr.
        precision: the image tower's precision (see :mod:`embeddings.precision`), or an ONNX
            Runtime one (``onnx-fp32``, ``onnx-int8``); other than fp32, the vectors are cached
            apart, under ``<spec>@<precision>``.
    """
    image_path = DATA_DIR / _FILES[file_key][0]
    key = spec if precision == "fp32" else f"{spec}@{precision}"
    cache = EmbeddingCache(cache_dir / f"{key}-{file_digest(image_path)}")
    todo = cache.missing(indices)
    if len(todo):
        _embed_missing(cache, read_idx(image_path), todo, spec, threads, verbose, precision)
    return cache.get(indices)


def _embed_missing(
    cache: EmbeddingCache,
    images: np.ndarray,
    todo: np.ndarray,
    spec: str,
    threads: int,
    verbose: bool,
    precision: str = "fp32",
) -> None:
    import torch
    from PIL import Image

    from embeddings import load_backbone, to_rgb
    from embeddings.tower_options import TowerOptions, parse_label

    torch.set_num_threads(threads)
    served = parse_label(precision)
    if served is None:
        raise ValueError(f"not a precision to embed in: {precision!r}")
    runtime, precision = served
    backbone = load_backbone(
        spec, device="cpu", tower=TowerOptions(precision, probe_batch=32, runtime=runtime)
    )
    started = time.perf_counter()
    for start in range(0, len(todo), _CHUNK):
        chunk = todo[start : start + _CHUNK]
        pixels = [backbone.preprocess(to_rgb(Image.fromarray(images[i], mode="L"))) for i in chunk]
        vectors = np.concatenate(
            [backbone.encode(torch.stack(pixels[j : j + 32])) for j in range(0, len(pixels), 32)]
        )
        cache.add(chunk, vectors)
        if verbose:
            done = start + len(chunk)
            rate = done / (time.perf_counter() - started)
            print(
                f"embedded {done}/{len(todo)} ({rate:.1f} img/s, "
                f"~{(len(todo) - done) / rate / 60:.1f} min left)",
                file=sys.stderr,
                flush=True,
            )


def load_benchmark_data(
    n_pool: int, n_val: int, n_test: int, *, threads: int = 2, verbose: bool = True
) -> BenchmarkData:
    """Embedded pool / validation / test splits (embedding whatever is not cached yet).

    Args:
        n_pool: stream size (from the training file).
        n_val: validation size (from the training file, disjoint from the pool).
        n_test: test size (from the t10k file).
        threads: torch threads for any embedding needed.
        verbose: print embedding progress.
    """
    chosen = split_indices(n_pool, n_val, n_test)
    train_labels = read_idx(DATA_DIR / _FILES["train"][1])
    test_labels = read_idx(DATA_DIR / _FILES["t10k"][1])
    names = np.asarray(CLASS_NAMES)
    # one call per file, so a single model load serves pool and val
    train_needed = np.concatenate([chosen["pool"], chosen["val"]])
    train_vectors = embed_images("train", train_needed, threads=threads, verbose=verbose)
    test_vectors = embed_images("t10k", chosen["test"], threads=threads, verbose=verbose)
    return BenchmarkData(
        pool=Split(train_vectors[:n_pool], names[train_labels[chosen["pool"]]], chosen["pool"]),
        val=Split(train_vectors[n_pool:], names[train_labels[chosen["val"]]], chosen["val"]),
        test=Split(test_vectors, names[test_labels[chosen["test"]]], chosen["test"]),
        backbone=BACKBONE_SPEC,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", type=int, default=3000)
    parser.add_argument("--val", type=int, default=1000)
    parser.add_argument("--test", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    data = load_benchmark_data(args.pool, args.val, args.test, threads=args.threads)
    print(data.describe())


if __name__ == "__main__":
    main()

"""Similarity search: a function's labelled samples nearest to an image or to a stored sample.

The search reads the labelled samples' stored embeddings from the database, in chunks, and ranks
them exactly with numpy, rather than asking the capture index. That index belongs to this process:
it lacks samples other replicas labelled since its last rebuild, may still hold samples they
unlabelled or deleted, mixes in pending review items, and keys entries by a hash of the id that
cannot be turned back into a sample id without reading the function's samples anyway. The
database is what every replica shares, so a search answers the same wherever it runs. The cost is
one pass over the function's labelled vectors per query (memory stays at one chunk).
"""

from __future__ import annotations

import numpy as np
from sqlmodel import col, select

from api.runtime import Runtime
from api.schemas import SearchHit
from api.services.functions import get_function
from api.services.samples import embed_image, get_sample
from store import Label, Sample, session_scope, vector_from_bytes

_CHUNK_ROWS = 4096  # labelled vectors held in memory at once while ranking


def search_image(rt: Runtime, function_id: str, data: bytes, *, count: int) -> list[SearchHit]:
    """The ``count`` labelled samples most similar to the image ``data``, most similar first."""
    with session_scope(rt.engine) as session:
        function = get_function(session, function_id)
    vector = embed_image(rt, function, data)
    return nearest_labelled(rt, function_id, vector, count=count)


def similar_samples(
    rt: Runtime, function_id: str, sample_id: str, *, count: int
) -> list[SearchHit]:
    """The ``count`` labelled samples most similar to a stored sample (never the sample itself)."""
    with session_scope(rt.engine) as session:
        sample = get_sample(session, function_id, sample_id)
        vector = vector_from_bytes(sample.embedding)
    return nearest_labelled(rt, function_id, vector, count=count, exclude=sample_id)


def nearest_labelled(
    rt: Runtime,
    function_id: str,
    vector: np.ndarray,
    *,
    count: int,
    exclude: str | None = None,
) -> list[SearchHit]:
    """Exact cosine top-``count`` over the function's labelled samples, read in one statement.

    Ties go to the smaller sample id, so equal queries give equal answers.
    """
    query = _unit(np.asarray(vector, dtype=np.float32).reshape(1, -1))[0]
    best_ids = np.empty(0, dtype=object)
    best_labels = np.empty(0, dtype=object)
    best_similarities = np.empty(0, dtype=np.float32)
    # one statement (a join, not a second query for label names), so one snapshot on any backend
    statement = (
        select(Sample.id, Label.name, Sample.embedding)
        .join(Label, col(Sample.label_id) == Label.id)
        .where(Sample.function_id == function_id)
    )
    if exclude is not None:
        statement = statement.where(Sample.id != exclude)
    with session_scope(rt.engine) as session:
        rows = session.exec(statement.execution_options(yield_per=_CHUNK_ROWS))
        for chunk in rows.partitions(_CHUNK_ROWS):
            ids, names, embeddings = zip(*chunk, strict=True)
            matrix = np.frombuffer(b"".join(embeddings), dtype=np.float32)
            similarities = _unit(matrix.reshape(len(ids), -1)) @ query
            best_ids = np.concatenate([best_ids, np.asarray(ids, dtype=object)])
            best_labels = np.concatenate([best_labels, np.asarray(names, dtype=object)])
            best_similarities = np.concatenate([best_similarities, similarities])
            keep = np.lexsort((best_ids.astype(str), -best_similarities))[:count]
            best_ids, best_labels = best_ids[keep], best_labels[keep]
            best_similarities = best_similarities[keep]
    return [
        SearchHit(
            sample_id=str(sample_id),
            label_name=str(label_name),
            similarity=float(np.clip(similarity, -1.0, 1.0)),
        )
        for sample_id, label_name, similarity in zip(
            best_ids, best_labels, best_similarities, strict=True
        )
    ]


def _unit(matrix: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (a zero row stays zero)."""
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms > 0, norms, 1.0)

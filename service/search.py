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

from collections.abc import Sequence

import numpy as np
from sqlmodel import col, select

import review_queue
from learner.zero_shot import unit_length_rows
from service.functions import get_function
from service.runtime import Runtime
from service.samples import embed_image, get_sample
from service.schemas import SearchHit
from service.serving import serving_snapshot
from store import Function, Label, Sample, session_scope, vector_from_bytes

_CHUNK_ROWS = 4096  # labelled vectors held in memory at once while ranking
# Weight of the deployed head's opinion in the ranking (search_scores): chosen on bench/search.py
# --seeds 0 1 2 among 0.05-1.0; docs/api.md reports other seeds.
MODEL_WEIGHT = 0.1


def search_image(rt: Runtime, function_id: str, data: bytes, *, count: int) -> list[SearchHit]:
    """The ``count`` labelled samples most similar to the image ``data``, most similar first."""
    with session_scope(rt.engine) as session:
        function = get_function(session, function_id)
    vector = embed_image(rt, function, data)
    return nearest_labelled(rt, function, vector, count=count)


def similar_samples(
    rt: Runtime, function_id: str, sample_id: str, *, count: int
) -> list[SearchHit]:
    """The ``count`` labelled samples most similar to a stored sample (never the sample itself)."""
    with session_scope(rt.engine) as session:
        function = get_function(session, function_id)
        sample = get_sample(session, function_id, sample_id)
        vector = vector_from_bytes(sample.embedding)
    return nearest_labelled(rt, function, vector, count=count, exclude=sample_id)


def similar_to_item(rt: Runtime, function_id: str, item_id: str, *, count: int) -> list[SearchHit]:
    """The ``count`` labelled samples most similar to a review item (never its own sample), so a
    reviewer sees what the function already holds that looks like it."""
    with session_scope(rt.engine) as session:
        function = get_function(session, function_id)
        item = review_queue.get_item(session=session, function_id=function_id, item_id=item_id)
        vector, own_sample = vector_from_bytes(item.embedding), item.sample_id
    return nearest_labelled(rt, function, vector, count=count, exclude=own_sample)


def nearest_labelled(
    rt: Runtime,
    function: Function,
    vector: np.ndarray,
    *,
    count: int,
    exclude: str | None = None,
) -> list[SearchHit]:
    """Top-``count`` labelled samples by :func:`search_scores`, read in one statement.

    Ties go to the smaller sample id, so equal queries give equal answers.
    """
    query = unit_length_rows(np.asarray(vector, dtype=np.float32).reshape(1, -1))[0]
    label_proba = _label_probabilities(rt, function, query)
    best_ids = np.empty(0, dtype=object)
    best_labels = np.empty(0, dtype=object)
    best_similarities = np.empty(0, dtype=np.float32)
    best_scores = np.empty(0, dtype=np.float64)
    # one statement (a join, not a second query for label names), so one snapshot on any backend
    statement = (
        select(Sample.id, Label.name, Sample.embedding)
        .join(Label, col(Sample.label_id) == Label.id)
        .where(Sample.function_id == function.id)
    )
    if exclude is not None:
        statement = statement.where(Sample.id != exclude)
    with session_scope(rt.engine) as session:
        rows = session.exec(statement.execution_options(yield_per=_CHUNK_ROWS))
        for chunk in rows.partitions(_CHUNK_ROWS):
            ids, names, embeddings = zip(*chunk, strict=True)
            matrix = np.frombuffer(b"".join(embeddings), dtype=np.float32)
            similarities = unit_length_rows(matrix.reshape(len(ids), -1)) @ query
            scores = search_scores(similarities, [label_proba.get(n, 0.0) for n in names])
            best_ids = np.concatenate([best_ids, np.asarray(ids, dtype=object)])
            best_labels = np.concatenate([best_labels, np.asarray(names, dtype=object)])
            best_similarities = np.concatenate([best_similarities, similarities])
            best_scores = np.concatenate([best_scores, scores])
            keep = np.lexsort((best_ids.astype(str), -best_scores))[:count]
            best_ids, best_labels = best_ids[keep], best_labels[keep]
            best_similarities, best_scores = best_similarities[keep], best_scores[keep]
    return [
        SearchHit(
            sample_id=str(sample_id),
            label_name=str(label_name),
            similarity=float(np.clip(similarity, -1.0, 1.0)),
            score=float(score),
        )
        for sample_id, label_name, similarity, score in zip(
            best_ids, best_labels, best_similarities, best_scores, strict=True
        )
    ]


def search_scores(similarities: np.ndarray, label_probability: Sequence[float]) -> np.ndarray:
    """Ranking score of each labelled sample: its cosine similarity to the query plus
    :data:`MODEL_WEIGHT` times the probability the deployed head gives the query for the sample's
    label (0 before any model, or for a label the model does not know).

    Nearest neighbours alone land in the wrong class more often than the head errs (bench/search.py
    measured 80% vs 84% on Fashion-MNIST); the small model term breaks near-ties toward samples of
    the class the query most likely is, while similarity still orders samples within a class.
    """
    return np.asarray(similarities, dtype=np.float64) + MODEL_WEIGHT * np.asarray(
        label_probability, dtype=np.float64
    )


def _label_probabilities(rt: Runtime, function: Function, query: np.ndarray) -> dict[str, float]:
    """The serving model's probability of each of its labels for ``query`` (empty: no model)."""
    model = serving_snapshot(rt, function.id).model
    if model is None:
        return {}
    proba = np.asarray(model.head.predict_proba(query[None, :])[0], dtype=np.float64)
    return dict(zip(model.labels, proba.tolist(), strict=True))

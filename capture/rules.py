"""Capture rules: "more like these" - named rules that capture inputs close to their examples.

A rule is ``{name, examples: [sampleId or itemId, ...], similarity?}`` or, on a backbone with a
text tower, ``{name, text: "a photo taken at night", similarity?}``. The service resolves the
examples (or the text) to vectors when the policy is set and stores them with the rule, so
deleting an example later does not change or break the rule. An input whose *mean* cosine
similarity to the rule's example vectors (for a text rule: its similarity to the text vector)
reaches ``similarity`` is captured with reason ``rule:<name>``; budgets and duplicate
suppression apply as to any capture.

The mean similarity is the dot product with the plain (unnormalised) mean of the examples, i.e.
the similarity to their normalised centroid times the centroid's length. That length is what
makes it beat the centroid alone: tight example sets (a class far from the others, such as
trousers) pass at a lower centroid similarity, spread-out ones (shirts, coats, which sit among
look-alike classes) need a higher one. Chosen on B5's rules row (``python -m bench.cold_start
--tune-rules``, validation split, 5 examples of one Fashion-MNIST class, EfficientNet-Lite0
vectors, traffic of all ten, 5 seeds x 10 classes), at matched precision it roughly doubles the
recall of the centroid: mean similarity 0.72 gave precision 0.93 and recall 0.20, where the
centroid at 0.85 gave 0.91 and 0.12. At precision >= 0.9 the nearest example reached recall 0.11,
the mean of the top 2 examples 0.15, of the top 3 0.21; a threshold calibrated from the examples'
leave-one-out spread, or a margin over a traffic reservoir's nearest neighbours, reached
precision 0.84 at most at the offsets tried (3 seeds). The default, 0.71, is the highest-recall
point at precision >= 0.9 on the validation split (0.92, 0.24): it favours precision, since a
rule's captures should be what its author asked for. docs/performance.md has the
figures on the test split.
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from capture.errors import InvalidPolicy

# Similarity a rule needs when it does not set one (chosen on B5, see the module notes).
DEFAULT_RULE_SIMILARITY = 0.71
MAX_RULES = 20
MAX_EXAMPLES = 100
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_KEYS = {"name", "examples", "text", "similarity", "vectors"}


@dataclass(frozen=True)
class CaptureRule:
    # Shown in the capture reason "rule:<name>"; letters, digits, "_", "." and "-".
    name: str
    # Sample or review item ids whose images the rule looks for (or empty with ``text``).
    examples: tuple[str, ...] = ()
    # A description to look for instead of examples (backbones with a text tower only).
    text: str | None = None
    # Mean cosine similarity to the examples an input needs; None: DEFAULT_RULE_SIMILARITY.
    similarity: float | None = None
    # The resolved vectors, float32 rows as base64; set by the service when the policy is set.
    vectors: str | None = None

    @property
    def threshold(self) -> float:
        return DEFAULT_RULE_SIMILARITY if self.similarity is None else self.similarity

    def public_dict(self) -> dict[str, Any]:
        """The rule as its author wrote it (no vectors), plus the similarity in force."""
        out: dict[str, Any] = {"name": self.name, "similarity": self.threshold}
        if self.text is not None:
            out["text"] = self.text
        else:
            out["examples"] = list(self.examples)
        return out

    def with_vectors(self, vectors: np.ndarray) -> CaptureRule:
        """This rule holding ``vectors`` (``(n, dim)``) as its resolved examples."""
        rows = np.ascontiguousarray(vectors, dtype=np.float32)
        if rows.ndim != 2 or not len(rows):
            raise InvalidPolicy(f"capture rule {self.name!r} resolved to no vectors")
        encoded = base64.b64encode(rows.tobytes()).decode("ascii")
        return CaptureRule(
            self.name, self.examples, self.text, self.similarity, f"{len(rows)}:{encoded}"
        )

    def matrix(self) -> np.ndarray | None:
        """The resolved vectors, ``(n, dim)``; None before they are resolved."""
        if not self.vectors:
            return None
        count, _, encoded = self.vectors.partition(":")
        flat = np.frombuffer(base64.b64decode(encoded), dtype=np.float32)
        return flat.reshape(int(count), -1)


def parse_rules(value: Any) -> tuple[CaptureRule, ...]:
    """Validate a policy's ``rules`` (a list of rule objects).

    Raises:
        InvalidPolicy: not a list, an unknown key, a bad name, a duplicate name, neither or both
            of ``examples`` and ``text``, empty examples, or a similarity outside (0, 1].
    """
    if isinstance(value, CaptureRule):
        value = [value]
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise InvalidPolicy(f"capture policy rules must be a list of rules, got {value!r}")
    if len(value) > MAX_RULES:
        raise InvalidPolicy(f"capture policy rules: at most {MAX_RULES} rules, got {len(value)}")
    rules = tuple(_parse_rule(entry) for entry in value)
    names = [rule.name for rule in rules]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise InvalidPolicy(f"capture rule names must be unique; repeated: {', '.join(duplicates)}")
    return rules


def _parse_rule(entry: Any) -> CaptureRule:
    if isinstance(entry, CaptureRule):
        return entry
    if not isinstance(entry, Mapping):
        raise InvalidPolicy(f"a capture rule must be an object, got {entry!r}")
    unknown = sorted(set(map(str, entry)) - _KEYS)
    if unknown:
        raise InvalidPolicy(
            f"unknown capture rule key(s): {', '.join(unknown)}; known: name, examples, text, "
            "similarity"
        )
    name = entry.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidPolicy(
            f"capture rule name must be 1-64 letters, digits, '_', '.' or '-', got {name!r}"
        )
    examples, text = entry.get("examples"), entry.get("text")
    if text is not None and examples == []:  # the stored form of a text rule
        examples = None
    if (examples is None) == (text is None):
        raise InvalidPolicy(f"capture rule {name!r} needs either examples or text (not both)")
    if text is not None and (not isinstance(text, str) or not text.strip() or len(text) > 500):
        raise InvalidPolicy(f"capture rule {name!r}: text must be 1-500 characters")
    if examples is not None:
        if not isinstance(examples, Sequence) or isinstance(examples, str):
            raise InvalidPolicy(f"capture rule {name!r}: examples must be a list of ids")
        if not examples:
            raise InvalidPolicy(f"capture rule {name!r}: examples must not be empty")
        if len(examples) > MAX_EXAMPLES:
            raise InvalidPolicy(f"capture rule {name!r}: at most {MAX_EXAMPLES} examples")
        if not all(isinstance(e, str) and 0 < len(e) <= 100 for e in examples):
            raise InvalidPolicy(f"capture rule {name!r}: examples must be sample or item ids")
    similarity = entry.get("similarity")
    if similarity is not None:
        valid = isinstance(similarity, int | float) and not isinstance(similarity, bool)
        if not valid or not math.isfinite(similarity) or not 0.0 < similarity <= 1.0:
            raise InvalidPolicy(
                f"capture rule {name!r}: similarity must be within (0, 1], got {similarity!r}"
            )
        similarity = float(similarity)
    vectors = entry.get("vectors")
    if vectors is not None and not isinstance(vectors, str):
        raise InvalidPolicy(f"capture rule {name!r}: vectors are set by the service")
    return CaptureRule(
        name=name,
        examples=tuple(dict.fromkeys(examples)) if examples is not None else (),
        text=text.strip() if text is not None else None,
        similarity=similarity,
        vectors=vectors,
    )


class RuleMatcher:
    """Every resolved rule's mean example vector, stacked for one matrix product per input."""

    def __init__(self, rules: Sequence[CaptureRule]) -> None:
        self._names: list[str] = []
        self._thresholds: list[float] = []
        means = []
        for rule in rules:
            vectors = rule.matrix()
            if vectors is None:
                continue
            means.append(rule_mean(vectors))
            self._names.append(rule.name)
            self._thresholds.append(rule.threshold)
        self._means = np.stack(means) if means else np.zeros((0, 0), np.float32)
        self._bars = np.asarray(self._thresholds, dtype=np.float32)

    def similarities(self, vector: np.ndarray) -> np.ndarray:
        """Mean cosine similarity of ``vector`` (a unit row) to each rule's examples."""
        point = np.asarray(vector, dtype=np.float32).reshape(-1)
        if not len(self._names) or self._means.shape[1] != point.shape[0]:
            return np.zeros(0, dtype=np.float32)
        return self._means @ point

    def match(self, vector: np.ndarray) -> str | None:
        """The first rule (in policy order) ``vector`` passes, or None."""
        similarities = self.similarities(vector)
        if len(similarities) != len(self._bars):  # no rules, or vectors of another backbone
            return None
        passed = np.flatnonzero(similarities >= self._bars)
        return self._names[int(passed[0])] if len(passed) else None


def rule_mean(vectors: np.ndarray) -> np.ndarray:
    """The plain mean of unit rows: its dot product with a unit input is the input's mean cosine
    similarity to them (shorter the more the rows disagree, so spread-out examples ask more)."""
    return np.asarray(vectors, dtype=np.float32).mean(axis=0)

"""The label history rows that labelling writes, and the rules for the names they record."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest
from sqlmodel import Session, col, select

from store import (
    MAX_REVIEWER_NAME,
    Function,
    InvalidReviewerName,
    Label,
    LabelChange,
    LabelEvent,
    Sample,
    label_sample,
    make_engine,
    normalize_reviewer_name,
    record_deletion,
    unlabel_sample,
)


def test_reviewer_names_follow_the_label_name_rules() -> None:
    decomposed = unicodedata.normalize("NFD", " Zoë ")
    assert normalize_reviewer_name(decomposed) == unicodedata.normalize("NFC", "Zoë")
    assert normalize_reviewer_name("Ana") != normalize_reviewer_name("ana")  # case kept
    assert normalize_reviewer_name("x" * MAX_REVIEWER_NAME) == "x" * MAX_REVIEWER_NAME


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("", "must not be empty"),
        (" \t", "must not be empty"),
        ("x" * (MAX_REVIEWER_NAME + 1), "at most 200"),
        ("ana\nbo", "U+000A"),
        ("\u202eevil", "U+202E"),
        ("zero\u200bwidth", "U+200B"),
    ],
)
def test_bad_reviewer_names_are_refused(name: str, problem: str) -> None:
    with pytest.raises(InvalidReviewerName, match=re.escape(problem)):
        normalize_reviewer_name(name)


def test_a_change_names_a_known_path() -> None:
    with pytest.raises(ValueError, match="unknown label change path"):
        LabelChange(("ana",), "upload")  # type: ignore[arg-type]


def test_each_change_appends_an_event_and_deletion_closes_the_history(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    ana, bo = LabelChange(("ana",), "sample_api"), LabelChange(("ana", "bo"), "consensus", "item_1")
    with Session(engine) as session:
        session.add(Function(id="function_1", name="f", backbone="tiny-clip"))
        red = Label(function_id="function_1", name="red")
        blue = Label(function_id="function_1", name="blue")
        sample = Sample(function_id="function_1", blob="b", embedding=b"\0")
        session.add_all([red, blue, sample])
        session.flush()
        assert label_sample(session, sample, red, ana)
        assert not label_sample(session, sample, red, bo)  # unchanged: no event
        assert label_sample(session, sample, blue, bo)
        assert unlabel_sample(session, sample, ana)
        assert not unlabel_sample(session, sample, ana)
        assert not record_deletion(session, sample, ana)  # unlabelled: nothing to close
        assert label_sample(session, sample, red, ana)
        counter = session.get(Function, "function_1").annotation_counter  # type: ignore[union-attr]
        assert record_deletion(session, sample, bo)
        assert sample.label_id == red.id  # the caller deletes the row; nothing else changes
        assert session.get(Function, "function_1").annotation_counter == counter  # type: ignore[union-attr]
        session.delete(sample)
        session.commit()
        events = session.exec(select(LabelEvent).order_by(col(LabelEvent.id))).all()
    assert [
        (e.sample_id, e.label_before, e.label_after, e.actors, e.via, e.review_item_id)
        for e in events
    ] == [
        (sample.id, None, "red", ["ana"], "sample_api", None),
        (sample.id, "red", "blue", ["ana", "bo"], "consensus", "item_1"),
        (sample.id, "blue", None, ["ana"], "sample_api", None),
        (sample.id, None, "red", ["ana"], "sample_api", None),
        (sample.id, "red", None, ["ana", "bo"], "consensus", "item_1"),
    ]
    assert [e.at for e in events] == sorted(e.at for e in events)

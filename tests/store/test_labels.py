"""Label names: one normal form (NFC), no invisible or line-breaking characters."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest
from sqlmodel import Session, select

from store import (
    EmptyLabelName,
    Function,
    InvalidLabelName,
    Label,
    find_label,
    get_or_create_label,
    make_engine,
    normalize_label_name,
)

NFC = unicodedata.normalize("NFC", "café")
NFD = unicodedata.normalize("NFD", "café")


def test_composed_and_decomposed_spellings_are_one_name() -> None:
    assert NFC != NFD
    assert normalize_label_name(NFD) == normalize_label_name(f"  {NFC} ") == NFC


def test_names_stay_case_sensitive() -> None:
    assert normalize_label_name("Cat") != normalize_label_name("cat")


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("a\nb", "U+000A"),
        ("\x1b[31mred", "U+001B"),
        ("\u202eevil", "U+202E"),
        ("zero\u200bwidth", "U+200B"),
        ("tab\there", "U+0009"),
        ("line\u2028break", "U+2028"),
        ("\ud800x", "U+D800"),
    ],
)
def test_invisible_and_line_breaking_characters_are_refused(name: str, problem: str) -> None:
    with pytest.raises(InvalidLabelName, match=re.escape(problem)):
        normalize_label_name(name)


@pytest.mark.parametrize(
    "name", ["\U0001f469\u200d\U0001f4bb", "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"]
)
def test_joiners_in_emoji_and_scripts_that_need_them_are_kept(name: str) -> None:
    assert normalize_label_name(name) == name


@pytest.mark.parametrize("name", ["", "   ", "\n"])
def test_empty_names_are_refused(name: str) -> None:
    with pytest.raises(EmptyLabelName):
        normalize_label_name(name)


def test_lookups_and_creates_use_the_normal_form(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    with Session(engine) as session:
        session.add(Function(id="function_1", name="f", backbone="tiny-clip"))
        created = get_or_create_label(session, "function_1", NFD)
        session.commit()
        assert created.name == NFC
        found = find_label(session, "function_1", NFD)
        assert found is not None and found.id == created.id
        assert get_or_create_label(session, "function_1", NFC).id == created.id
        assert len(session.exec(select(Label)).all()) == 1
        with pytest.raises(InvalidLabelName):
            find_label(session, "function_1", "caf\u200be")

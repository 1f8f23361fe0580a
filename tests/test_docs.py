"""Every relative link in README.md and docs/*.md resolves: to an existing file and, for a
``page.md#anchor`` or ``#anchor`` link, to a heading of that page (GitHub's anchors)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6} (.+)$")
FENCE = re.compile(r"^\s*(```|~~~)")
EXTERNAL = ("http://", "https://", "mailto:")


def pages(repo: Path = REPO) -> list[Path]:
    return [repo / "README.md", *sorted((repo / "docs").glob("*.md"))]


def prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks (a ``# comment`` in a shell block is no heading)."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def github_anchor(title: str) -> str:
    """The id GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    found: set[str] = set()
    seen: dict[str, int] = {}
    for line in prose_lines(page.read_text()):
        if match := HEADING.match(line):
            anchor = github_anchor(match.group(1))
            count = seen.get(anchor, 0)
            seen[anchor] = count + 1
            found.add(anchor if count == 0 else f"{anchor}-{count}")
    return found


def broken_links(page: Path) -> list[str]:
    """The relative links of ``page`` that name a missing file or heading."""
    broken = []
    for line in prose_lines(page.read_text()):
        for target in LINK.findall(line):
            if target.startswith(EXTERNAL):
                continue
            path, _, anchor = target.partition("#")
            resolved = (page.parent / path).resolve() if path else page
            if not resolved.exists():
                broken.append(f"{target}: no such file")
            elif anchor and (resolved.suffix != ".md" or anchor not in anchors(resolved)):
                broken.append(f"{target}: no such heading")
    return broken


def test_the_readme_and_the_docs_pages_exist() -> None:
    names = [page.name for page in pages()]
    assert names[0] == "README.md" and all(page.exists() for page in pages())


@pytest.mark.parametrize("page", pages(), ids=lambda page: page.name)
def test_every_relative_link_resolves(page: Path) -> None:
    assert broken_links(page) == []


def test_broken_links_finds_missing_files_and_headings(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "other.md").write_text("# Other page\n\n## Zero-shot heads: version 0\n")
    page = tmp_path / "docs" / "page.md"
    page.write_text(
        "# Page\n\n"
        "[ok](other.md#zero-shot-heads-version-0) [ok](#page) [ok](other.md) "
        "[ok](https://example.com/x.md#nowhere) ![ok](../docs/other.md)\n"
        "[gone](missing.md) [bad anchor](other.md#other) [bad here](#nowhere)\n"
        "![gone](../pictures/missing.png)\n"
        "```sh\n# not a heading: [in code](missing-too.md)\n```\n"
    )
    assert broken_links(page) == [
        "missing.md: no such file",
        "other.md#other: no such heading",
        "#nowhere: no such heading",
        "../pictures/missing.png: no such file",
    ]
    assert anchors(page) == {"page"}  # the fenced comment is no heading


def test_the_site_and_the_index_list_every_page() -> None:
    nav = re.findall(r"^\s+- [^:]+: (\S+\.md)$", (REPO / "mkdocs.yml").read_text(), re.MULTILINE)
    docs = sorted(page.name for page in pages()[1:])
    assert sorted(nav) == docs and nav[0] == "index.md"
    index = (REPO / "docs" / "index.md").read_text()
    assert sorted(set(LINK.findall(index))) == [name for name in docs if name != "index.md"]

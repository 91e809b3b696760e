"""The docs say what the code says, the README stays short, and every link in them leads somewhere."""

import re
from pathlib import Path

import pytest

from tests import gendocs

ROOT = Path(__file__).parents[2]
DOCS = [ROOT / "README.md", ROOT / "launchd" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# [text](target): the target up to a space or the closing parenthesis; no scheme means relative.
LINK = re.compile(r"\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.DOTALL | re.MULTILINE)


def anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation but hyphens and underscores dropped,
    spaces made hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    return {anchor(m) for m in re.findall(r"^#+ (.+)$", text, re.MULTILINE)}


def relative_links(path: Path) -> list[str]:
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    return [target for target in LINK.findall(text) if not re.match(r"[a-z]+:", target)]


def test_generated_tables_are_current():
    texts = [doc.read_text(encoding="utf-8") for doc in gendocs.DOCS]
    assert sum(text.count("<!-- generated:") for text in texts) == len(gendocs.GENERATORS)
    for text in texts:
        assert gendocs.rendered(text) == text, "a description the docs show changed: run `make docs`"


def test_every_test_file_says_what_it_tests():
    # Its docstring's first paragraph is its row in docs/testing.md.
    said = gendocs.test_files().splitlines()[2:]
    assert said and not [row for row in said if row.endswith("|  |")]


def test_readme_is_short():
    assert len((ROOT / "README.md").read_text(encoding="utf-8").splitlines()) <= 300


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(doc: Path):
    broken = []
    for target in relative_links(doc):
        file, _, fragment = target.partition("#")
        resolved = (doc.parent / file).resolve() if file else doc
        if not resolved.exists():
            broken.append(f"{target}: no file {resolved.relative_to(ROOT)}")
        elif fragment and (resolved.suffix != ".md" or fragment not in anchors(resolved)):
            broken.append(f"{target}: no heading #{fragment}")
    assert not broken, "\n".join(broken)


def test_anchor_follows_github():
    assert anchor("Claude Code on DeepSeek (V4, as of 2026-11)") == "claude-code-on-deepseek-v4-as-of-2026-11"
    assert anchor("The `stabilizer` command") == "the-stabilizer-command"

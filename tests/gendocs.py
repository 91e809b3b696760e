"""The tables of docs/configuration.md and docs/testing.md, written from the code that defines what they describe.

Each policy key is described once, in its pydantic field (addons/config/policy.py), and each addon
option once, in its `loader.add_option` help; mitmproxy writes its own options page from code the
same way. Each test file says what it tests once, in its docstring's first paragraph. `make docs`
(`python -m tests.gendocs`) rewrites every region of the docs between `<!-- generated: NAME -->`
and `<!-- end -->`; tests/addons/test_docs.py fails while a doc differs.
"""

import ast
import importlib
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mitmproxy.addons.view import View
from mitmproxy.test import taddons
from pydantic import BaseModel

from addons.config.policy import ModelPolicy

TESTS = Path(__file__).parent
CONFIGURATION = TESTS.parent / "docs" / "configuration.md"
TESTING = TESTS.parent / "docs" / "testing.md"
DOCS = (CONFIGURATION, TESTING)
# The tiers in the order a change meets them (docs/testing.md), then the benchmark's own tests.
TEST_FOLDERS = ("pure", "addons", "stack", "e2e", "bench")
REGION = re.compile(r"(<!-- generated: (?P<name>[a-z ]+) -->\n)(.*?)(<!-- end -->)", re.DOTALL)


def _value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, frozenset):
        return ", ".join(sorted(value))
    if isinstance(value, BaseModel):
        return "the section's defaults"
    if value == "":
        return "(empty)"
    return str(value) if not isinstance(value, dict) else str(value or "{}")


def _row(*cells: str) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|").replace("<", "&lt;") for cell in cells) + " |"


def policy_keys() -> str:
    """A row per key of a model's entry, then one per key of its `thinking` section."""
    rows = [_row("key", "default", "expected, and what it does"), _row("---", "---", "---")]

    def add(model: type[BaseModel], prefix: str) -> None:
        for name, field in model.model_fields.items():
            rows.append(_row(f"`{prefix}{name}`", _value(field.default), field.description or ""))

    add(ModelPolicy, "")
    thinking = ModelPolicy.model_fields["thinking"].default
    add(type(thinking), "thinking.")
    return "\n".join(rows) + "\n"


def addon_options() -> str:
    """A row per option the bundle's addons declare, loaded as mitmweb loads them (all addons)."""
    with taddons.context(View()) as tctx:
        entry = importlib.reload(importlib.import_module("addons.stabilizer_addons"))
        tctx.master.addons.add(*entry.addons)
        try:
            options = [o for name, o in sorted(tctx.options._options.items()) if name.startswith("stabilizer_")]
        finally:
            for addon in entry.addons:
                if done := getattr(addon, "done", None):
                    done()
    rows = [_row("option", "type", "default", "meaning"), _row("---", "---", "---", "---")]
    for option in options:
        rows.append(_row(f"`{option.name}`", option.typespec.__name__, _value(option.default), option.help))
    return "\n".join(rows) + "\n"


def test_files() -> str:
    """A row per test file, tier by tier: what its docstring's first paragraph says it tests."""
    rows = [_row("file", "what it tests"), _row("---", "---")]
    for folder in TEST_FOLDERS:
        for path in sorted((TESTS / folder).glob("test_*.py")):
            docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
            first = " ".join(docstring.split("\n\n")[0].split())
            rows.append(_row(f"`{folder}/{path.name}`", first))
    return "\n".join(rows) + "\n"


GENERATORS: dict[str, Callable[[], str]] = {
    "policy keys": policy_keys,
    "addon options": addon_options,
    "test files": test_files,
}


def rendered(text: str) -> str:
    """`text` with every generated region written anew."""

    def fill(match: re.Match) -> str:
        return match.group(1) + GENERATORS[match.group("name")]() + match.group(4)

    return REGION.sub(fill, text)


def main() -> None:
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        if (new := rendered(text)) != text:
            doc.write_text(new, encoding="utf-8")
            print(f"rewrote {doc}")


if __name__ == "__main__":
    main()

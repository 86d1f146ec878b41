"""The config reference in README.md and docs/engine.md is the table generated from the schema, not a stale copy."""

from pathlib import Path

import pytest

from shared.config_docs import reference_markdown

ROOT = Path(__file__).resolve().parents[2]
START, END = "<!-- config-reference:start -->", "<!-- config-reference:end -->"


@pytest.mark.parametrize("doc", ["README.md", "docs/engine.md"])
def test_config_reference_is_current(doc: str) -> None:
    text = (ROOT / doc).read_text(encoding="utf-8")
    block = text.split(START, 1)[1].split(END, 1)[0].strip()
    assert block == reference_markdown().strip(), f"regenerate with: python scripts/config_reference.py --write {doc}"

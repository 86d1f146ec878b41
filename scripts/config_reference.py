"""Print the config reference table, or write it into a Markdown file between the config-reference markers.

The table itself is ``shared.config_docs.reference_markdown()``, walked from ``shared/config.py``, so the docs
cannot drift from the schema.

    python scripts/config_reference.py                          # print the markdown table
    python scripts/config_reference.py --write docs/engine.md   # replace the block between the markers
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from shared.config_docs import reference_markdown  # noqa: E402

START, END = "<!-- config-reference:start -->", "<!-- config-reference:end -->"


def write_block(path: str, text: str) -> None:
    with open(path, encoding="utf-8") as f:
        doc_text = f.read()
    if START not in doc_text or END not in doc_text:
        sys.exit(f"{path}: no {START} ... {END} block")
    head, rest = doc_text.split(START, 1)
    _, tail = rest.split(END, 1)
    with open(path, "w", encoding="utf-8") as f:
        f.write(f"{head}{START}\n{text}\n{END}{tail}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--write",
        metavar="MARKDOWN",
        action="append",
        default=[],
        help="replace the block between the config-reference markers (repeatable)",
    )
    args = p.parse_args()
    text = reference_markdown()
    if not args.write:
        print(text)
    for path in args.write:
        write_block(path, text)


if __name__ == "__main__":
    main()

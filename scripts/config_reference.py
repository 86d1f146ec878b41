"""Print (or write into docs/engine.md) the config reference table, generated from shared/config.py's dataclasses
and shared/config_docs.py's descriptions, so the docs cannot drift from the schema.

    python scripts/config_reference.py                 # print the markdown table
    python scripts/config_reference.py --write docs/engine.md   # replace the block between the markers
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import typing

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from shared import config as C  # noqa: E402
from shared.config_docs import doc  # noqa: E402

START, END = "<!-- config-reference:start -->", "<!-- config-reference:end -->"


def _type_name(tp: typing.Any) -> str:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Literal:
        return " \\| ".join(json.dumps(a) for a in args)
    if origin is typing.Union or (origin is not None and "UnionType" in str(origin)):
        names = [_type_name(a) for a in args if a is not type(None)]
        return " or ".join(names) + (" or null" if type(None) in args else "")
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"list of {_type_name(args[0])}"
        return "[" + ", ".join(_type_name(a) for a in args) + "]"
    if tp in (C.Range, C.IntRange):
        return tp.__name__
    if dataclasses.is_dataclass(tp):
        return "object"
    return getattr(tp, "__name__", str(tp))


def _default(value: typing.Any) -> str:
    if dataclasses.is_dataclass(value):
        if isinstance(value, (C.Range, C.IntRange)):
            d = dataclasses.asdict(value)
            if d.get("distribution", "uniform") == "uniform":
                d.pop("distribution", None)
            return json.dumps(d)
        return ""
    return json.dumps(C._dump(value))


def _section_class(tp: typing.Any) -> type | None:
    for a in typing.get_args(tp) or (tp,):
        if dataclasses.is_dataclass(a) and a not in (C.Range, C.IntRange):
            return a
    return None


def rows(cls: type = C.DatasetConfig, prefix: str = "", instance: typing.Any = None) -> list[tuple[str, ...]]:
    """(path, type, default, unit, description) for every field; sections expand into their fields."""
    out = []
    hints = typing.get_type_hints(cls)
    instance = instance if instance is not None else cls()
    for f in dataclasses.fields(cls):
        path = f"{prefix}{f.name}"
        tp = hints[f.name]
        value = getattr(instance, f.name)
        text, unit = doc(path)
        sub = _section_class(tp)
        origin = typing.get_origin(tp)
        if sub is not None and origin is not tuple:
            default = "null (off)" if value is None else ""
            out.append((path, "section", default, unit, text))
            out.extend(rows(sub, path + ".", value if value is not None else sub()))
        elif sub is not None and origin is tuple:  # classes, mixture: lists of objects
            out.append((path, f"list of {sub.__name__}", "[]", unit, text))
            if sub is C.ClassSpec:
                proto = C.ClassSpec(name="", id=0)
            else:
                proto = sub()
            for g in dataclasses.fields(sub):
                if sub is C.MixtureComponent and g.name in C.RANDOMIZER_SECTIONS:
                    continue
                gp = f"{path}[].{g.name}"
                gt, gu = doc(f"{path}.{g.name}")
                out.append(
                    (gp, _type_name(typing.get_type_hints(sub)[g.name]), _default(getattr(proto, g.name)), gu, gt)
                )
            if sub is C.MixtureComponent:
                out.append((f"{path}[].<section>", "section or null", "null", "", "Any randomizer section, as above"))
        else:
            out.append((path, _type_name(tp), _default(value), unit, text))
    return out


def table() -> str:
    lines = ["| field | type | default | unit | meaning |", "|---|---|---|---|---|"]
    for path, tp, default, unit, text in rows():
        cell = default.replace("|", "\\|")
        lines.append(f"| `{path}` | {tp} | {'`' + cell + '`' if cell else ''} | {unit} | {text} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--write", metavar="MARKDOWN", help="replace the block between the config-reference markers")
    args = p.parse_args()
    text = table()
    if not args.write:
        print(text)
        return
    with open(args.write, encoding="utf-8") as f:
        doc_text = f.read()
    if START not in doc_text or END not in doc_text:
        sys.exit(f"{args.write}: no {START} ... {END} block")
    head, rest = doc_text.split(START, 1)
    _, tail = rest.split(END, 1)
    with open(args.write, "w", encoding="utf-8") as f:
        f.write(f"{head}{START}\n{text}\n{END}{tail}")


if __name__ == "__main__":
    main()

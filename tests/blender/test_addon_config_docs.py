"""The config reference (tooltips, README) covers every field of the schema, and nothing that is not in it."""

from __future__ import annotations

import dataclasses
import typing

from shared import config, config_docs


def _dataclasses_in(tp: typing.Any) -> list[type]:
    found, todo = [], [tp]
    while todo:
        t = todo.pop()
        if dataclasses.is_dataclass(t):
            found.append(t)
        todo.extend(a for a in typing.get_args(t) if a is not Ellipsis)
    return found


def _schema_paths(cls: type = config.DatasetConfig, prefix: str = "") -> list[tuple[str, str | None]]:
    """(path, value_type) for every field reachable from DatasetConfig; value_type marks a Range's parts."""
    out = []
    for f in dataclasses.fields(cls):
        path = prefix + f.name
        value_type = cls.__name__ if cls in (config.Range, config.IntRange) else None
        out.append((path, value_type))
        for sub in _dataclasses_in(typing.get_type_hints(cls)[f.name]):
            out.extend(_schema_paths(sub, path + "."))
    return out


def test_every_schema_field_has_a_description() -> None:
    paths = _schema_paths()
    assert len(paths) > 150  # the walk really descends into sections, ranges and mixture components
    missing = []
    for path, value_type in paths:
        try:
            text, unit = config_docs.doc(path, value_type)
        except KeyError:
            missing.append(path)
            continue
        assert text and text[0].isupper(), path
        assert unit in config_docs.UNIT_LABELS, (path, unit)
    assert not missing, f"fields with no entry in shared/config_docs.py: {missing}"


def test_every_description_names_a_real_field() -> None:
    used = set()
    for path, value_type in _schema_paths():
        key = config_docs._key(path)
        if value_type:
            used.add(f"{value_type}.{key.rpartition('.')[2]}")
        else:
            used.add(key)
    stale = sorted(set(config_docs.DOCS) - used)
    assert not stale, f"entries in shared/config_docs.py for fields that do not exist: {stale}"


def test_units_reach_the_tooltip() -> None:
    assert config_docs.tooltip("camera.distance") == "Distance from the point of interest (m)"
    assert config_docs.tooltip("mixture[2].camera.elevation_deg").endswith("(deg)")
    assert config_docs.doc("lights.energy_w.min", "Range") == ("Lowest value drawn", "W")
    assert config_docs.unit_label("camera.azimuth_deg") == "°"


def test_reference_table_lists_every_field() -> None:
    table = config_docs.reference_markdown()
    for path, value_type in _schema_paths():
        if value_type is None and not (path.startswith("mixture.") and path.count(".") > 1):
            assert f"| `{path}` |" in table, path
    assert '| `camera.distance` | `{"min": 4.0, "max": 8.0, "distribution": "uniform"}` | m |' in table
    assert "| `camera` | `null` (off) |" in table

"""Fuzz the config loader: random JSON-like values at random paths of valid configs. Only ConfigError may
escape, its message names a field, and every config that loads round-trips through to_dict/from_dict."""

from __future__ import annotations

import dataclasses
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.config import (
    ClassSpec,
    ConfigError,
    DatasetConfig,
    DistractorRandomizer,
    KeypointSpec,
    MixtureComponent,
    PoseRandomizer,
    WeatherRandomizer,
    apply_preset,
)


def _bases() -> list[dict]:
    corners = KeypointSpec(
        "local", ("a", "b", "c"), ((0.0, 0.0, 0.0), (1.0, 0.0, 0.0), (0.0, 1.0, 0.0)), (("a", "b"),), (("b", "c"),)
    )
    classes = (ClassSpec("chair", 0, objects=("Chair",)), ClassSpec("board", 1, keypoints=corners))
    full = apply_preset(DatasetConfig(classes=classes), "all")
    full = dataclasses.replace(
        full,
        pose=PoseRandomizer(surfaces=("Table",)),
        distractors=DistractorRandomizer(),
        weather=WeatherRandomizer(),
        mixture=(MixtureComponent(weight=2.0, name="close", classes=("chair",), post=full.post),),
    )
    return [DatasetConfig().to_dict(), full.to_dict()]


BASES = _bases()

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8)
    | st.sampled_from(["uniform", "normal", "loguniform", "shell", "CYCLES", "PNG", "targets", "rain"]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=8,
)


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, prefix + (i,))


def _mutate(data, path, action, value):
    if not path:
        return value if action == "replace" else data
    parent = data
    for key in path[:-1]:
        parent = parent[key]
    last = path[-1]
    if action == "replace":
        parent[last] = value
    elif action == "delete" and isinstance(parent, dict):
        del parent[last]
    elif action == "delete":
        parent.pop(last)
    elif action == "add" and isinstance(parent, dict):
        parent["unknown_" + str(last)] = value
    return data


def _check(data) -> None:
    try:
        config = DatasetConfig.from_dict(data)
    except ConfigError as e:
        assert isinstance(e.path, str) and str(e).startswith(e.path or "<config>")
        if isinstance(data, dict):
            assert e.path, f"error without a field path: {e}"
        return
    again = DatasetConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config
    assert again.to_dict() == config.to_dict()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_random_values_at_random_paths(data):
    base = json.loads(json.dumps(data.draw(st.sampled_from(BASES))))
    for _ in range(data.draw(st.integers(1, 3))):
        paths = list(_paths(base))
        path = data.draw(st.sampled_from(paths))
        action = data.draw(st.sampled_from(["replace", "replace", "delete", "add"]))
        base = _mutate(base, path, action, data.draw(json_values))
        if not isinstance(base, dict):
            break
    _check(base)


@settings(max_examples=150, deadline=None)
@given(
    st.floats(-1e6, 1e6),
    st.floats(-1e6, 1e6),
    st.sampled_from(["uniform", "normal", "loguniform"]),
    st.sampled_from(
        [
            "camera.distance",
            "camera.elevation_deg",
            "lights.energy_w",
            "post.noise_std",
            "materials.roughness",
            "weather.intensity",
            "background.value",
        ]
    ),
)
def test_numeric_ranges(lo, hi, dist, where):
    base = json.loads(json.dumps(BASES[1]))
    section, field = where.split(".")
    base[section][field] = {"min": lo, "max": hi, "distribution": dist}
    _check(base)


def test_odd_keys_are_named():
    for data, where in [({"": 1}, '""'), ({"render": {"": 0}}, 'render.""'), ({1: 2}, "1")]:
        try:
            DatasetConfig.from_dict(data)
        except ConfigError as e:
            assert e.path == where
        else:
            raise AssertionError(f"{data} was accepted")


def test_valid_configs_round_trip():
    for base in BASES:
        config = DatasetConfig.from_dict(base)
        assert DatasetConfig.from_dict(config.to_dict()) == config

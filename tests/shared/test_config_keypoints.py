"""classes[].keypoints in the config: the JSON shape, every check with the field it names, and configs without
keypoints unchanged (same dict, same hash)."""

from __future__ import annotations

import hashlib
import json

import pytest

from shared.config import MAX_KEYPOINTS, ConfigError, DatasetConfig, KeypointSpec, config_hash


def _cfg(keypoints: dict | None, **extra) -> dict:
    cls = {"name": "board", "id": 1}
    if keypoints is not None:
        cls["keypoints"] = keypoints
    return {"classes": [{"name": "other", "id": 0}, cls], **extra}


def test_shape_and_round_trip():
    data = _cfg(
        {
            "source": "local",
            "names": ["tl", "tr", "br"],
            "coordinates": [[0, 0, 0], [1, 0, 0], [1, -1, 0.5]],
            "skeleton": [["tl", "tr"], ["tr", "br"]],
            "flip_pairs": [["tl", "tr"]],
        }
    )
    c = DatasetConfig.from_dict(data)
    kp = c.classes[1].keypoints
    assert kp == KeypointSpec("local", ("tl", "tr", "br"), ((0.0, 0.0, 0.0), (1.0, 0.0, 0.0), (1.0, -1.0, 0.5)),
                              (("tl", "tr"), ("tr", "br")), (("tl", "tr"),))  # fmt: skip
    assert DatasetConfig.from_dict(json.loads(c.to_json())) == c
    assert c.to_dict()["classes"][1]["keypoints"]["skeleton"] == [["tl", "tr"], ["tr", "br"]]
    for source in ("vertex_groups", "empties"):
        assert DatasetConfig.from_dict(_cfg({"source": source, "names": ["a"]})).classes[1].keypoints.source == source


def test_no_keypoints_leaves_the_config_as_it_was():
    """A class without keypoints has no ``keypoints`` key in to_dict(), so config.json and config_hash (and with
    them every existing dataset's bytes) are unchanged; an explicit null is the same config."""
    plain = DatasetConfig.from_dict(_cfg(None))
    assert all("keypoints" not in c for c in plain.to_dict()["classes"])
    assert DatasetConfig.from_dict(_cfg(None) | {"classes": [{"name": "other", "id": 0, "keypoints": None},
                                                             {"name": "board", "id": 1}]}) == plain  # fmt: skip
    d = plain.to_dict()
    d.pop("count")
    assert config_hash(plain) == hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]
    assert list(plain.to_dict()["classes"][0]) == ["name", "id", "objects", "collections", "color"]


@pytest.mark.parametrize(
    "keypoints, path, text",
    [
        ({"names": ["a"]}, "classes[1].keypoints.source", "required"),
        ({"source": "bones", "names": ["a"]}, "classes[1].keypoints.source", "expected one of"),
        ({"source": "empties"}, "classes[1].keypoints.names", "at least one"),
        ({"source": "empties", "names": ["a", "b", "a"]}, "classes[1].keypoints.names[2]", "duplicate"),
        ({"source": "empties", "names": ["a", ""]}, "classes[1].keypoints.names[1]", "non-empty"),
        ({"source": "empties", "names": [" a"]}, "classes[1].keypoints.names[0]", "outer spaces"),
        (
            {"source": "empties", "names": [f"k{i}" for i in range(MAX_KEYPOINTS + 1)]},
            "classes[1].keypoints.names",
            "at most 1000",
        ),  # fmt: skip
        (
            {"source": "local", "names": ["a", "b"], "coordinates": [[0, 0, 0]]},
            "classes[1].keypoints.coordinates",
            "2 names, 1 coordinates",
        ),  # fmt: skip
        ({"source": "local", "names": ["a"]}, "classes[1].keypoints.coordinates", "one [x, y, z] per name"),
        (
            {"source": "local", "names": ["a"], "coordinates": [[0, 0]]},
            "classes[1].keypoints.coordinates[0]",
            "3 values",
        ),  # fmt: skip
        (
            {"source": "empties", "names": ["a"], "coordinates": [[0, 0, 0]]},
            "classes[1].keypoints.coordinates",
            "only source 'local'",
        ),  # fmt: skip
        (
            {"source": "empties", "names": ["a", "b"], "skeleton": [["a", "c"]]},
            "classes[1].keypoints.skeleton[0][1]",
            "unknown keypoint 'c'",
        ),  # fmt: skip
        (
            {"source": "empties", "names": ["a", "b"], "skeleton": [["a", "a"]]},
            "classes[1].keypoints.skeleton[0]",
            "two different",
        ),  # fmt: skip
        (
            {"source": "empties", "names": ["a", "b"], "skeleton": [["a", "b"], ["b", "a"]]},
            "classes[1].keypoints.skeleton[1]",
            "listed twice",
        ),  # fmt: skip
        (
            {"source": "empties", "names": ["a", "b"], "skeleton": [[0, 1]]},
            "classes[1].keypoints.skeleton[0][0]",
            "expected a string",
        ),  # fmt: skip
        (
            {"source": "empties", "names": ["a", "b", "c"], "flip_pairs": [["a", "b"], ["c", "a"]]},
            "classes[1].keypoints.flip_pairs[1]",
            "two flip pairs",
        ),  # fmt: skip
        (
            {"source": "empties", "names": ["a"], "flip_pairs": [["a", "z"]]},
            "classes[1].keypoints.flip_pairs[0][1]",
            "unknown keypoint",
        ),  # fmt: skip
        ({"source": "empties", "names": ["a"], "colour": 1}, "classes[1].keypoints.colour", "unknown key"),
    ],
)
def test_each_mistake_names_its_field(keypoints, path, text):
    with pytest.raises(ConfigError) as e:
        DatasetConfig.from_dict(_cfg(keypoints))
    assert e.value.path == path and text in e.value.message, str(e.value)


def test_yolo_export_needs_one_keypoint_layout():
    two = {"source": "empties", "names": ["a", "b"]}
    data = _cfg(two)
    data["classes"][0]["keypoints"] = {"source": "local", "names": ["a", "b"], "coordinates": [[0, 0, 0]] * 2}
    DatasetConfig.from_dict(data | {"output": {"yolo": True}})  # same names: one layout, whatever the source
    data["classes"][0]["keypoints"]["flip_pairs"] = [["a", "b"]]
    with pytest.raises(ConfigError) as e:
        DatasetConfig.from_dict(data | {"output": {"yolo": True}})
    assert e.value.path == "output.yolo" and "one keypoint layout" in e.value.message
    DatasetConfig.from_dict(data)  # without the YOLO export, classes may differ
    data["classes"][0]["keypoints"] = {"source": "empties", "names": ["a"]}
    with pytest.raises(ConfigError, match="output.yolo"):
        DatasetConfig.from_dict(data | {"output": {"yolo": True}})

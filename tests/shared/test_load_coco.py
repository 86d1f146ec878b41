"""load_coco: every kind of problem is found, raised with counts, or skipped and listed (never silently)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from shared.coco import CocoError, load_coco


def _png(path, w=8, h=6):
    Image.fromarray(np.zeros((h, w, 3), np.uint8)).save(path)


def _dataset(tmp_path, n_images=3):
    (tmp_path / "images").mkdir()
    images = []
    for i in range(1, n_images + 1):
        _png(tmp_path / "images" / f"{i:06d}.png")
        images.append({"id": i, "file_name": f"{i:06d}.png", "width": 8, "height": 6})
    anns = [
        {"id": 10 * i + k, "image_id": i, "category_id": k, "bbox": [1, 1, 3, 2], "area": 6, "iscrowd": 0}
        for i in range(1, n_images + 1)
        for k in range(2)
    ]
    cats = [{"id": 0, "name": "zero"}, {"id": 1, "name": "one"}]
    return {"images": images, "annotations": anns, "categories": cats}


def _write(tmp_path, data):
    p = tmp_path / "annotations.json"
    p.write_text(json.dumps(data))
    return str(p)


def test_clean_dataset_loads_with_category_zero(tmp_path):
    data = _dataset(tmp_path)
    loaded = load_coco(_write(tmp_path, data))
    assert loaded.skipped == []
    assert loaded.images_root == str(tmp_path / "images")
    assert len(loaded.data["annotations"]) == 6
    assert {a["category_id"] for a in loaded.data["annotations"]} == {0, 1}


@pytest.mark.parametrize(
    "kind, corrupt",
    [
        ("duplicate_image_id", lambda d, p: d["images"].append(dict(d["images"][0]))),
        ("duplicate_category_id", lambda d, p: d["categories"].append({"id": 1, "name": "again"})),
        ("missing_key", lambda d, p: d["images"][1].pop("width")),
        ("missing_key", lambda d, p: d["annotations"].append({"image_id": 1, "category_id": 0})),
        ("duplicate_annotation_id", lambda d, p: d["annotations"].append(dict(d["annotations"][0]))),
        ("unknown_image", lambda d, p: d["annotations"].append({**d["annotations"][0], "id": 999, "image_id": 77})),
        ("unknown_category", lambda d, p: d["annotations"][0].update(category_id=5)),
        ("bad_bbox", lambda d, p: d["annotations"][0].update(bbox=[1, 1, 0, 2])),
        ("bad_bbox", lambda d, p: d["annotations"][0].update(bbox=[1, 1, 2, -1])),
        ("bad_bbox", lambda d, p: d["annotations"][0].update(bbox=[1, 1, 2])),
        ("bbox_outside_image", lambda d, p: d["annotations"][0].update(bbox=[6, 1, 4, 2])),
        ("missing_file", lambda d, p: (p / "images" / "000002.png").unlink()),
        ("bad_file", lambda d, p: (p / "images" / "000002.png").write_bytes(b"")),
        (
            "bad_file",
            lambda d, p: (p / "images" / "000002.png").write_bytes((p / "images" / "000001.png").read_bytes()[:40]),
        ),
        ("bad_file", lambda d, p: (p / "images" / "000002.png").write_bytes(b"GIF89a not a png at all")),
    ],
)
def test_each_problem_raises_or_is_skipped(tmp_path, kind, corrupt):
    data = _dataset(tmp_path)
    corrupt(data, tmp_path)
    path = _write(tmp_path, data)
    with pytest.raises(CocoError) as err:
        load_coco(path)
    assert kind in str(err.value)
    assert any(p.kind == kind for p in err.value.problems)
    loaded = load_coco(path, on_problem="skip")
    kinds = {p.kind for p in loaded.skipped}
    assert kind in kinds
    ids = [a["id"] for a in loaded.data["annotations"]]
    assert len(ids) == len(set(ids))
    kept_images = {i["id"] for i in loaded.data["images"]}
    assert all(a["image_id"] in kept_images for a in loaded.data["annotations"])
    # Everything that disappeared is accounted for in `skipped`.
    n_in = sum(isinstance(a.get("id"), int) for a in data["annotations"])  # an id-less one is listed without id
    n_listed = sum(1 for p in loaded.skipped if p.annotation_id is not None)
    assert len(loaded.data["annotations"]) + n_listed >= n_in - (1 if kind == "duplicate_annotation_id" else 0)


def test_file_problems_drop_the_image_and_say_so_per_annotation(tmp_path):
    data = _dataset(tmp_path)
    (tmp_path / "images" / "000002.png").unlink()
    loaded = load_coco(_write(tmp_path, data), on_problem="skip")
    assert [i["id"] for i in loaded.data["images"]] == [1, 3]
    assert loaded.skip_summary() == {"missing_file": 1, "dropped_with_image": 2}
    assert load_coco(_write(tmp_path, data), check_files=False).skipped == []


def test_truncated_jpeg_and_good_jpeg(tmp_path):
    data = _dataset(tmp_path, 1)
    Image.fromarray(np.zeros((6, 8, 3), np.uint8)).save(tmp_path / "images" / "a.jpg")
    data["images"][0]["file_name"] = "a.jpg"
    path = _write(tmp_path, data)
    assert load_coco(path).skipped == []
    raw = (tmp_path / "images" / "a.jpg").read_bytes()
    (tmp_path / "images" / "a.jpg").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CocoError, match="truncated JPEG"):
        load_coco(path)


def test_file_name_escaping_the_root_is_a_problem(tmp_path):
    data = _dataset(tmp_path, 1)
    data["images"][0]["file_name"] = "../../etc/passwd"
    with pytest.raises(CocoError, match="escapes"):
        load_coco(_write(tmp_path, data))


def test_unusable_files_always_raise(tmp_path):
    p = tmp_path / "annotations.json"
    p.write_text("{not json")
    with pytest.raises(CocoError, match="not valid JSON"):
        load_coco(str(p), on_problem="skip")
    p.write_text(json.dumps({"images": []}))
    with pytest.raises(CocoError, match="missing_key"):
        load_coco(str(p), on_problem="skip")
    with pytest.raises(CocoError, match="does not exist"):
        load_coco(str(tmp_path / "nope.json"))


def test_message_lists_at_most_ten_with_counts(tmp_path):
    data = _dataset(tmp_path)
    for a in data["annotations"]:
        a["category_id"] = 42
    data["annotations"] += [{**data["annotations"][0], "id": 100 + k, "bbox": [0, 0, 0, 0]} for k in range(10)]
    with pytest.raises(CocoError) as err:
        load_coco(_write(tmp_path, data))
    msg = str(err.value)
    assert "16 problem(s)" in msg and "unknown_category: 16" in msg
    assert msg.count("\n  - ") == 10 and "and 6 more" in msg


def _keypoint_dataset(tmp_path):
    """Category 1 with two keypoints; its annotations carry them (one visible, one outside the image)."""
    data = _dataset(tmp_path)
    data["categories"][1].update(keypoints=["tip", "base"], skeleton=[[1, 2]])
    for a in data["annotations"]:
        if a["category_id"] == 1:
            a.update(keypoints=[2.5, 1.25, 2, 0, 0, 0], num_keypoints=1)
    return data


def test_keypoints_load(tmp_path):
    data = _keypoint_dataset(tmp_path)
    loaded = load_coco(_write(tmp_path, data))
    assert loaded.skipped == []
    assert [a["keypoints"] for a in loaded.data["annotations"] if a["category_id"] == 1][0] == [2.5, 1.25, 2, 0, 0, 0]


def _first_kp(d):
    return next(a for a in d["annotations"] if a["category_id"] == 1)


@pytest.mark.parametrize(
    "corrupt, text",
    [
        (lambda d: _first_kp(d).update(keypoints=[1, 1, 2]), "3 * 2 numbers"),
        (lambda d: _first_kp(d).update(keypoints=[1, 1, 3, 0, 0, 0]), "must be 0, 1 or 2"),
        (lambda d: _first_kp(d).update(keypoints=[1, None, 2, 0, 0, 0]), "not a finite number"),
        (lambda d: _first_kp(d).update(num_keypoints=2), "num_keypoints is 2"),
        (lambda d: _first_kp(d).pop("keypoints"), "has 2 keypoints but the annotation has none"),
        (lambda d: d["annotations"][0].update(keypoints=[1, 1, 2]), "category 0 defines none"),
    ],
)
def test_bad_keypoints_raise_or_are_skipped(tmp_path, corrupt, text):
    data = _keypoint_dataset(tmp_path)
    corrupt(data)
    path = _write(tmp_path, data)
    with pytest.raises(CocoError, match="bad_keypoints") as err:
        load_coco(path)
    assert text in str(err.value)
    loaded = load_coco(path, on_problem="skip")
    assert loaded.skip_summary() == {"bad_keypoints": 1} and len(loaded.data["annotations"]) == 5


@pytest.mark.parametrize(
    "keypoints, skeleton, text",
    [([], [], "non-empty list"), (["a", "a"], [], "repeat"), (["a", "b"], [[0, 1]], "1-based"), ("ab", [], "names")],
)
def test_bad_keypoint_category_is_left_out(tmp_path, keypoints, skeleton, text):
    data = _keypoint_dataset(tmp_path)
    data["categories"][1].update(keypoints=keypoints, skeleton=skeleton)
    path = _write(tmp_path, data)
    with pytest.raises(CocoError, match=text):
        load_coco(path)
    loaded = load_coco(path, on_problem="skip")
    assert loaded.skip_summary() == {"bad_keypoints": 1, "unknown_category": 3}
    assert [c["id"] for c in loaded.data["categories"]] == [0]

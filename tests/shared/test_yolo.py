"""YOLO export: class indices by sorted category id (0 included), normalised boxes and polygons, links."""

from __future__ import annotations

import os

import pytest

from shared.yolo import export_yolo


def _coco(polygons=False):
    anns = [
        {"id": 1, "image_id": 1, "category_id": 5, "bbox": [10, 20, 30, 40], "iscrowd": 0},
        {"id": 2, "image_id": 1, "category_id": 0, "bbox": [0, 0, 100, 50], "iscrowd": 0},
        {"id": 3, "image_id": 2, "category_id": 5, "bbox": [0, 0, 10, 10], "iscrowd": 1},
        {"id": 4, "image_id": 2, "category_id": 9, "bbox": [0, 0, 10, 10], "iscrowd": 0},
    ]
    if polygons:
        anns[0]["polygons"] = [[10, 20, 40, 20, 40, 60]]
    return {
        "images": [
            {"id": 1, "file_name": "000000.png", "width": 100, "height": 50},
            {"id": 2, "file_name": "000001.png", "width": 100, "height": 50},
        ],
        "annotations": anns,
        "categories": [{"id": 5, "name": "five"}, {"id": 0, "name": "zero"}],
    }


def test_boxes_names_links_and_skips(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "000000.png").write_bytes(b"x")
    out = tmp_path / "yolo"
    s = export_yolo(_coco(), str(src), str(out))
    assert s["names"] == ["zero", "five"] and s["boxes"] == 2 and s["segments"] == 0
    assert s["skipped"] == {"crowd annotation": 1, "unknown category": 1}
    assert s["missing_images"] == [2]
    lines = (out / "labels" / "000000.txt").read_text().splitlines()
    assert lines == ["1 0.250000 0.800000 0.300000 0.800000", "0 0.500000 0.500000 1.000000 1.000000"]
    assert (out / "labels" / "000001.txt").read_text() == ""
    assert os.path.islink(out / "images" / "000000.png")
    assert (out / "images" / "000000.png").read_bytes() == b"x"
    yaml = (out / "data.yaml").read_text()
    assert "nc: 2" in yaml and '  0: "zero"' in yaml and '  1: "five"' in yaml
    assert (out / "classes.txt").read_text() == "zero\nfive\n"
    # Exporting again (resume) replaces the links instead of failing.
    export_yolo(_coco(), str(src), str(out), link_images=False)
    assert not os.path.islink(out / "images" / "000000.png")


def test_polygons_when_present(tmp_path):
    s = export_yolo(_coco(polygons=True), str(tmp_path), str(tmp_path / "y"))
    assert s["segments"] == 2
    lines = (tmp_path / "y" / "labels" / "000000.txt").read_text().splitlines()
    assert lines[0] == "1 0.100000 0.400000 0.400000 0.400000 0.400000 1.000000"
    assert lines[1].split()[0] == "0" and len(lines[1].split()) == 9  # box as 4-corner polygon


def test_file_names_cannot_escape(tmp_path):
    coco = _coco()
    coco["images"][0]["file_name"] = "../../x.png"
    with pytest.raises(ValueError, match="escapes"):
        export_yolo(coco, str(tmp_path), str(tmp_path / "y"))


def _pose_coco(flip_map=None):
    coco = _coco()
    coco["categories"][0].update(keypoints=["l", "r", "mid"], skeleton=[[1, 3], [2, 3]])
    if flip_map is not None:
        coco["categories"][0]["keypoint_flip_map"] = flip_map
    coco["annotations"][0].update(keypoints=[20.0, 30.0, 2, 25.5, 45.0, 1, 0, 0, 0], num_keypoints=2)
    return coco


def test_pose_labels_and_yaml(tmp_path):
    from shared.yolo import export_yolo as export

    s = export(_pose_coco(), str(tmp_path), str(tmp_path / "y"))
    assert s["kpt_shape"] == [3, 3] and s["flip_idx"] == [0, 1, 2] and s["boxes"] == 2 and s["segments"] == 0
    lines = (tmp_path / "y" / "labels" / "000000.txt").read_text().splitlines()
    # class cx cy w h, then x y v per keypoint normalised by the image size (100 x 50); v = 0 as 0 0 0
    assert (
        lines[0] == "1 0.250000 0.800000 0.300000 0.800000 0.200000 0.600000 2 0.255000 0.900000 1 0.000000 0.000000 0"
    )
    assert lines[1] == "0 0.500000 0.500000 1.000000 1.000000" + " 0.000000 0.000000 0" * 3  # box-only class
    yaml = (tmp_path / "y" / "data.yaml").read_text()
    assert "kpt_shape: [3, 3]\nflip_idx: [0, 1, 2]\n" in yaml and "fliplr=0" in yaml
    s = export(_pose_coco([["l", "r"]]), str(tmp_path), str(tmp_path / "f"))
    assert s["flip_idx"] == [1, 0, 2] and "fliplr" not in (tmp_path / "f" / "data.yaml").read_text()
    # polygons present: a pose dataset still writes boxes plus keypoints
    coco = _pose_coco()
    coco["annotations"][0]["polygons"] = [[10, 20, 40, 20, 40, 60]]
    assert export(coco, str(tmp_path), str(tmp_path / "p"))["segments"] == 0


def test_pose_refuses_two_layouts_and_segments(tmp_path):
    from shared.yolo import YoloError

    coco = _pose_coco()
    coco["categories"][1].update(keypoints=["a", "b"])
    with pytest.raises(YoloError, match="one keypoint layout"):
        export_yolo(coco, str(tmp_path), str(tmp_path / "y"))
    coco["categories"][1].update(keypoints=["l", "r", "mid"], keypoint_flip_map=[["l", "r"]])
    with pytest.raises(YoloError, match="flip_idx"):
        export_yolo(coco, str(tmp_path), str(tmp_path / "y"))
    with pytest.raises(YoloError, match="not polygons"):
        export_yolo(_pose_coco(), str(tmp_path), str(tmp_path / "y"), segments=True)
    with pytest.raises(YoloError, match="keypoint_flip_map"):
        export_yolo(_pose_coco([["l", "zz"]]), str(tmp_path), str(tmp_path / "y"))

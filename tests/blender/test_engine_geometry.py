"""Real renders of scenes with known geometry, on both Blenders: boxes, depth, masks, occlusion, instancing.

Expected values come from the scene's constants (tests/blender/engine_scene.py) projected with a pinhole camera
built here from the lens and sensor, not from an earlier run.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest
from PIL import Image

sys.path += [os.path.dirname(os.path.abspath(__file__)), os.path.dirname(os.path.dirname(os.path.abspath(__file__)))]
import engine_scene as S  # noqa: E402
from blendset_testing import BLENDER_KINDS, HEADLESS, run_blender  # noqa: E402

pytestmark = pytest.mark.blender
SCENE = os.path.join(os.path.dirname(__file__), "engine_scene.py")


def _render(kind: str, root, variant: str) -> str:
    cfg = root / f"{variant}.json"
    cfg.write_text(json.dumps(S.config(variant)))
    out = str(root / variant)
    args = ["--config", str(cfg), "--out", out, "--scene-script", SCENE]
    args += ["--scene-args", json.dumps({"variant": variant})]
    run_blender(kind, HEADLESS, args)
    return out


@pytest.fixture(scope="module", params=BLENDER_KINDS)
def geometry(request, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp(f"geometry-{request.param}")
    out = _render(request.param, root, "geometry")
    with open(os.path.join(out, "annotations.json")) as f:
        coco = json.load(f)
    return {
        "kind": request.param,
        "out": out,
        "coco": coco,
        "anns": {a["attributes"]["object"]: a for a in coco["annotations"]},
        "image": coco["images"][0],
        "instance": np.array(Image.open(os.path.join(out, "instance", "000000.png"))),
        "semantic": np.array(Image.open(os.path.join(out, "semantic", "000000.png"))),
        "depth_mm": np.array(Image.open(os.path.join(out, "depth", "000000.png"))),
        "depth": np.load(os.path.join(out, "depth", "000000.npy")),
        "normals": np.load(os.path.join(out, "normals", "000000.npy")),
    }


def _f_px() -> float:
    return S.LENS_MM / S.SENSOR_MM * S.RESOLUTION[0]


def _project(points: np.ndarray) -> np.ndarray:
    """Pinhole camera at (0, 0, CAMERA_Z) looking down -Z with +Y up: image x right = world x, image y down =
    world -y; pixel centres at +0.5."""
    f = _f_px()
    w, h = S.RESOLUTION
    d = S.CAMERA_Z - points[:, 2]
    u = w / 2 + f * points[:, 0] / d
    v = h / 2 - f * points[:, 1] / d
    return np.stack([u, v], axis=1)


def _expected_box(xs, ys, zs) -> list[int]:
    """Tight pixel box [x, y, w, h] of a box's projection, sampled at pixel centres."""
    corners = np.array([(x, y, z) for x in xs for y in ys for z in zs], dtype=float)
    uv = _project(corners)
    x0, y0 = np.ceil(uv.min(axis=0) - 0.5)
    x1, y1 = np.floor(uv.max(axis=0) - 0.5)
    return [int(x0), int(y0), int(x1 - x0 + 1), int(y1 - y0 + 1)]


def _assert_box(actual, expected, what):
    assert np.all(np.abs(np.array(actual) - np.array(expected)) <= 1), f"{what}: box {actual}, expected {expected}"


def test_intrinsics_match_the_lens(geometry):
    K = np.array(geometry["image"]["blendset"]["camera"]["K"])
    assert K[0, 0] == pytest.approx(_f_px())
    assert K[0, 2] == pytest.approx(S.RESOLUTION[0] / 2) and K[1, 2] == pytest.approx(S.RESOLUTION[1] / 2)
    wfc = np.array(geometry["image"]["blendset"]["camera"]["world_from_camera"])
    assert wfc[:3, 3] == pytest.approx([0.0, 0.0, S.CAMERA_Z])


def test_boxes_of_known_objects_within_one_pixel(geometry):
    anns = geometry["anns"]
    _assert_box(anns["BoxA"]["bbox"], _expected_box(*S.BOXES["BoxA"][2:]), "BoxA")
    assert anns["BoxA"]["category_id"] == 0  # class id 0 is an ordinary class
    for k, centre in enumerate(S.STUD_CENTRES):
        h = S.STUD_SIZE / 2
        xs, ys, zs = ((c - h, c + h) for c in centre)
        _assert_box(anns[f"Studs[{k}]"]["bbox"], _expected_box(xs, ys, zs), f"geometry-nodes instance {k}")
    for name, (ex, ey, ez) in S.WIDGET_EMPTIES.items():
        h = S.WIDGET_SIZE / 2
        pts_x = [ex + p[0] + s * h for p in S.WIDGET_PARTS for s in (-1, 1)]
        pts_y = [ey + p[1] + s * h for p in S.WIDGET_PARTS for s in (-1, 1)]
        pts_z = [ez + p[2] + s * h for p in S.WIDGET_PARTS for s in (-1, 1)]
        expected = _expected_box((min(pts_x), max(pts_x)), (min(pts_y), max(pts_y)), (min(pts_z), max(pts_z)))
        _assert_box(anns[name]["bbox"], expected, f"collection instance {name}")


def test_instances_are_separate_and_labelled(geometry):
    anns = geometry["anns"]
    ids = {a["attributes"]["instance_id"] for a in anns.values()}
    assert len(ids) == len(anns)
    assert {anns[f"Studs[{k}]"]["category_id"] for k in range(3)} == {4}
    assert anns["WidgetE1"]["category_id"] == anns["WidgetE2"]["category_id"] == 3
    cats = {c["id"]: c["name"] for c in geometry["coco"]["categories"]}
    assert cats == {0: "box", 1: "panel", 2: "alpha", 3: "widget", 4: "stud"}


def test_depth_of_the_ground_plane(geometry):
    """The ground at z = 0 seen from z = 10 straight down: planar depth 10 m everywhere it shows."""
    inst, depth, mm = geometry["instance"], geometry["depth"], geometry["depth_mm"]
    corners = [depth[1:5, 1:5], depth[1:5, -5:-1], depth[-5:-1, 1:5], depth[-5:-1, -5:-1]]
    for patch in corners:
        assert np.allclose(patch, S.CAMERA_Z, rtol=0.01)
    assert np.allclose(mm[1:5, 1:5], 10000, rtol=0.01)
    # The top of BoxA (z = 1) is 9 m away.
    box = geometry["anns"]["BoxA"]["bbox"]
    cy, cx = box[1] + box[3] // 2, box[0] + box[2] // 2
    assert depth[cy, cx] == pytest.approx(S.CAMERA_Z - 1.0, rel=0.01)
    assert inst[cy, cx] == geometry["anns"]["BoxA"]["attributes"]["instance_id"]


def test_normals_in_camera_space(geometry):
    """The ground faces the camera, which looks down -Z: its camera-space normal is +Z."""
    n = geometry["normals"]
    assert n.dtype == np.float16 and n.shape == (S.RESOLUTION[1], S.RESOLUTION[0], 3)
    assert np.allclose(n[1:5, 1:5].astype(np.float32), [0.0, 0.0, 1.0], atol=0.01)


def test_yolo_and_polygon_exports(geometry):
    out, anns = geometry["out"], geometry["coco"]["annotations"]
    with open(os.path.join(out, "yolo", "classes.txt")) as f:
        assert f.read().split() == ["box", "panel", "alpha", "widget", "stud"]
    with open(os.path.join(out, "yolo", "labels", "000000.txt")) as f:
        assert len(f.read().splitlines()) == len(anns)
    for a in anns:  # polygons follow the visible pixels: inside the box
        x, y, w, h = a["bbox"]
        pts = np.array([v for poly in a["polygons"] for v in poly]).reshape(-1, 2)
        assert pts[:, 0].min() >= x and pts[:, 0].max() <= x + w
        assert pts[:, 1].min() >= y and pts[:, 1].max() <= y + h


def test_masks_equal_pycocotools_decoding(geometry):
    from pycocotools import mask as mask_utils

    inst, sem = geometry["instance"], geometry["semantic"]
    assert inst.dtype == np.uint16 and sem.dtype == np.uint16
    for a in geometry["coco"]["annotations"]:
        decoded = mask_utils.decode(a["segmentation"]).astype(bool)
        expected = inst == a["attributes"]["instance_id"]
        assert np.array_equal(decoded, expected), a["attributes"]["object"]
        assert a["area"] == int(expected.sum())
        assert np.all(sem[expected] == a["category_id"] + 1)


def test_fully_hidden_object_gets_no_annotation(geometry):
    assert "HiddenC" not in geometry["anns"]
    dropped = {d["object"]: d for d in geometry["image"]["blendset"]["dropped"]}
    assert dropped["HiddenC"]["reason"] == "not visible"


def test_half_hidden_object_reports_half_occlusion(geometry):
    att = geometry["anns"]["PanelB"]["attributes"]
    assert att["occlusion"] == pytest.approx(0.5, abs=0.05)
    xs, ys, z = S.PANELS["PanelB"][2:]
    full = _expected_box(xs, ys, (z,))
    assert att["unoccluded_pixels"] == pytest.approx(full[2] * full[3], rel=0.1)
    assert geometry["anns"]["BoxA"]["attributes"]["occlusion"] == pytest.approx(0.0, abs=0.02)


def test_alpha_cut_mask_follows_alpha(geometry):
    """AlphaD's left half has alpha 0: the mask (and box) cover only the opaque right half."""
    xs, ys, z = S.PANELS["AlphaD"][2:]
    opaque = _expected_box((sum(xs) / 2, xs[1]), ys, (z,))
    _assert_box(geometry["anns"]["AlphaD"]["bbox"], opaque, "alpha-cut panel")


@pytest.mark.parametrize("kind", BLENDER_KINDS)
def test_more_than_255_instances(kind, tmp_path):
    out = _render(kind, tmp_path, "grid")
    inst = np.array(Image.open(os.path.join(out, "instance", "000000.png")))
    with open(os.path.join(out, "annotations.json")) as f:
        coco = json.load(f)
    assert inst.dtype == np.uint16 and int(inst.max()) == S.GRID_N > 255
    assert len(coco["annotations"]) == S.GRID_N
    ids = sorted(a["attributes"]["instance_id"] for a in coco["annotations"])
    assert ids == list(range(1, S.GRID_N + 1))
    by_name = {a["attributes"]["object"]: a for a in coco["annotations"]}
    for i in (0, 137, S.GRID_N - 1):
        x, y = S.grid_centre(i)
        h = S.GRID_TILE / 2
        _assert_box(by_name[f"Tile{i:03d}"]["bbox"], _expected_box((x - h, x + h), (y - h, y + h), (0.0,)), f"tile {i}")

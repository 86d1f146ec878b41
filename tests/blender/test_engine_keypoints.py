"""Keypoints from real renders, on both Blenders: every source kind (vertex groups, empties, local coordinates),
positions against the analytic pinhole projection, COCO visibility (visible, hidden by an occluder, hidden by the
object's own near side, outside the image, behind the camera), pycocotools, the checking loader and YOLO pose.

Expected positions and visibilities come from tests/blender/engine_scene.py's constants (variant "keypoints"),
projected here with numpy, not from an earlier run.
"""

from __future__ import annotations

import copy
import json
import os
import sys

import numpy as np
import pytest

sys.path += [os.path.dirname(os.path.abspath(__file__)), os.path.dirname(os.path.dirname(os.path.abspath(__file__)))]
import engine_scene as S  # noqa: E402
from blendset_testing import BLENDER_KINDS, HEADLESS, run_blender  # noqa: E402

from shared.coco import load_coco  # noqa: E402
from shared.yolo import YoloError, export_yolo  # noqa: E402

pytestmark = pytest.mark.blender
SCENE = os.path.join(os.path.dirname(__file__), "engine_scene.py")


def _render(kind: str, root, config: dict, name: str, check: bool = True, **scene_args):
    cfg = root / f"{name}.json"
    cfg.write_text(json.dumps(config))
    out = root / name
    args = ["--config", str(cfg), "--out", str(out), "--scene-script", SCENE]
    args += ["--scene-args", json.dumps({"variant": "keypoints", **scene_args})]
    return str(out), run_blender(kind, HEADLESS, args, check=check)


@pytest.fixture(scope="module", params=BLENDER_KINDS)
def rendered(request, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp(f"keypoints-{request.param}")
    out, _ = _render(request.param, root, S.config("keypoints"), "keypoints")
    with open(os.path.join(out, "annotations.json")) as f:
        coco = json.load(f)
    return {
        "kind": request.param,
        "root": root,
        "out": out,
        "coco": coco,
        "anns": {a["attributes"]["object"]: a for a in coco["annotations"]},
        "depth": np.load(os.path.join(out, "depth", "000000.npy")),
    }


def _project(points) -> np.ndarray:
    """The scene's camera as a plain pinhole: at (0, 0, CAMERA_Z) looking down -Z, image x = world x, image
    y = -world y, continuous coordinates (pixel centres at +0.5, so the image centre is at (W/2, H/2))."""
    p = np.asarray(points, dtype=float).reshape(-1, 3)
    f = S.LENS_MM / S.SENSOR_MM * S.RESOLUTION[0]
    d = S.CAMERA_Z - p[:, 2]
    return np.stack([S.RESOLUTION[0] / 2 + f * p[:, 0] / d, S.RESOLUTION[1] / 2 - f * p[:, 1] / d], axis=1)


def _expected() -> dict[str, tuple[np.ndarray, list[int]]]:
    """Object name -> (world keypoints K x 3, visibilities) from the scene's constants."""
    xs, ys, zs = S.KBOX
    box = []
    for members in S.KBOX_GROUPS.values():
        pts = np.array([(xs[ix], ys[iy], zs[iz]) for (ix, iy, iz), _ in members])
        w = np.array([w for _, w in members])
        box.append((pts * w[:, None]).sum(axis=0) / w.sum())
    out = {"KBox": (np.array(box), list(S.KBOX_V.values()))}
    for plate in S.PLATES:
        pts = np.array([S.plate_empty_world(plate, n) for n in S.PLATE_EMPTIES])
        out[plate] = (pts, [S.PLATE_V[plate][n] for n in S.PLATE_EMPTIES])
    local = np.array([p for p, _ in S.KLOCAL_POINTS.values()])
    out["KLocal"] = (local @ S.rot_z(S.KLOCAL_ROT_DEG).T + S.KLOCAL_AT, [v for _, v in S.KLOCAL_POINTS.values()])
    tilt = np.array([p for p, _ in S.KTILT_POINTS.values()])
    out["KTilt"] = (tilt @ S.rot_x(S.KTILT_ROT_DEG).T + S.KTILT_AT, [v for _, v in S.KTILT_POINTS.values()])
    return out


def _split(flat: list) -> tuple[np.ndarray, list[int]]:
    a = np.array(flat, dtype=float).reshape(-1, 3)
    return a[:, :2], [int(v) for v in a[:, 2]]


@pytest.mark.parametrize("name", ["KBox", "KPlate", "KPlate2", "KLocal", "KTilt"])
def test_positions_and_visibility_follow_the_geometry(rendered, name):
    """vertex_groups (KBox), empties (KPlate, KPlate2: duplicate-suffixed names), local (KLocal, KTilt)."""
    world, want_v = _expected()[name]
    xy, v = _split(rendered["anns"][name]["keypoints"])
    assert v == want_v, f"{name}: visibilities {v}, expected {want_v}"
    inside = np.array(want_v) > 0
    err = np.abs(xy[inside] - _project(world[inside])).max()
    assert err < 0.5, f"{name}: keypoints {err:.3f} px from the analytic projection"
    assert np.all(xy[~inside] == 0.0)  # COCO writes x = y = 0 for v = 0
    assert rendered["anns"][name]["num_keypoints"] == int(inside.sum())
    assert all(round(c, 2) == c for c in xy.ravel())  # rounded to 0.01 px


def test_each_visibility_kind_is_covered(rendered):
    """The scene really has a visible, an occluded, a self-occluded, an outside and a behind-camera keypoint."""
    v = {n: _split(rendered["anns"][n]["keypoints"])[1] for n in ("KBox", "KPlate", "KLocal")}
    assert v["KPlate"][1] == 1 and v["KBox"][4] == 1 and v["KLocal"][1] == 1  # occluder, own top face (x2)
    assert v["KPlate"][2] == 0 and v["KLocal"][2:] == [0, 0]  # outside the image, behind the camera
    assert v["KBox"][0] == 2


def test_depth_map_is_planar_like_the_keypoint_depth(rendered):
    """The visibility test compares like for like: the depth map holds planar Z (distance along the view axis),
    so KBox's top face reads CAMERA_Z - 1 at its centre keypoint, not the longer ray length."""
    xy, _ = _split(rendered["anns"]["KBox"]["keypoints"])
    col, row = (int(c) for c in xy[1])
    ray = np.linalg.norm(_expected()["KBox"][0][1] - [0.0, 0.0, S.CAMERA_Z])
    assert rendered["depth"][row, col] == pytest.approx(S.CAMERA_Z - 1.0, abs=1e-3)
    assert ray - (S.CAMERA_Z - 1.0) > 0.05  # the two conventions differ clearly here


def test_categories_carry_names_skeleton_and_flip_map(rendered):
    cats = {c["name"]: c for c in rendered["coco"]["categories"]}
    assert cats["kbox"]["keypoints"] == list(S.KBOX_GROUPS)
    assert cats["kbox"]["skeleton"] == [[1, 2], [2, 5]]  # 1-based
    assert cats["kplate"]["keypoint_flip_map"] == [["e_vis", "e_hidden"]]
    assert "keypoint_flip_map" not in cats["kbox"]


def test_loader_and_pycocotools_read_the_keypoints(rendered):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    path = os.path.join(rendered["out"], "annotations.json")
    loaded = load_coco(path)
    assert len(loaded.data["annotations"]) == 5 and not loaded.skipped
    gt = COCO(path)
    cats = {c["name"]: c for c in rendered["coco"]["categories"]}
    for name in ("kbox", "kplate"):
        cat = cats[name]
        anns = [a for a in rendered["coco"]["annotations"] if a["category_id"] == cat["id"]]
        dets = [
            {"image_id": a["image_id"], "category_id": a["category_id"], "keypoints": a["keypoints"], "score": 1.0}
            for a in anns
        ]
        ev = COCOeval(gt, gt.loadRes(dets), iouType="keypoints")
        ev.params.catIds = [cat["id"]]
        ev.params.kpt_oks_sigmas = np.full(len(cat["keypoints"]), 0.05)  # COCOeval's default is 17 person sigmas
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
        assert ev.stats[0] == pytest.approx(1.0), name  # the ground truth scored against itself


def test_yolo_pose_export(rendered, tmp_path):
    coco = rendered["coco"]
    images = os.path.join(rendered["out"], "images")
    with pytest.raises(YoloError, match="one keypoint layout"):
        export_yolo(coco, images, str(tmp_path / "mixed"))
    one = copy.deepcopy(coco)
    one["categories"] = [c for c in one["categories"] if c["name"] == "kplate"]
    one["annotations"] = [a for a in one["annotations"] if a["category_id"] == one["categories"][0]["id"]]
    out = tmp_path / "pose"
    summary = export_yolo(one, images, str(out))
    assert summary["kpt_shape"] == [3, 3] and summary["flip_idx"] == [1, 0, 2]
    yaml = (out / "data.yaml").read_text()
    assert "kpt_shape: [3, 3]" in yaml and "flip_idx: [1, 0, 2]" in yaml
    lines = (out / "labels" / "000000.txt").read_text().splitlines()
    assert len(lines) == 2
    W, H = S.RESOLUTION
    for line, ann in zip(lines, sorted(one["annotations"], key=lambda a: a["id"]), strict=True):
        vals = line.split()
        assert vals[0] == "0" and len(vals) == 5 + 3 * 3
        x, y, w, h = ann["bbox"]
        assert [float(v) for v in vals[1:5]] == pytest.approx(
            [(x + w / 2) / W, (y + h / 2) / H, w / W, h / H], abs=1e-6
        )
        kp = np.array([float(v) for v in vals[5:]]).reshape(-1, 3)
        want = np.array(ann["keypoints"], dtype=float).reshape(-1, 3)
        assert kp[:, 2].tolist() == want[:, 2].tolist()  # COCO's 0/1/2 kept
        assert kp[:, :2] == pytest.approx(want[:, :2] / [W, H], abs=1e-6)  # v = 0 stays 0 0


def test_modifier_that_adds_vertices_gives_the_same_keypoints(rendered):
    """Edge Split duplicates KBox's vertices (and their weights) without moving them: the evaluated-weights path
    must give the same weighted means as the cached weights."""
    out, _ = _render(rendered["kind"], rendered["root"], S.config("keypoints"), "edge_split", edge_split=True)
    with open(os.path.join(out, "annotations.json")) as f:
        anns = {a["attributes"]["object"]: a for a in json.load(f)["annotations"]}
    assert anns["KBox"]["keypoints"] == pytest.approx(rendered["anns"]["KBox"]["keypoints"], abs=0.011)


@pytest.mark.parametrize(
    "index, name, message",
    [
        (0, "no_such_group", "no vertex group 'no_such_group'"),
        (1, "no_such_empty", "no empty named 'no_such_empty'"),
    ],
)
def test_missing_keypoint_stops_the_run_before_any_file(rendered, index, name, message):
    cfg = S.config("keypoints")
    cfg["classes"][index]["keypoints"]["names"].append(name)
    k = len(cfg["classes"][index]["keypoints"]["names"]) - 1
    out, proc = _render(rendered["kind"], rendered["root"], cfg, f"missing{index}", check=False)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert f"classes[{index}].keypoints.names[{k}]" in proc.stderr and message in proc.stderr, proc.stderr[-2000:]
    assert not os.path.exists(out)

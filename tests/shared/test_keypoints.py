"""shared.keypoints without Blender: projection in COCO's continuous pixel coordinates, the in-image test, the
depth-visibility rule and its tolerance, the COCO encoding, and the dataset path through annotate_frame, shard
merge, the checking loader and the YOLO pose export."""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest
from PIL import Image

from shared import keypoints as kp
from shared.annotate import InstanceInfo, annotate_frame
from shared.coco import load_coco, write_json_atomic
from shared.config import DatasetConfig, Filters
from shared.layout import frame_record_path
from shared.merge import coco_from_records, merge_datasets

W, H, F = 64, 48, 50.0
K = np.array([[F, 0.0, W / 2], [0.0, F, H / 2], [0.0, 0.0, 1.0]])
# Camera at (0, 0, 10) looking down -Z (Blender convention: the identity rotation looks down -Z with +Y up).
WFC = np.eye(4)
WFC[2, 3] = 10.0


def _world(u: float, v: float, depth: float) -> np.ndarray:
    """The world point at depth ``depth`` that projects to image point (u, v) under K, WFC."""
    return np.array([(u - W / 2) * depth / F, -(v - H / 2) * depth / F, 10.0 - depth])


def test_projection_uses_continuous_pixel_coordinates():
    """The optical axis lands on the image centre (W/2, H/2): the corner between the four middle pixels; the
    centre of pixel (col i, row j) is (i + 0.5, j + 0.5)."""
    pixels, depth = kp.project(K, WFC, [[0.0, 0.0, 0.0], _world(3.5, 7.5, 4.0)])
    assert pixels[0] == pytest.approx([W / 2, H / 2]) and depth[0] == pytest.approx(10.0)
    assert pixels[1] == pytest.approx([3.5, 7.5]) and depth[1] == pytest.approx(4.0)


def test_in_image_bounds_and_behind_the_camera():
    pixels = np.array([[0.0, 0.0], [W - 1e-6, H - 1e-6], [W, 5.0], [5.0, H], [-1e-6, 5.0], [5.0, 5.0], [np.nan, 1]])
    depth = np.array([1.0, 1.0, 1.0, 1.0, 1.0, -1.0, 1.0])
    assert kp.in_image(pixels, depth, W, H).tolist() == [True, True, False, False, False, False, False]
    _, v = kp.visibility(K, WFC, [[0.0, 0.0, 12.0], [0.0, 0.0, 10.0]], np.full((H, W), 5.0))
    assert v.tolist() == [0, 0]  # behind the camera, and on its plane


def test_flat_surface_front_and_behind():
    dm = np.full((H, W), 5.0, dtype=np.float32)
    pts = np.array([[10.3, 20.7], [10.3, 20.7], [10.3, 20.7], [0.0, 0.0], [W - 0.01, H - 0.01]])
    z = np.array([5.0, 4.0, 5.2, 5.0, 5.02])
    assert kp.unoccluded(pts, z, dm).tolist() == [True, True, False, True, True]
    # The tolerance: 1 mm + 0.5 % of the depth on a flat surface (no depth step in the block).
    tol = kp.ABS_TOL_M + kp.REL_TOL * 5.0
    assert kp.unoccluded(pts[:1], [5.0 + 0.99 * tol], dm)[0] and not kp.unoccluded(pts[:1], [5.0 + 1.01 * tol], dm)[0]


def _jittered_plane(a: float, b: float, c: float, seed: int = 0) -> np.ndarray:
    """Depth map of the plane depth = a + b*x + c*y, each pixel sampled at a random point within 0.75 px of
    its centre, as Cycles' first filtered sample lands."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:H, 0:W] + 0.5
    xs = xs + rng.uniform(-0.75, 0.75, xs.shape)
    ys = ys + rng.uniform(-0.75, 0.75, ys.shape)
    return (a + b * xs + c * ys).astype(np.float32)


@pytest.mark.parametrize("slope", [0.0, 0.02, 0.2, 1.0])
def test_points_on_slanted_surfaces_are_visible_and_those_behind_hidden(slope):
    """Points exactly on a surface at random sub-pixel positions are visible however steep it is (the depth step
    term), and the same points a clear distance behind it are hidden."""
    dm = _jittered_plane(30.0, slope, -0.5 * slope)
    rng = np.random.default_rng(1)
    pts = rng.uniform([2, 2], [W - 2, H - 2], (500, 2))
    on = 30.0 + slope * pts[:, 0] - 0.5 * slope * pts[:, 1]
    assert kp.unoccluded(pts, on, dm).all()
    behind = on + 0.5 + 8.0 * slope  # hidden by more than a few pixels' worth of depth change
    assert not kp.unoccluded(pts, behind, dm).any()


def test_occluder_edge_and_empty_pixels():
    """Behind an occluder: hidden from one pixel inside its edge on; within the one-pixel band, visible. No
    surface (depth 0) next to a point: nothing can hide it."""
    dm = np.full((H, W), 10.0, dtype=np.float32)
    dm[:, 30:] = 2.0  # an occluder covering columns 30..63
    xs = np.array([29.5, 30.5, 31.5, 40.5])
    got = kp.unoccluded(np.stack([xs, np.full(4, 20.5)], axis=1), np.full(4, 10.0), dm)
    assert got.tolist() == [True, True, False, False]
    dm[18:23, 38:43] = 0.0
    assert kp.unoccluded([[40.5, 20.5], [40.5, 15.5]], [10.0, 10.0], dm).tolist() == [True, False]


def test_self_occlusion_of_a_slab():
    """A slab 0.1 m thick at 5 m: its back face is hidden by its front face (what the depth map holds)."""
    dm = np.full((H, W), 5.0, dtype=np.float32)
    assert kp.unoccluded([[20.5, 20.5]], [5.1], dm).tolist() == [False]


def test_visibility_and_coco_encoding():
    dm = np.full((H, W), 6.0, dtype=np.float32)
    pts = np.array([_world(10.004, 20.996, 6.0), _world(10.0, 20.0, 8.0), _world(-3.0, 5.0, 6.0)])
    pixels, v = kp.visibility(K, WFC, pts, dm)
    assert v.tolist() == [2, 1, 0]
    flat = kp.encode_coco(pixels, v)
    assert flat == [10.0, 21.0, 2, 10.0, 20.0, 1, 0.0, 0.0, 0]
    assert [type(x) for x in flat[2::3]] == [int, int, int]
    assert kp.num_keypoints(flat) == 2
    assert json.dumps(kp.encode_coco(np.array([[-0.001, 3.0]]), np.array([0]))) == "[0.0, 0.0, 0]"


def test_frame_keypoints_of_several_instances_in_one_pass():
    dm = np.full((H, W), 6.0, dtype=np.float32)
    a = np.array([_world(5.25, 6.5, 6.0), _world(7.0, 8.0, 6.0)])
    b = np.array([_world(50.0, 40.0, 9.0)])
    out = kp.frame_keypoints({3: a, 7: b}, K, WFC, dm)
    assert out == {3: [5.25, 6.5, 2, 7.0, 8.0, 2], 7: [50.0, 40.0, 1]}
    assert kp.frame_keypoints({}, K, WFC, dm) == {}


def test_many_keypoints_are_vectorised():
    dm = np.full((480, 640), 6.0, dtype=np.float32)
    Kb = np.array([[500.0, 0, 320], [0, 500.0, 240], [0, 0, 1]])
    pts = np.random.default_rng(0).uniform([-3, -2, 3], [3, 2, 5], (100_000, 3))
    t0 = time.perf_counter()
    _, v = kp.visibility(Kb, WFC, pts, dm)
    assert time.perf_counter() - t0 < 2.0  # about 0.1 s: no Python loop per point
    assert set(v.tolist()) <= {0, 1, 2}


def test_skeleton_flip_and_category_fields():
    spec = (
        DatasetConfig.from_dict(
            {
                "classes": [
                    {
                        "name": "face",
                        "id": 0,
                        "keypoints": {
                            "source": "empties",
                            "names": ["nose", "left_eye", "right_eye"],
                            "skeleton": [["nose", "left_eye"], ["nose", "right_eye"]],
                            "flip_pairs": [["left_eye", "right_eye"]],
                        },
                    }
                ]
            }
        )
        .classes[0]
        .keypoints
    )
    assert kp.coco_skeleton(spec.names, spec.skeleton) == [[1, 2], [1, 3]]
    assert kp.flip_index(spec.names, spec.flip_pairs) == [0, 2, 1]
    assert kp.flip_index(spec.names, ()) == [0, 1, 2]
    assert kp.category_fields(spec) == {
        "keypoints": ["nose", "left_eye", "right_eye"],
        "skeleton": [[1, 2], [1, 3]],
        "keypoint_flip_map": [["left_eye", "right_eye"]],
    }


# -- the dataset path: annotate_frame -> frame records -> merge -> load_coco / YOLO pose -------------------------

CONFIG = {
    "name": "kp",
    "count": 2,
    "classes": [
        {"name": "plain", "id": 0},
        {
            "name": "tri",
            "id": 1,
            "keypoints": {
                "source": "local",
                "names": ["a", "b", "c"],
                "coordinates": [[0, 0, 0]] * 3,
                "skeleton": [["a", "c"]],
            },
        },  # fmt: skip
    ],
    "output": {"yolo": True},
    "filters": {"min_visible_pixels": 1},
}


def _shard(folder: str, config: DatasetConfig, frames: list[int]) -> None:
    """A shard folder as the engine writes it: config.json, images, frame records with keypoints."""
    from shared.keypoints import category_fields

    cats = [{"id": 0, "name": "plain", "supercategory": "blendset"}]
    cats.append({"id": 1, "name": "tri", "supercategory": "blendset", **category_fields(config.classes[1].keypoints)})
    for sub in ("images", "frames"):
        os.makedirs(os.path.join(folder, sub), exist_ok=True)
    write_json_atomic(os.path.join(folder, "config.json"), config.to_dict(), indent=2)
    for frame in frames:
        im = np.zeros((H, W), np.uint16)
        im[10:20, 5:15] = 1
        im[25:40, 30:50] = 2
        dm = np.where(im > 0, 5.0, 9.0).astype(np.float32)
        infos = [InstanceInfo(1, 0, "plain", "P", 100, 100, 5.0), InstanceInfo(2, 1, "tri", "T", 300, 300, 5.0)]
        pts = np.array([_world(30.5 + frame, 25.5, 5.0), _world(40.0, 32.0, 7.0), _world(80.0, 30.0, 5.0)])
        kps = kp.frame_keypoints({2: pts}, K, WFC, dm)
        anns, dropped = annotate_frame(im, infos, dm, None, Filters(min_visible_pixels=1), frame, keypoints=kps)
        name = f"{frame:06d}.png"
        Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(os.path.join(folder, "images", name))
        image = {"id": frame + 1, "file_name": name, "width": W, "height": H, "blendset": {"frame": frame}}
        record = {"image": image, "annotations": anns, "categories": cats}
        write_json_atomic(frame_record_path(folder, frame), record)


def test_records_merge_load_and_export_as_pose(tmp_path):
    config = DatasetConfig.from_dict(CONFIG)
    a, b, out = str(tmp_path / "a"), str(tmp_path / "b"), str(tmp_path / "merged")
    _shard(a, config, [0])
    _shard(b, config, [1])
    coco = merge_datasets([a, b], out)
    anns = {(x["image_id"], x["category_id"]): x for x in coco["annotations"]}
    assert "keypoints" not in anns[(1, 0)] and "num_keypoints" not in anns[(1, 0)]
    assert anns[(1, 1)]["keypoints"] == [30.5, 25.5, 2, 40.0, 32.0, 1, 0.0, 0.0, 0]
    assert anns[(2, 1)]["keypoints"][:3] == [31.5, 25.5, 2] and anns[(2, 1)]["num_keypoints"] == 2
    assert coco["categories"][1]["skeleton"] == [[1, 3]]
    # the merge equals what one run's records give, and the checking loader accepts it
    with open(os.path.join(out, "annotations.json")) as f:
        assert json.load(f) == coco
    recs = [json.load(open(frame_record_path(d, i))) for d, i in ((a, 0), (b, 1))]
    assert coco_from_records(recs, config, recs[0]["categories"]) == coco
    assert len(load_coco(os.path.join(out, "annotations.json")).data["annotations"]) == 4
    # YOLO pose next to it (output.yolo): three keypoints per line, box-only classes all zero
    yaml = open(os.path.join(out, "yolo", "data.yaml")).read()
    assert "kpt_shape: [3, 3]" in yaml and "flip_idx: [0, 1, 2]" in yaml and "fliplr=0" in yaml
    lines = open(os.path.join(out, "yolo", "labels", "000000.txt")).read().splitlines()
    plain, tri = (line.split() for line in lines)
    assert plain[5:] == ["0.000000", "0.000000", "0"] * 3
    assert tri[0] == "1" and len(tri) == 14
    assert tri[5:] == [f"{30.5 / W:.6f}", f"{25.5 / H:.6f}", "2", f"{40 / W:.6f}", f"{32 / H:.6f}", "1"] + [
        "0.000000",
        "0.000000",
        "0",
    ]

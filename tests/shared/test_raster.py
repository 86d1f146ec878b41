"""Projection and silhouettes against analytic geometry, and the intrinsics against Blender's own projection."""

from __future__ import annotations

import json
import math
import os
import time

import numpy as np
import pytest
from blendset_testing import BLENDER_KINDS, run_blender

from shared.raster import K_from_blender, project_points, silhouette
from shared.sampling import look_at_matrix

HERE = os.path.dirname(os.path.abspath(__file__))


def _camera_above(z=5.0):
    m = np.eye(4)
    m[:3, 3] = (0.0, 0.0, z)  # Blender camera at +z looking down -Z onto the XY plane, +Y up in the image
    return m


SQUARE = np.array([[-0.5, -0.5, 0], [0.5, -0.5, 0], [0.5, 0.5, 0], [-0.5, 0.5, 0]], float)
QUAD = np.array([[0, 1, 2], [0, 2, 3]])


def test_intrinsics_fits():
    K = K_from_blender(50, 36, "AUTO", 320, 240)
    assert K[0, 0] == pytest.approx(50 / 36 * 320) and K[1, 1] == K[0, 0]
    assert (K[0, 2], K[1, 2]) == (160, 120)
    Kv = K_from_blender(50, 36, "AUTO", 240, 320)  # portrait: AUTO fits the sensor width to the height
    assert Kv[0, 0] == pytest.approx(50 / 36 * 320)
    Kh = K_from_blender(50, 36, "VERTICAL", 320, 240, sensor_height_mm=24)
    assert Kh[0, 0] == pytest.approx(50 / 24 * 240)
    Ks = K_from_blender(50, 36, "HORIZONTAL", 320, 240, shift_x=0.1, shift_y=-0.05)
    assert (Ks[0, 2], Ks[1, 2]) == pytest.approx((160 - 32, 120 - 16))
    with pytest.raises(ValueError, match="sensor_height_mm"):
        K_from_blender(50, 36, "VERTICAL", 320, 240)


def test_projection_of_a_square_and_its_silhouette():
    K = K_from_blender(50, 36, "AUTO", 320, 240)
    px, depth = project_points(K, _camera_above(), SQUARE)
    f = K[0, 0]
    side = f / 5.0
    assert np.allclose(depth, 5.0)
    # World +X is image right, world +Y is image up (smaller row).
    assert px[1, 0] - px[0, 0] == pytest.approx(side)
    assert px[3, 1] - px[0, 1] == pytest.approx(-side)
    assert px.mean(axis=0) == pytest.approx((160, 120))
    total, mask = silhouette(px, depth, QUAD, 320, 240)
    assert total == mask.sum()
    assert abs(total - side**2) <= 4 * side + 4  # pixel-centre sampling: at most one pixel row per edge
    ys, xs = np.nonzero(mask)
    assert xs.min() == math.ceil(px[0, 0] - 0.5) and xs.max() == math.floor(px[1, 0] - 0.5)


def test_truncation_counts_pixels_outside_the_frame():
    K = K_from_blender(50, 36, "AUTO", 320, 240)
    cam = _camera_above()
    shift = np.array([160 / K[0, 0] * 5.0, 0, 0])  # square centre on the right image border
    px, depth = project_points(K, cam, SQUARE + shift)
    total, mask = silhouette(px, depth, QUAD, 320, 240)
    assert mask.sum() / total == pytest.approx(0.5, abs=0.01)
    # Far larger than the frame: the count is exact up to 1M pixels, then estimated on a coarse grid.
    big = SQUARE * 40 + shift * 0
    px, depth = project_points(K, cam, big)
    total, mask = silhouette(px, depth, QUAD, 320, 240)
    expected = (K[0, 0] * 40 / 5.0) ** 2
    assert mask.all() and total == pytest.approx(expected, rel=0.01)


def test_triangles_behind_the_camera_are_clipped():
    K = K_from_blender(35, 36, "AUTO", 160, 120)
    cam = look_at_matrix((0, -1, 0.5), (0, 5, 0.5))  # horizontal view along +Y, ground plane below
    ground = np.array([[-50, -50, 0], [50, -50, 0], [50, 50, 0], [-50, 50, 0]], float)
    px, depth = project_points(K, cam, ground)
    assert (depth < 0).any() and (depth > 0).any()
    total, mask = silhouette(px, depth, QUAD, 160, 120)
    assert mask[-1].all() and not mask[0].any()  # the ground fills the bottom, never the top
    row = np.nonzero(mask[:, 80])[0].min()
    assert abs(row - 60) <= 2 + 60 * 0.5 / 50 * K[0, 0] / 60  # just below the horizon (the plane ends at 50 m)
    behind = ground + np.array([0, -60, 0])  # entirely behind the camera
    px, depth = project_points(K, cam, behind)
    assert silhouette(px, depth, QUAD, 160, 120)[0] == 0


def test_sphere_area_and_speed():
    n = 50
    th, ph = np.meshgrid(np.linspace(0, np.pi, n), np.linspace(0, 2 * np.pi, n + 1)[:-1], indexing="ij")
    verts = np.stack([np.sin(th) * np.cos(ph), np.sin(th) * np.sin(ph), np.cos(th)], -1).reshape(-1, 3)
    tris = []
    for i in range(n - 1):
        for j in range(n):
            a, b, c, d = i * n + j, i * n + (j + 1) % n, (i + 1) * n + j, (i + 1) * n + (j + 1) % n
            tris += [[a, b, d], [a, d, c]]
    tris = np.array(tris)
    assert len(tris) == 4900
    K = K_from_blender(50, 36, "AUTO", 320, 240)
    px, depth = project_points(K, _camera_above(5.0), verts)
    silhouette(px, depth, tris, 320, 240)
    t = time.process_time()  # CPU time of this process: stable on a shared machine
    total, mask = silhouette(px, depth, tris, 320, 240)
    elapsed = time.process_time() - t
    # Outline of a unit sphere seen from 5 m: a disc of angular radius asin(1/5).
    r = K[0, 0] * math.tan(math.asin(1 / 5))
    assert total == pytest.approx(math.pi * r * r, rel=0.02)
    assert elapsed < 0.05  # the brief's budget: ~5,000 triangles at 320x240 in < 50 ms (about 8 ms here)
    # A close-up that overflows the frame costs about the same (spans, not pixel tests).
    px, depth = project_points(K, _camera_above(1.6), verts)
    t = time.process_time()
    total, mask = silhouette(px, depth, tris, 320, 240)
    assert time.process_time() - t < 0.05
    assert mask.all() and total > 4 * mask.sum()


@pytest.mark.blender
@pytest.mark.parametrize("kind", BLENDER_KINDS)
def test_projection_matches_blender(kind, tmp_path):
    """K_from_blender + project_points + look_at_matrix against Blender's world_to_camera_view."""
    m = look_at_matrix((4.0, -3.0, 2.5), (0.2, 0.1, 0.3), roll_deg=15.0)
    out = tmp_path / "projection.json"
    spec = json.dumps({"world_from_camera": m.tolist()})
    run_blender(kind, os.path.join(HERE, "blender_projection.py"), [str(out), spec])
    cases = json.loads(out.read_text())
    assert len(cases) == 4
    for case in cases:
        w, h = case["size"]
        assert np.allclose(case["matrix"], m, atol=1e-6)
        K = K_from_blender(42.0, 36.0, case["fit"], w, h, *case["shift"], sensor_height_mm=20.0)
        px, depth = project_points(K, m, np.array(case["points"]))
        view = np.array(case["views"])
        # mathutils works in float32: compare relative to the size of the numbers.
        assert np.allclose(px[:, 0], view[:, 0] * w, rtol=1e-5, atol=1e-3), case["fit"]
        assert np.allclose(px[:, 1], (1 - view[:, 1]) * h, rtol=1e-5, atol=1e-3), case["fit"]
        assert np.allclose(depth, view[:, 2], rtol=1e-5)

"""Samplers: cameras look at their target within the configured ranges, placements never overlap, draws are
reproducible per frame."""

from __future__ import annotations

import math

import numpy as np
import pytest

from shared.config import CameraRandomizer, IntRange, LightRandomizer, MixtureComponent, Range
from shared.raster import K_from_blender, project_points
from shared.sampling import (
    PlacementError,
    SurfaceRect,
    camera_params,
    choose_component,
    closeup_distance,
    frame_rng,
    kelvin_to_rgb,
    light_params,
    look_at_matrix,
    place_on_surfaces,
    sample_camera,
    sample_free_pose,
    sample_int,
    sample_lights,
    sample_range,
)


def test_frame_rng_is_deterministic_and_frame_specific():
    a = frame_rng(7, 3).random(5)
    assert np.array_equal(a, frame_rng(7, 3).random(5))
    assert not np.array_equal(a, frame_rng(7, 4).random(5))
    assert not np.array_equal(a, frame_rng(8, 3).random(5))
    frame_rng(-1, 0).random()  # negative seeds are accepted
    with pytest.raises(ValueError):
        frame_rng(0, -1)


def test_ranges():
    rng = np.random.default_rng(0)
    u = [sample_range(rng, Range(2.0, 3.0)) for _ in range(2000)]
    assert 2.0 <= min(u) and max(u) <= 3.0 and abs(np.mean(u) - 2.5) < 0.03
    n = [sample_range(rng, Range(0.0, 4.0, "normal")) for _ in range(2000)]
    assert min(n) >= 0 and max(n) <= 4 and abs(np.std(n) - 1.0) < 0.1
    lg = np.log10([sample_range(rng, Range(0.01, 100.0, "loguniform")) for _ in range(4000)])
    assert abs(np.mean(lg < 0) - 0.5) < 0.05
    assert sample_range(rng, Range.const(1.5)) == 1.5
    ints = {sample_int(rng, IntRange(1, 3)) for _ in range(200)}
    assert ints == {1, 2, 3}


def test_camera_looks_at_target_within_ranges():
    cam = CameraRandomizer(
        mode="shell",
        distance=Range(3, 6),
        elevation_deg=Range(10, 60),
        azimuth_deg=Range(-90, 90),
        focal_length_mm=Range(30, 60),
        roll_deg=Range(-10, 10),
        look_at_jitter=0.2,
    )
    K = K_from_blender(35, 36, "AUTO", 320, 240)
    look_at = np.array([1.0, -2.0, 0.5])
    for frame in range(50):
        s = sample_camera(frame_rng(1, frame), cam, look_at)
        assert 3 <= s.distance <= 6 and 10 <= s.elevation_deg <= 60 and -90 <= s.azimuth_deg <= 90
        assert 30 <= s.focal_length_mm <= 60 and -10 <= s.roll_deg <= 10 and not s.is_closeup
        assert np.all(np.abs(np.array(s.target) - look_at) <= 0.2 + 1e-12)
        loc, tgt = np.array(s.location), np.array(s.target)
        assert np.linalg.norm(loc - tgt) == pytest.approx(s.distance)
        assert math.degrees(math.asin((loc - tgt)[2] / s.distance)) == pytest.approx(s.elevation_deg)
        m = look_at_matrix(s.location, s.target, s.roll_deg)
        px, depth = project_points(K, m, tgt[None])
        assert px[0] == pytest.approx((160, 120)) and depth[0] == pytest.approx(s.distance)
        params = camera_params(s)
        assert params["camera.distance"] == s.distance and params["camera.closeup"] == 0.0


def test_look_at_matrix_blender_convention():
    m = look_at_matrix((0, -5, 0), (0, 0, 0))
    assert np.allclose(m[:3, 2], (0, -1, 0))  # camera +Z points away from the target
    assert np.allclose(m[:3, 1], (0, 0, 1))  # +Y is world up
    assert np.allclose(m[:3, 0], (1, 0, 0))
    assert np.allclose(m[:3, :3].T @ m[:3, :3], np.eye(3)) and np.linalg.det(m[:3, :3]) == pytest.approx(1)
    down = look_at_matrix((0, 0, 5), (0, 0, 0))  # straight down: falls back to world +Y as up
    assert np.allclose(down[:3, 1], (0, 1, 0))
    rolled = look_at_matrix((0, -5, 0), (0, 0, 0), roll_deg=90)
    assert np.allclose(rolled[:3, 1], (-1, 0, 0))
    with pytest.raises(ValueError):
        look_at_matrix((1, 1, 1), (1, 1, 1))


def test_shell_is_uniform_on_the_sphere_patch():
    cam = CameraRandomizer(mode="shell", elevation_deg=Range(0, 90), azimuth_deg=Range(-180, 180))
    rng = np.random.default_rng(0)
    z = np.array([math.sin(math.radians(sample_camera(rng, cam, np.zeros(3)).elevation_deg)) for _ in range(4000)])
    # Uniform area on a hemisphere: the height is uniform in [0, 1] (Archimedes).
    hist = np.histogram(z, bins=4, range=(0, 1))[0] / len(z)
    assert np.all(np.abs(hist - 0.25) < 0.03)
    orbit = CameraRandomizer(mode="orbit", elevation_deg=Range(0, 90))
    e = np.array([sample_camera(rng, orbit, np.zeros(3)).elevation_deg for _ in range(4000)])
    assert abs(np.mean(e < 45) - 0.5) < 0.03  # orbit: uniform in the angle itself


def test_closeups():
    assert closeup_distance(0.5, 50, 24, 0.5) == pytest.approx(0.5 / math.sin(math.atan(0.5 * 24 / 100)))
    cam = CameraRandomizer(closeup_share=1.0, closeup_fill=Range(0.8, 0.8), focal_length_mm=Range(50, 50))
    s = sample_camera(np.random.default_rng(1), cam, np.zeros(3), closeup=((2.0, 0.0, 1.0), 0.3, 24.0))
    assert s.is_closeup and np.allclose(s.target, (2, 0, 1), atol=0.031)
    K = K_from_blender(50, 36, "AUTO", 360, 240)  # smaller side: height, whose sensor extent is 24 mm
    r_px = K[0, 0] * math.tan(math.asin(0.3 / s.distance))
    assert 2 * r_px / 240 == pytest.approx(0.8)
    never = CameraRandomizer(closeup_share=0.0)
    assert not sample_camera(np.random.default_rng(1), never, np.zeros(3), closeup=((0, 0, 0), 1, 24)).is_closeup
    with pytest.raises(ValueError):
        closeup_distance(0.0, 50, 24, 0.5)


def test_placement_never_overlaps_and_stays_on_surfaces():
    surfaces = [SurfaceRect(-1, 1, -1, 1, 0.75), SurfaceRect(2, 3, 0, 1, 0.4)]
    radii = [0.3, 0.1, 0.2, 0.15, 0.1, 0.25]
    for seed in range(20):
        poses = place_on_surfaces(np.random.default_rng(seed), radii, surfaces, 0.02, 200)
        assert len(poses) == len(radii)
        xy = np.array([p[:2] for p in poses])
        for i in range(len(radii)):
            assert poses[i][2] in (0.75, 0.4) and -math.pi <= poses[i][3] <= math.pi
            s = surfaces[0] if poses[i][2] == 0.75 else surfaces[1]
            assert s.xmin + radii[i] - 1e-9 <= xy[i, 0] <= s.xmax - radii[i] + 1e-9
            for j in range(i):
                assert np.linalg.norm(xy[i] - xy[j]) >= radii[i] + radii[j] + 0.02 - 1e-9
    with pytest.raises(PlacementError, match=r"could not place \d+ of 12 objects"):
        place_on_surfaces(np.random.default_rng(0), [0.4] * 12, surfaces[:1], 0.0, 50)


def test_free_pose_is_uniform_rotation():
    rng = np.random.default_rng(0)
    qs = np.array([sample_free_pose(rng, (0, 0, 0), (1, 2, 3))[1] for _ in range(3000)])
    assert np.allclose(np.linalg.norm(qs, axis=1), 1) and np.all(qs[:, 0] >= 0)
    # Uniform SO(3): the rotation angle 2*acos(w) has density (1 - cos t) / pi, mean pi/2 + 2/pi.
    angle = 2 * np.arccos(np.clip(qs[:, 0], -1, 1))
    assert abs(angle.mean() - (math.pi / 2 + 2 / math.pi)) < 0.05
    locs = np.array([sample_free_pose(rng, (0, 0, 0), (1, 2, 3))[0] for _ in range(500)])
    assert np.all(locs >= 0) and np.all(locs <= (1, 2, 3))


def test_lights_and_colour_temperature():
    cfg = LightRandomizer(count=IntRange(2, 4), types=("POINT", "SUN"), distance=Range(3, 4))
    lights = sample_lights(np.random.default_rng(0), cfg, (1, 1, 0))
    assert 2 <= len(lights) <= 4
    for light in lights:
        assert light.type in ("POINT", "SUN") and 200 <= light.energy <= 1000
        assert np.linalg.norm(np.array(light.location) - (1, 1, 0)) == pytest.approx(light.distance)
        assert max(light.color) == pytest.approx(1.0)
    p = light_params(lights)
    assert p["lights.count"] == len(lights) and 3000 <= p["lights.color_temperature_k"] <= 7500
    warm, white, cold = kelvin_to_rgb(2000), kelvin_to_rgb(6500), kelvin_to_rgb(20000)
    assert warm[0] == 1.0 and warm[2] < 0.3
    assert min(white) > 0.85
    assert cold[2] == 1.0 and cold[0] < 0.8
    assert light_params([])["lights.count"] == 0


def test_choose_component():
    rng = np.random.default_rng(0)
    assert choose_component(rng, ()) is None
    mix = (MixtureComponent(weight=3.0), MixtureComponent(weight=1.0))
    picks = [choose_component(rng, mix) for _ in range(4000)]
    assert abs(np.mean(np.array(picks) == 0) - 0.75) < 0.03

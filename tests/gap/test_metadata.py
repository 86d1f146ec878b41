"""Metadata with known answers: pixel statistics, box geometry, background similarity."""

from __future__ import annotations

import math

import numpy as np
import pytest

from shared.annotate import background_similarity
from trainer.gap import metadata as md
from trainer.gap.analyze import compare_metadata
from trainer.gap.metadata import compute_metadata, load_dataset

from .conftest import draw_dataset


def _scene(obj_rgb, bg_rgb, size=(60, 80)):
    img = np.empty((*size, 3), dtype=np.uint8)
    img[:] = bg_rgb
    img[20:40, 30:50] = obj_rgb
    mask = np.zeros(size, dtype=bool)
    mask[20:40, 30:50] = True
    return img, mask


def test_background_similarity_one_for_camouflage_low_for_contrast():
    same, mask = _scene((120, 90, 60), (120, 90, 60))
    assert background_similarity(same, mask) == pytest.approx(1.0)
    assert md.box_background_similarity(same, [30, 20, 20, 20]) == pytest.approx(1.0)
    # Pure red object on pure blue background: orthogonal colours, cosine 0.
    contrast, mask = _scene((220, 0, 0), (0, 0, 220))
    assert background_similarity(contrast, mask) == pytest.approx(0.0, abs=1e-9)
    assert md.box_background_similarity(contrast, [30, 20, 20, 20]) == pytest.approx(0.0, abs=1e-9)
    # Something in between stays in between and below the camouflaged case.
    mid, mask = _scene((200, 120, 40), (60, 120, 200))
    assert 0.2 < md.box_background_similarity(mid, [30, 20, 20, 20]) < 0.9


def test_box_proxy_is_undefined_for_a_box_covering_the_image():
    img, _ = _scene((10, 10, 10), (10, 10, 10))
    assert math.isnan(md.box_background_similarity(img, [0, 0, 80, 60]))


def test_pixel_stats_known_values():
    flat = np.full((40, 40, 3), 128, dtype=np.uint8)
    s = md.pixel_stats(flat, "x")
    assert s["x_brightness"] == pytest.approx(128 / 255)
    assert s["x_contrast"] == 0.0 and s["x_entropy"] == 0.0 and s["x_sharpness"] == 0.0
    half = flat.copy()
    half[:, :20] = 0
    assert md.pixel_stats(half, "x")["x_entropy"] == pytest.approx(1.0)  # two equally likely levels: 1 bit


def test_blur_and_sharpness_order_a_blurred_copy_below_the_original():
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(0)
    sharp = (rng.random((64, 64)) > 0.5).astype(np.float64) * 255
    blurred = gaussian_filter(sharp, 2.0)
    assert md.laplacian_variance(blurred) < 0.1 * md.laplacian_variance(sharp)
    assert md.blur_crete(blurred) > md.blur_crete(sharp) + 0.2


def test_box_metadata_from_drawn_dataset(tmp_path, rng):
    root = draw_dataset(str(tmp_path / "d"), [0.5, 0.25], rng, center_y=[0.5, 0.25], attributes=True)
    meta = compute_metadata(load_dataset(root, "synthetic"), "synthetic")
    b = meta.boxes
    assert meta.n_images == 2 and meta.n_boxes == 2
    np.testing.assert_allclose(b["box_h"], [36, 18])
    np.testing.assert_allclose(b["box_center_y"], [0.5, 0.25], atol=1 / 72)
    np.testing.assert_allclose(b["box_area"], b["box_w"] * b["box_h"] / (96 * 72))
    np.testing.assert_allclose(b["distance"], [100 / 36, 100 / 18])
    assert list(b["shape"]) == ["Cube", "Cube"]  # ".000" / ".001" copy suffixes stripped
    np.testing.assert_allclose(b["occlusion_ad2"], b["visible_pixels"] * b["depth_median"] ** 2)


def test_compare_metadata_ranks_the_planted_gap_first(tmp_path, rng):
    syn = draw_dataset(str(tmp_path / "s"), list(rng.uniform(0.1, 0.2, 40)), rng)
    real = draw_dataset(str(tmp_path / "r"), list(rng.uniform(0.5, 0.6, 40)), rng)
    meta_s = compute_metadata(load_dataset(syn, "synthetic"), "synthetic")
    rows = compare_metadata(meta_s, compute_metadata(load_dataset(real, "real"), "real"))
    box_rows = [r for r in rows if r["level"] == "box"]
    assert box_rows[0]["name"] == "box_area"
    assert box_rows[0]["bhattacharyya"] > 3
    centre_y = next(r for r in rows if r["name"] == "box_center_y")
    assert centre_y["bhattacharyya"] < 0.5  # position was drawn from the same range on both sides


def test_mismatched_classes_name_the_missing_class():
    from trainer.gap import GapError

    with pytest.raises(GapError, match=r"mismatched classes: the real set has \['bear'\]"):
        md.check_classes({0: "cube"}, {0: "cube", 1: "bear"})
    assert md.check_classes({0: "cube", 1: "cone"}, {5: "cube"}) == [
        "synthetic-only classes (not in the real set): ['cone']"
    ]

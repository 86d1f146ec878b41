"""The preview overlay (pure numpy): mask tint, box outline and class name land where the annotation says."""

from __future__ import annotations

import importlib.util
import os

import numpy as np
from blendset_testing import ROOT

# blender_addon/__init__.py imports nothing heavy, but load the module by path so no package import runs here
_spec = importlib.util.spec_from_file_location("blendset_overlay", os.path.join(ROOT, "blender_addon", "overlay.py"))
overlay = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(overlay)


def _scene() -> tuple[np.ndarray, np.ndarray, dict]:
    rgb = np.full((120, 160, 3), 0.5, dtype=np.float32)
    inst = np.zeros((120, 160), dtype=np.uint16)
    inst[40:80, 30:70] = 7  # a 40x40 square, instance 7
    coco = {
        "categories": [{"id": 0, "name": "cube"}],
        "annotations": [{"category_id": 0, "bbox": [30, 40, 40, 40], "attributes": {"instance_id": 7}}],
    }
    return rgb, inst, coco


def test_tint_box_and_name() -> None:
    rgb, inst, coco = _scene()
    out = overlay.compose(rgb, inst, coco, {"cube": (1.0, 0.0, 0.0)})
    assert out.shape == (120, 160, 4) and out.dtype == np.float32
    red = np.array([1.0, 0.0, 0.0])
    # inside the mask, away from the outline: the tint mixes the class colour in
    expected = 0.5 * (1 - overlay.TINT) + red * overlay.TINT
    np.testing.assert_allclose(out[60, 50, :3], expected, atol=1e-6)
    # the outline sits on the box's border pixels, in the class colour
    for y, x in ((40, 50), (79, 50), (60, 30), (60, 69)):
        np.testing.assert_allclose(out[y, x, :3], red)
    # outside the box and the name plate the image is untouched
    np.testing.assert_allclose(out[100, 120, :3], 0.5)
    # the name is written above the box: class-coloured glyph pixels in the rows just above it
    plate = out[40 - 7 : 40, 30:70, :3]
    assert (np.abs(plate - red).max(axis=2) < 1e-6).sum() >= 10


def test_text_mask_spells_known_glyphs() -> None:
    m = overlay.text_mask("i1", scale=2)
    assert m.shape == (10, 2 * (3 + 1 + 3))
    np.testing.assert_array_equal(m[::2, ::2][:, :3], overlay._FONT["I"])
    assert overlay.text_mask("é").sum() == overlay._FONT["?"].sum()  # unknown characters are visible, not dropped


def test_palette_when_config_has_no_colour() -> None:
    rgb, inst, coco = _scene()
    out = overlay.compose(rgb, inst, coco)
    np.testing.assert_allclose(out[40, 50, :3], overlay.PALETTE[0])


def test_keypoints_visible_hidden_and_skeleton() -> None:
    """Visible keypoints are filled squares, hidden ones hollow, each in its own colour; v = 0 draws nothing;
    the skeleton joins labelled keypoints in the class colour."""
    rgb, inst, coco = _scene()
    coco["categories"][0].update(keypoints=["a", "b", "c"], skeleton=[[1, 2], [2, 3]])
    coco["annotations"][0]["keypoints"] = [40.5, 50.5, 2, 60.5, 50.5, 1, 0, 0, 0]
    out = overlay.compose(rgb, inst, coco, {"cube": (1.0, 0.0, 0.0)})
    np.testing.assert_allclose(out[50, 40, :3], overlay.KEYPOINT_VISIBLE)  # filled: the centre pixel too
    np.testing.assert_allclose(out[48, 38, :3], overlay.KEYPOINT_VISIBLE)
    np.testing.assert_allclose(out[48, 58, :3], overlay.KEYPOINT_HIDDEN)  # hollow: outline only
    assert np.abs(out[50, 60, :3] - overlay.KEYPOINT_HIDDEN).max() > 0.3
    np.testing.assert_allclose(out[50, 50, :3], [1.0, 0.0, 0.0])  # the skeleton between them
    np.testing.assert_allclose(out[1, 1, :3], 0.5)  # v = 0 (x = y = 0): nothing drawn at the origin

"""The numpy EXR reader on files Blender wrote: bpy 4.5 (single-part multilayer) and, when a Blender binary is
available, Blender 5.x (one part per pass). Expected values come from the geometry of the scene in
exr_scene.py (a 2 m square, pass index 7, 5 m in front of a 50 mm / 36 mm camera) and from Blender's own
reading of the same render saved as a plain EXR."""

from __future__ import annotations

import os

import numpy as np
import pytest
from blendset_testing import BLENDER_KINDS, run_blender

from shared import exr as exr_module
from shared.exr import ExrError, exr_header, read_exr
from shared.raster import K_from_blender, project_points, silhouette

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "exr_scene.py")
READABLE = ["NONE_32", "NONE_16", "ZIP_16", "ZIPS_32", "RLE_16"]


def _expected_mask() -> np.ndarray:
    K = K_from_blender(50.0, 36.0, "AUTO", 16, 12)
    cam = np.eye(4)
    cam[:3, 3] = (0, 0, 5)
    px, depth = project_points(K, cam, np.array([[-1, -1, 0], [1, -1, 0], [1, 1, 0], [-1, 1, 0]], float))
    return silhouette(px, depth, np.array([[0, 1, 2], [0, 2, 3]]), 16, 12)[1]


def _check(out_dir, index_name: str, monkeypatch) -> None:
    mask = _expected_mask()
    for stem in READABLE:
        path = os.path.join(out_dir, stem + ".exr")
        channels = read_exr(path)
        assert exr_header(path)[0]["compression"] == stem.split("_")[0]
        depth = channels["ViewLayer.Depth.Z"]
        index = channels[f"ViewLayer.{index_name}.X"]
        assert depth.dtype == np.float32 and depth.shape == (12, 16)
        assert np.array_equal(index == 7, mask), stem
        assert np.allclose(depth[mask], 5.0, rtol=1e-3)
        assert np.all(depth[~mask] > 1e6)  # no surface: Blender writes a huge distance
        # Combined equals Blender's reading of the same render (bpy pixels start at the bottom row).
        ref = np.load(os.path.join(out_dir, stem + ".bpy.npy"))[::-1]
        rgba = np.stack([channels[f"ViewLayer.Combined.{c}"] for c in "RGBA"], axis=-1)
        assert np.allclose(rgba, ref, atol=1e-6), stem
        plain = read_exr(os.path.join(out_dir, stem + ".single.exr"))
        assert np.allclose(np.stack([plain[c] for c in "RGBA"], -1), ref, atol=1e-6)
    # The one-view fast path for uncompressed files and the chunk-by-chunk reader agree.
    fast = {stem: read_exr(os.path.join(out_dir, stem + ".exr")) for stem in ("NONE_32", "NONE_16")}
    with monkeypatch.context() as m:
        m.setattr(exr_module, "_read_uncompressed_fast", lambda *a: None)
        for stem, channels in fast.items():
            slow = read_exr(os.path.join(out_dir, stem + ".exr"))
            assert slow.keys() == channels.keys()
            assert all(np.array_equal(slow[k], channels[k]) for k in slow)
    half = exr_header(os.path.join(out_dir, "NONE_16.exr"))
    assert any(t == "HALF" for p in half for t in p["channels"].values())
    with pytest.raises(ExrError, match="compression PIZ"):
        read_exr(os.path.join(out_dir, "PIZ_16.exr"))


@pytest.mark.blender
@pytest.mark.parametrize("kind", BLENDER_KINDS)
def test_exr_written_by_blender(kind, tmp_path, monkeypatch):
    proc = run_blender(kind, SCRIPT, [str(tmp_path)])
    assert "EXR_SCENE_DONE" in proc.stdout
    parts = exr_header(str(tmp_path / "NONE_32.exr"))
    names = {c for p in parts for c in p["channels"]}
    # Blender 4 writes one part and calls the object index pass "IndexOB"; Blender 5 writes one part per pass
    # and calls it "Object Index".
    _check(tmp_path, "IndexOB" if "ViewLayer.IndexOB.X" in names else "Object Index", monkeypatch)
    if "EXR_SCENE_DONE 5" in proc.stdout:
        assert len(parts) > 1  # the multi-part path was exercised


def test_errors_name_the_problem(tmp_path):
    p = tmp_path / "x.exr"
    p.write_bytes(b"not an exr at all")
    with pytest.raises(ExrError, match="not an OpenEXR"):
        read_exr(str(p))
    p.write_bytes(b"\x76\x2f\x31\x01\x02\x02\x00\x00")  # tiled flag
    with pytest.raises(ExrError, match="tiled"):
        read_exr(str(p))
    p.write_bytes(b"\x76\x2f\x31\x01\x02\x00\x00\x00channels\x00chlist\x00")
    with pytest.raises(ExrError, match="truncated"):
        read_exr(str(p))

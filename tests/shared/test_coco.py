"""COCO RLE against pycocotools, polygons rasterised back by pycocotools, building and atomic writing."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from pycocotools import mask as mask_utils

from shared.coco import (
    CocoError,
    build_coco,
    decode_rle,
    encode_instance_map,
    encode_rle,
    mask_to_polygons,
    rle_area,
    write_json_atomic,
)


def _ref(mask: np.ndarray) -> dict:
    r = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": list(r["size"]), "counts": r["counts"].decode()}


masks = st.tuples(st.integers(1, 40), st.integers(1, 40)).flatmap(
    lambda hw: arrays(np.bool_, hw, elements=st.booleans())
)


@settings(max_examples=300, deadline=None)
@given(masks)
def test_rle_is_byte_identical_to_pycocotools(mask):
    ours = encode_rle(mask)
    assert ours == _ref(mask)
    assert np.array_equal(decode_rle(ours), mask)
    assert np.array_equal(mask_utils.decode(ours).astype(bool), mask)
    assert rle_area(ours) == int(mask.sum())


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 60), st.integers(1, 60), st.integers(0, 2**32 - 1))
def test_rle_large_runs_and_blocks(h, w, seed):
    rng = np.random.default_rng(seed)
    mask = np.zeros((h, w), bool)
    for _ in range(rng.integers(0, 4)):
        y0, x0 = rng.integers(0, h), rng.integers(0, w)
        mask[y0 : y0 + rng.integers(1, h + 1), x0 : x0 + rng.integers(1, w + 1)] = True
    assert encode_rle(mask) == _ref(mask)


def test_rle_full_hd_sizes_with_long_runs():
    mask = np.zeros((1080, 1920), bool)
    mask[5:1000, 3:1900] = True
    mask[:, 1919] = True
    assert encode_rle(mask) == _ref(mask)
    assert encode_rle(np.ones((300, 400), bool)) == _ref(np.ones((300, 400), bool))
    assert encode_rle(np.zeros((300, 400), bool)) == _ref(np.zeros((300, 400), bool))


def test_decode_accepts_uncompressed_and_bytes_and_rejects_bad_counts():
    mask = np.zeros((4, 5), bool)
    mask[1:3, 2:4] = True
    ref = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    assert np.array_equal(decode_rle({"size": [4, 5], "counts": ref["counts"]}), mask)
    counts = [9, 2, 2, 2, 5]  # columns 0-1 and row 0 of column 2 empty, then rows 1-2 of columns 2 and 3
    assert np.array_equal(decode_rle({"size": [4, 5], "counts": counts}), mask)
    with pytest.raises(ValueError, match="sum"):
        decode_rle({"size": [4, 5], "counts": [3, 2]})
    with pytest.raises(ValueError):
        decode_rle({"counts": "abc"})


@settings(max_examples=60, deadline=None)
@given(arrays(np.uint16, st.tuples(st.integers(1, 30), st.integers(1, 30)), elements=st.integers(0, 6)))
def test_instance_map_encoding_matches_per_mask(im):
    ids = [1, 2, 3, 4, 5, 6, 300]
    enc = encode_instance_map(im, ids)
    assert sorted(enc) == ids
    for i in ids:
        assert enc[i] == _ref(im == i)


def test_instance_map_over_255_instances():
    im = np.arange(40 * 30, dtype=np.uint16).reshape(40, 30) % 700
    enc = encode_instance_map(im, [256, 699])
    assert enc[256] == _ref(im == 256)
    assert enc[699] == _ref(im == 699)


def _iou_via_pycocotools(polys, mask):
    h, w = mask.shape
    dec = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(polys, h, w))).astype(bool)
    return (dec & mask).sum() / (dec | mask).sum()


def test_polygons_rasterise_back_to_the_mask():
    yy, xx = np.mgrid[0:80, 0:100]
    shapes = {
        "rectangle": (yy >= 10) & (yy < 40) & (xx >= 20) & (xx < 70),
        "disc": (yy - 40) ** 2 + (xx - 50) ** 2 <= 25**2,
        "triangle": (xx >= 10) & (yy <= 70) & (yy - 10 >= (xx - 10) * 0.8),
        "two blobs": ((yy - 20) ** 2 + (xx - 20) ** 2 <= 100) | ((yy - 60) ** 2 + (xx - 75) ** 2 <= 150),
    }
    for name, m in shapes.items():
        polys = mask_to_polygons(m)
        assert polys, name
        assert all(len(p) >= 6 and len(p) % 2 == 0 for p in polys)
        assert _iou_via_pycocotools(polys, m) > 0.9, name
    assert len(mask_to_polygons(shapes["two blobs"])) == 2
    # A rectangle needs exactly its four corners.
    assert mask_to_polygons(shapes["rectangle"]) == [[20.0, 10.0, 70.0, 10.0, 70.0, 40.0, 20.0, 40.0]]


def test_polygons_fill_holes_and_handle_edges():
    m = np.zeros((20, 20), bool)
    m[2:18, 2:18] = True
    m[8:12, 8:12] = False
    polys = mask_to_polygons(m)
    assert len(polys) == 1  # the hole is an inner outline: COCO polygons cannot hold it
    full = m.copy()
    full[8:12, 8:12] = True
    assert _iou_via_pycocotools(polys, full) > 0.95
    assert mask_to_polygons(np.zeros((5, 5), bool)) == []
    edge = np.ones((6, 7), bool)
    assert mask_to_polygons(edge) == [[0.0, 0.0, 7.0, 0.0, 7.0, 6.0, 0.0, 6.0]]
    diag = np.eye(4, dtype=bool)  # pixels touching only at corners: four separate squares
    assert len(mask_to_polygons(diag)) == 4


def _record(frame, n):
    return {
        "image": {"id": frame + 1, "file_name": f"{frame:06d}.png", "width": 4, "height": 3},
        "annotations": [
            {"id": (frame + 1) * 10_000 + k, "image_id": frame + 1, "category_id": 0, "bbox": [0, 0, 1, 1]}
            for k in range(n)
        ],
    }


def test_build_coco_sorted_and_deterministic():
    recs = [_record(2, 1), _record(0, 2), _record(1, 0)]
    cats = [{"id": 3, "name": "b"}, {"id": 0, "name": "a"}]
    a = build_coco(recs, cats, {"description": "x"})
    b = build_coco(list(reversed(recs)), list(reversed(cats)), {"description": "x"})
    assert json.dumps(a) == json.dumps(b)
    assert [i["id"] for i in a["images"]] == [1, 2, 3]
    assert [c["id"] for c in a["categories"]] == [0, 3]
    assert [x["id"] for x in a["annotations"]] == [10_000, 10_001, 30_000]
    with pytest.raises(CocoError, match="image id 1"):
        build_coco([_record(0, 0), _record(0, 0)], cats, {})


def test_write_json_atomic_replaces_and_leaves_no_temp(tmp_path):
    p = tmp_path / "a.json"
    write_json_atomic(str(p), {"a": 1})
    write_json_atomic(str(p), {"a": [1, 2]}, indent=2)
    assert json.loads(p.read_text()) == {"a": [1, 2]}
    with pytest.raises(ValueError):
        write_json_atomic(str(p), {"a": float("nan")})
    assert json.loads(p.read_text()) == {"a": [1, 2]}  # the failed write left the old file intact
    assert os.listdir(tmp_path) == ["a.json"]
    umask = os.umask(0o022)
    os.umask(umask)
    assert p.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's private 0600


def test_batched_count_strings_match_single_ones():
    from shared.coco import _counts_to_string, _counts_to_strings

    many = [np.array([], np.int64), np.array([5]), np.array([0, 3, 2, 70000, 1, 2, 3]), np.array([1, 1, 1, 1])]
    assert _counts_to_strings(many) == [_counts_to_string(c) for c in many]
    assert _counts_to_strings(many)[0] == "" and _counts_to_strings([]) == []

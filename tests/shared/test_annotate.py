"""annotate_frame on hand-built instance maps, and the gap thesis's background similarity on known images."""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from shared.annotate import InstanceInfo, annotate_frame, background_similarity
from shared.config import Filters
from shared.layout import annotation_id, image_id


def _info(iid, cls, total, inframe, name=None):
    return InstanceInfo(iid, cls, f"class{cls}", name or f"obj{iid}", total, inframe, 3.5)


def _scene():
    """60x80 frame: square A (id 1, class 0) half covered by B (id 2); C (id 3) fully hidden; D (id 4) cut by
    the right image border; E (id 5) tiny."""
    im = np.zeros((60, 80), np.uint16)
    im[10:30, 10:30] = 1  # A: 20x20 = 400 px unoccluded
    im[10:30, 20:40] = 2  # B covers A's right half
    im[40:50, 60:80] = 4  # D: 10x20 visible, silhouette 10x40 on the unbounded plane
    im[55, 5:8] = 5  # E: 3 px
    depth = np.full(im.shape, 10.0, np.float32)
    depth[im == 1] = 2.0
    depth[im == 2] = 1.0
    infos = [
        _info(1, 0, 400, 400, "A"),
        _info(2, 1, 400, 400, "B"),
        _info(3, 1, 100, 100, "C"),
        _info(4, 2, 400, 200, "D"),
        _info(5, 2, 3, 3, "E"),
    ]
    return im, depth, infos


def test_boxes_areas_occlusion_truncation_and_ids():
    im, depth, infos = _scene()
    anns, dropped = annotate_frame(im, infos, depth, None, Filters(min_visible_pixels=0), frame=4)
    by_obj = {a["attributes"]["object"]: a for a in anns}
    assert sorted(by_obj) == ["A", "B", "D", "E"]
    a = by_obj["A"]
    assert a["bbox"] == [10, 10, 10, 20] and a["area"] == 200 and a["iscrowd"] == 0
    assert a["category_id"] == 0  # class id 0 is kept
    assert a["attributes"]["occlusion"] == pytest.approx(0.5)
    assert a["attributes"]["truncation"] == 0.0
    assert a["attributes"]["depth_median"] == 2.0
    assert a["attributes"]["unoccluded_pixels"] == 400
    assert a["attributes"]["distance"] == 3.5
    assert by_obj["B"]["bbox"] == [20, 10, 20, 20] and by_obj["B"]["attributes"]["occlusion"] == 0.0
    d = by_obj["D"]["attributes"]
    assert by_obj["D"]["bbox"] == [60, 40, 20, 10]
    assert d["truncation"] == pytest.approx(0.5) and d["occlusion"] == 0.0
    assert by_obj["E"]["bbox"] == [5, 55, 3, 1]
    assert [x["id"] for x in anns] == [annotation_id(4, k) for k in range(4)]
    assert all(x["image_id"] == image_id(4) for x in anns)
    assert dropped == [
        {
            "object": "C",
            "class": "class1",
            "class_id": 1,
            "instance_id": 3,
            "reason": "not visible",
            "visible_pixels": 0,
            "occlusion": 1.0,
        }
    ]
    # The RLE is exactly the visible mask, as pycocotools decodes it.
    for x in anns:
        dec = mask_utils.decode(x["segmentation"]).astype(bool)
        assert np.array_equal(dec, im == x["attributes"]["instance_id"])
        assert int(mask_utils.area(x["segmentation"])) == x["area"]


def test_filters_drop_with_reasons():
    im, depth, infos = _scene()
    anns, dropped = annotate_frame(im, infos, depth, None, Filters(min_visible_pixels=50, max_occlusion=0.4), 0)
    assert sorted(a["attributes"]["object"] for a in anns) == ["B", "D"]
    reasons = {d["object"]: d["reason"] for d in dropped}
    assert reasons["C"] == "not visible"
    assert reasons["E"].startswith("too few visible pixels (3 < 50)")
    assert reasons["A"].startswith("too occluded (0.500 > 0.4)")
    assert [a["id"] for a in anns] == [annotation_id(0, 0), annotation_id(0, 1)]


def test_box_of_a_run_crossing_columns_and_single_pixels():
    im = np.zeros((5, 6), np.uint16)
    im[3:5, 1] = 7
    im[0:2, 2] = 7  # Fortran-order run from the bottom of column 1 into the top of column 2
    im[2, 5] = 8
    anns, _ = annotate_frame(im, [_info(7, 1, 4, 4), _info(8, 1, 1, 1)], None, None, Filters(min_visible_pixels=0), 0)
    assert anns[0]["bbox"] == [1, 0, 2, 5]
    assert anns[1]["bbox"] == [5, 2, 1, 1] and anns[1]["area"] == 1
    assert anns[0]["attributes"]["depth_median"] is None


def test_unknown_ids_in_map_are_ignored_and_bad_input_raises():
    im = np.zeros((10, 10), np.uint16)
    im[2:4, 2:4] = 9  # a distractor: not in the instance list
    anns, dropped = annotate_frame(im, [], None, None, Filters(), 0)
    assert anns == [] and dropped == []
    with pytest.raises(ValueError, match="unique"):
        annotate_frame(im, [_info(1, 0, 1, 1), _info(1, 0, 1, 1)], None, None, Filters(), 0)
    with pytest.raises(ValueError, match="size"):
        annotate_frame(im, [], np.zeros((3, 3)), None, Filters(), 0)


def test_polygons_on_request_match_the_mask():
    im, depth, infos = _scene()
    anns, _ = annotate_frame(im, infos, depth, None, Filters(min_visible_pixels=0), 0, polygons=True)
    for a in anns:
        m = im == a["attributes"]["instance_id"]
        rles = mask_utils.frPyObjects(a["polygons"], *m.shape)
        dec = mask_utils.decode(mask_utils.merge(rles)).astype(bool)
        assert (dec & m).sum() / (dec | m).sum() > 0.9


def test_more_than_255_instances():
    im = (np.arange(40 * 40).reshape(40, 40) // 4 + 1).astype(np.uint16)  # 400 instances of 4 px
    infos = [_info(i, i % 3, 4, 4) for i in range(1, 401)]
    anns, dropped = annotate_frame(im, infos, None, None, Filters(min_visible_pixels=0), 0)
    assert len(anns) == 400 and not dropped
    assert anns[-1]["attributes"]["instance_id"] == 400 and anns[-1]["area"] == 4


def _square_image(obj_rgb, bg_rgb, size=40):
    img = np.empty((size, size, 3), np.uint8)
    img[:] = bg_rgb
    m = np.zeros((size, size), bool)
    m[10:30, 10:30] = True
    img[m] = obj_rgb
    return img, m


def test_background_similarity_known_cases():
    img, m = _square_image((200, 30, 30), (200, 30, 30))
    assert background_similarity(img, m) == pytest.approx(1.0)
    img, m = _square_image((100, 15, 15), (200, 30, 30))  # same hue, darker: a cosine ignores brightness
    assert background_similarity(img, m) == pytest.approx(1.0)
    img, m = _square_image((255, 0, 0), (0, 255, 0))
    assert background_similarity(img, m) == pytest.approx(0.0)
    img, m = _square_image((230, 60, 40), (40, 70, 230))
    contrast = background_similarity(img, m)
    assert 0.2 < contrast < 0.6
    # Float images give the same value as their uint8 originals.
    assert background_similarity(img.astype(np.float32) / 255.0, m) == pytest.approx(contrast, rel=1e-6)
    # Only the boundary matters: changing the far background does not change the value.
    img2 = img.copy()
    img2[:5] = (0, 0, 0)
    assert background_similarity(img2, m) == pytest.approx(contrast)
    assert background_similarity(img, np.zeros_like(m)) is None
    assert background_similarity(img, np.ones_like(m)) is None


def test_background_similarity_black_object_and_in_annotations():
    img, m = _square_image((0, 0, 0), (120, 120, 120))
    assert background_similarity(img, m) == 0.0
    img, m = _square_image((0, 0, 0), (0, 0, 0))
    assert background_similarity(img, m) == 1.0
    img, m = _square_image((255, 0, 0), (0, 255, 0))
    im = m.astype(np.uint16)
    anns, _ = annotate_frame(im, [_info(1, 0, 400, 400)], None, img, Filters(), 0)
    assert anns[0]["attributes"]["background_similarity"] == pytest.approx(0.0)

"""Metric code against answers known by construction."""

import numpy as np
import pytest

from trainer.evaluation.metrics import (
    attribute_value,
    bin_edges,
    bin_of,
    bootstrap_class_accuracy,
    box_iou_xywh,
    coco_evaluate,
    confusion_matrix,
    match_detections,
    parse_attribute_spec,
    precision_recall_f1,
    worst_first,
)

CATS = [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]


def _gt(boxes_per_image):
    images, anns = [], []
    for i, boxes in enumerate(boxes_per_image):
        images.append({"id": i + 1, "width": 400, "height": 400, "file_name": f"{i}.png"})
        for k, (cat, box) in enumerate(boxes):
            anns.append(
                {
                    "id": (i + 1) * 100 + k,
                    "image_id": i + 1,
                    "category_id": cat,
                    "bbox": list(box),
                    "area": box[2] * box[3],
                    "iscrowd": 0,
                }
            )
    return {"images": images, "annotations": anns, "categories": CATS}


GT = _gt([[(1, (10, 10, 100, 100)), (2, (200, 200, 100, 100))], [(1, (50, 60, 100, 100))]])


def _perfect():
    return [
        {"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 0.9}
        for a in GT["annotations"]
    ]


def test_perfect_predictions_give_map_one():
    ev = coco_evaluate(GT, _perfect())
    assert ev["summary"]["mAP"] == pytest.approx(1.0)
    assert ev["summary"]["AP50"] == pytest.approx(1.0)
    assert [r["AP"] for r in ev["per_class"]] == pytest.approx([1.0, 1.0])


def test_shifted_boxes_pass_only_the_iou_thresholds_below_their_iou():
    # A 100 px box shifted by 23 px: IoU = 77 / 123 = 0.626, so it matches at 0.50, 0.55, 0.60 of the ten COCO
    # thresholds 0.50:0.95 and at no higher one -> AP50 = 1, AP75 = 0, mAP = 3/10.
    dets = [dict(d, bbox=[d["bbox"][0] + 23, d["bbox"][1], 100, 100]) for d in _perfect()]
    assert box_iou_xywh([dets[0]["bbox"]], [GT["annotations"][0]["bbox"]])[0, 0] == pytest.approx(77 / 123)
    s = coco_evaluate(GT, dets)["summary"]
    assert s["AP50"] == pytest.approx(1.0)
    assert s["AP75"] == pytest.approx(0.0)
    assert s["mAP"] == pytest.approx(0.3)


def test_missing_class_gets_zero_ap_and_shows_in_table():
    dets = [d for d in _perfect() if d["category_id"] == 1]
    ev = coco_evaluate(GT, dets)
    by_name = {r["name"]: r for r in ev["per_class"]}
    assert by_name["a"]["AP"] == pytest.approx(1.0)
    assert by_name["b"]["AP"] == pytest.approx(0.0)
    assert ev["summary"]["mAP"] == pytest.approx(0.5)
    assert worst_first(ev["per_class"], "AP")[0]["name"] == "b"


def test_no_detections_is_zero_not_a_crash():
    ev = coco_evaluate(GT, [])
    assert ev["summary"]["mAP"] == 0.0


def test_precision_recall_f1_and_confusion_from_matching():
    dets = _perfect()
    dets[1] = dict(dets[1], category_id=1)  # the class-b object found as class a
    dets.append({"image_id": 2, "category_id": 2, "bbox": [300, 300, 50, 50], "score": 0.8})  # on nothing
    dets.append({"image_id": 2, "category_id": 1, "bbox": [50, 60, 100, 100], "score": 0.1})  # below threshold
    m = match_detections(GT, dets, iou_threshold=0.5, score_threshold=0.5)
    assert m["tp"].tolist() == [2, 0] and m["fp"].tolist() == [1, 1] and m["fn"].tolist() == [0, 1]
    prf = precision_recall_f1(m["tp"].sum(), m["fp"].sum(), m["fn"].sum())
    assert prf["precision"] == pytest.approx(2 / 4) and prf["recall"] == pytest.approx(2 / 3)
    assert prf["f1"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    # rows true (a, b, background), columns predicted
    assert m["confusion"].tolist() == [[2, 0, 0], [1, 0, 0], [0, 1, 0]]
    assert m["matched"] == {100: True, 101: False, 200: True}


def test_bootstrap_interval_covers_the_true_accuracy_about_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    p, n, trials = 0.7, 200, 300
    covered = 0
    for t in range(trials):
        correct = rng.random(n) < p
        y_true = np.zeros(n, int)
        y_pred = np.where(correct, 0, 1)
        row = bootstrap_class_accuracy(y_true, y_pred, 2, n_resamples=500, seed=t)[0]
        covered += row["ci_low"] <= p <= row["ci_high"]
    assert 0.90 <= covered / trials <= 0.985


def test_bootstrap_resample_size_is_a_parameter():
    y_true = [0] * 1000
    y_pred = [0] * 700 + [1] * 300
    small = bootstrap_class_accuracy(y_true, y_pred, 2, n_resamples=500, resample_size=50, seed=1)[0]
    large = bootstrap_class_accuracy(y_true, y_pred, 2, n_resamples=500, resample_size=1000, seed=1)[0]
    assert small["accuracy"] == large["accuracy"] == pytest.approx(0.7)
    assert (small["ci_high"] - small["ci_low"]) > 2.5 * (large["ci_high"] - large["ci_low"])
    assert bootstrap_class_accuracy(y_true, y_pred, 2)[1]["accuracy"] is None  # class 1 has no samples


def test_confusion_matrix_counts():
    assert confusion_matrix([0, 0, 1, 2], [0, 1, 1, 0], 3).tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 0]]


def test_attribute_lookup_and_bins():
    ann = {"attributes": {"occlusion": 0.4}, "area": 10}
    image = {"blendset": {"params": {"camera.elevation_deg": 35.0}}, "width": 64}
    assert attribute_value("occlusion", ann, image) == 0.4
    assert attribute_value("area", ann, image) == 10
    assert attribute_value("camera.elevation_deg", ann, image) == 35.0
    assert attribute_value("blendset.params.camera.elevation_deg", None, image) == 35.0
    assert attribute_value("nothing", ann, image) is None
    assert parse_attribute_spec("occlusion") == ("occlusion", 5)
    assert parse_attribute_spec("occlusion:0,0.5,1") == ("occlusion", [0.0, 0.5, 1.0])
    with pytest.raises(ValueError):
        parse_attribute_spec("occlusion:x")
    edges = bin_edges([0.0, 1.0], 4)
    assert [bin_of(v, edges) for v in (0.0, 0.3, 0.99, 1.0, 1.5)] == [0, 1, 3, 3, None]

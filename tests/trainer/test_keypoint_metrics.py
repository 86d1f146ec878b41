"""Keypoint metrics on hand-made COCO dicts whose answers are worked out by hand in each test."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from trainer.evaluation.keypoints import (
    BOARD_SIGMA,
    KeypointMetricError,
    board_pose_errors,
    keypoint_errors,
    match_results,
    object_keypoint_similarity,
    oks_ap,
)

GT_POINTS = [(10.0, 10.0), (50.0, 10.0), (10.0, 50.0)]
SIGMAS = [BOARD_SIGMA] * 3
AREA = 10000.0  # s^2; with sigma 0.025: OKS = exp(-d^2 / (2 * 10000 * 0.05^2)) = exp(-d^2 / 50) per keypoint


def _flat(points, v=2):
    return [c for x, y in points for c in (x, y, v)]


def _shifted(dx, dy):
    return [(x + dx, y + dy) for x, y in GT_POINTS]


def _gt(n_images=1, annotations=None):
    anns = annotations
    if anns is None:
        anns = [
            {"id": i, "image_id": i, "category_id": 1, "bbox": [0, 0, 100, 100], "area": AREA, "iscrowd": 0,
             "keypoints": _flat(GT_POINTS), "num_keypoints": 3}
            for i in range(1, n_images + 1)
        ]  # fmt: skip
    return {
        "images": [{"id": i, "file_name": f"{i}.png", "width": 200, "height": 200} for i in range(1, n_images + 1)],
        "annotations": anns,
        "categories": [{"id": 1, "name": "board", "keypoints": ["a", "b", "c"], "skeleton": [[1, 2], [1, 3]]}],
    }


def _res(image_id, points, score=0.9, v=1.0):
    return {"image_id": image_id, "category_id": 1, "score": score, "keypoints": _flat(points, v)}


# --------------------------------------------------------------------------------------------------------------
# OKS AP


def test_exact_prediction_scores_one_and_prints_nothing(capsys):
    out = oks_ap(_gt(), [_res(1, GT_POINTS)], SIGMAS)
    assert out["AP"] == pytest.approx(1.0) and out["AP50"] == pytest.approx(1.0) and out["AP75"] == pytest.approx(1.0)
    assert capsys.readouterr().out == ""


def test_oks_of_a_5px_shift_passes_three_of_ten_thresholds():
    # every keypoint 5 px off: OKS = exp(-25 / 50) = 0.607 >= 0.50, 0.55, 0.60 and < 0.65 ... 0.95
    g = np.array(_flat(GT_POINTS), float).reshape(3, 3)
    p = np.array(_flat(_shifted(3, 4)), float).reshape(3, 3)
    assert object_keypoint_similarity(g, p, AREA, SIGMAS) == pytest.approx(math.exp(-0.5))
    out = oks_ap(_gt(), [_res(1, _shifted(3, 4))], SIGMAS)
    assert out["AP"] == pytest.approx(0.3) and out["AP50"] == pytest.approx(1.0) and out["AP75"] == pytest.approx(0.0)


def test_half_the_boards_found_gives_51_of_101_recall_points():
    out = oks_ap(_gt(2), [_res(1, GT_POINTS)], SIGMAS)
    assert out["AP50"] == pytest.approx(51 / 101)


def test_a_higher_scoring_false_positive_halves_the_precision():
    # FP (score 0.95, far away) then TP: at recall 1 the precision is 1/2 for every recall threshold
    out = oks_ap(_gt(), [_res(1, _shifted(80, 80), score=0.95), _res(1, GT_POINTS, score=0.5)], SIGMAS)
    assert out["AP50"] == pytest.approx(0.5)
    out = oks_ap(_gt(), [_res(1, _shifted(80, 80), score=0.1), _res(1, GT_POINTS, score=0.5)], SIGMAS)
    assert out["AP50"] == pytest.approx(1.0)


def test_no_results_is_zero_and_no_keypoint_ground_truth_is_undefined():
    assert oks_ap(_gt(), [], SIGMAS)["AP"] == 0.0
    empty = _gt(annotations=[{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "area": 100.0,
                              "keypoints": [0, 0, 0] * 3, "num_keypoints": 0}])  # fmt: skip
    assert oks_ap(empty, [_res(1, GT_POINTS)], SIGMAS)["AP"] is None
    assert oks_ap(empty, [], SIGMAS)["AP"] is None


def test_sigmas_must_match_the_keypoints():
    with pytest.raises(KeypointMetricError, match="3 positive sigmas"):
        oks_ap(_gt(), [_res(1, GT_POINTS)], [0.025] * 2)
    with pytest.raises(KeypointMetricError, match="lack 3 keypoints"):
        oks_ap(_gt(), [{"image_id": 1, "category_id": 1, "score": 1.0, "keypoints": [1, 2, 1]}], SIGMAS)


# --------------------------------------------------------------------------------------------------------------
# Pixel errors and PCK


def test_unmatched_ground_truth_counts_as_misses():
    # image 1: all 3 corners 5 px off (3-4-5); image 2: no result
    out = keypoint_errors(_gt(2), [_res(1, _shifted(3, 4))])
    assert out["mean_px"] == pytest.approx(5.0) and out["median_px"] == pytest.approx(5.0)
    assert out["pck"] == {"2px": 0.0, "5px": pytest.approx(3 / 6)}
    assert (out["matched"], out["unmatched_gt"], out["unmatched_results"]) == (1, 1, 0)
    assert (out["keypoints"], out["measured"]) == (6, 3)


def test_mixed_errors_mean_median_pck_and_per_keypoint():
    pred = [(10.0, 10.0), (51.0, 10.0), (10.0, 53.0)]  # errors 0, 1, 3
    out = keypoint_errors(_gt(), [_res(1, pred)], thresholds=(0.5, 2.0, 5.0))
    assert out["mean_px"] == pytest.approx(4 / 3) and out["median_px"] == pytest.approx(1.0)
    assert out["pck"] == {"0.5px": pytest.approx(1 / 3), "2px": pytest.approx(2 / 3), "5px": pytest.approx(1.0)}
    assert [(r["name"], r["mean_px"], r["n"]) for r in out["per_keypoint"]] == [("a", 0.0, 1), ("b", 1.0, 1),
                                                                                ("c", 3.0, 1)]  # fmt: skip


def test_invisible_ground_truth_keypoints_are_not_scored():
    ann = {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 100, 100], "area": AREA,
           "keypoints": [10, 10, 2, 50, 10, 0, 10, 50, 1], "num_keypoints": 2}  # fmt: skip
    pred = [(10.0, 10.0), (90.0, 90.0), (10.0, 52.0)]  # the invisible one is far off and ignored
    out = keypoint_errors(_gt(annotations=[ann]), [_res(1, pred)])
    assert out["keypoints"] == 2 and out["mean_px"] == pytest.approx(1.0)
    assert out["per_keypoint"][1] == {"index": 1, "name": "b", "mean_px": None, "n": 0}


def test_the_highest_scoring_result_is_the_one_matched():
    results = [_res(1, _shifted(0, 4), score=0.9), _res(1, GT_POINTS, score=0.3)]
    out = keypoint_errors(_gt(), results)
    assert out["mean_px"] == pytest.approx(4.0) and out["unmatched_results"] == 1


def test_greedy_matching_by_oks_with_two_boards():
    far = [(x + 100, y + 100) for x, y in GT_POINTS]
    anns = [
        {"id": 7, "image_id": 1, "category_id": 1, "bbox": [0, 0, 100, 100], "area": AREA,
         "keypoints": _flat(GT_POINTS)},
        {"id": 8, "image_id": 1, "category_id": 1, "bbox": [100, 100, 100, 100], "area": AREA,
         "keypoints": _flat(far)},
    ]  # fmt: skip
    results = [_res(1, [(x + 1, y) for x, y in far], score=0.9), _res(1, _shifted(0, 2), score=0.8)]
    matched, unmatched = match_results(_gt(annotations=anns), results)
    assert matched[8] is results[0] and matched[7] is results[1] and unmatched == []
    out = keypoint_errors(_gt(annotations=anns), results)
    assert out["mean_px"] == pytest.approx(1.5) and out["matched"] == 2


def test_min_confidence_turns_low_scores_into_misses():
    pred = {"image_id": 1, "category_id": 1, "score": 0.9, "keypoints": [10, 10, 5.0, 50, 10, -1.0, 10, 51, 2.0]}
    assert keypoint_errors(_gt(), [pred])["measured"] == 3  # scores ignored by default, as in OKS
    out = keypoint_errors(_gt(), [pred], min_confidence=0.0)
    assert out["measured"] == 2 and out["pck"]["2px"] == pytest.approx(2 / 3)


# --------------------------------------------------------------------------------------------------------------
# Board pose


K = np.array([[500.0, 0.0, 320.0], [0.0, 500.0, 240.0], [0.0, 0.0, 1.0]])
DIST = np.array([-0.2, 0.05, 0.0, 0.0, 0.0])
RVEC = np.array([0.1, -0.2, 0.05])
TVEC = np.array([-100.0, -60.0, 500.0])
GRID_MM = np.array([(i % 9 * 25.0, i // 9 * 25.0, 0.0) for i in range(54)])


def _board_image(image_id, board=True):
    img = {"id": image_id, "file_name": f"{image_id}.png", "width": 640, "height": 480}
    if board:
        img["board"] = {"pair": 1, "camera": "left", "K": K.tolist(), "dist": DIST.tolist(), "rvec": RVEC.tolist(),
                        "tvec_mm": TVEC.tolist(), "square_mm": 25.0}  # fmt: skip
    return img


def _project(rvec, tvec):
    pix, _ = cv2.projectPoints(GRID_MM, rvec, tvec, K, DIST)
    return pix.reshape(-1, 2) + 0.5  # OpenCV -> COCO


def _board_ann(image_id):
    return {"id": image_id, "image_id": image_id, "category_id": 1, "bbox": [0, 0, 640, 480], "area": 640 * 480.0,
            "keypoints": _flat(_project(RVEC, TVEC))}  # fmt: skip


def _board_res(image_id, points, v=1.0):
    return {"image_id": image_id, "category_id": 1, "score": 0.9, "keypoints": _flat(points, v)}


def test_exact_corners_recover_the_calibrated_pose_with_the_half_pixel_shift():
    out = board_pose_errors([_board_image(1)], [_board_ann(1)], [_board_res(1, _project(RVEC, TVEC))])
    assert out["solved"] == 1 and out["not_solved"] == 0
    row = out["rows"][0]
    assert row["points"] == 54
    # without the -0.5 shift the pose would be off by about 0.5 px / 500 px * 500 mm = 0.5 mm
    assert row["rotation_deg"] < 1e-3 and row["translation_mm"] < 1e-2


def test_a_known_pose_offset_is_measured():
    # predicted corners of the board turned 2 degrees about the camera's z axis and moved 10 mm along x
    r_gt, _ = cv2.Rodrigues(RVEC)
    r_turn, _ = cv2.Rodrigues(np.array([0.0, 0.0, math.radians(2.0)]))
    rvec_pred, _ = cv2.Rodrigues(r_turn @ r_gt)
    tvec_pred = TVEC + np.array([10.0, 0.0, 0.0])
    out = board_pose_errors([_board_image(1)], [_board_ann(1)], [_board_res(1, _project(rvec_pred, tvec_pred))])
    assert out["rotation_deg"]["median"] == pytest.approx(2.0, abs=1e-3)
    assert out["translation_mm"]["mean"] == pytest.approx(10.0, abs=1e-2)


def test_images_without_a_pose_are_reported_not_dropped():
    images = [_board_image(1), _board_image(2), _board_image(3), _board_image(4, board=False)]
    anns = [_board_ann(i) for i in (1, 2, 3, 4)]
    few = _flat(_project(RVEC, TVEC), 1.0)
    for j in range(5, 54):
        few[3 * j + 2] = -0.5  # only 5 confident corners
    results = [_board_res(1, _project(RVEC, TVEC)),
               {"image_id": 3, "category_id": 1, "score": 0.9, "keypoints": few}]  # fmt: skip
    out = board_pose_errors(images, anns, results)
    assert (out["images"], out["solved"], out["not_solved"]) == (3, 1, 2)
    reasons = {f["image_id"]: f["reason"] for f in out["failed"]}
    assert reasons[2] == "no matched prediction"
    assert reasons[3].startswith("5 confident corners")
    assert out["rotation_deg"]["median"] == pytest.approx(0.0, abs=1e-3)


def test_nothing_solved_gives_undefined_summaries():
    out = board_pose_errors([_board_image(1)], [_board_ann(1)], [])
    assert out["solved"] == 0 and out["rotation_deg"] == {"median": None, "mean": None}

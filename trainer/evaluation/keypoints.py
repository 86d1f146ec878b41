"""Keypoint metrics: COCO OKS AP, pixel errors and PCK, and the board pose recovered from predicted corners.

All three take a COCO ground-truth dict (``images``, ``annotations`` with ``keypoints`` flat ``[x, y, v] * K``,
``categories``) and COCO keypoint results (``image_id``, ``category_id``, ``score``, ``keypoints`` flat
``[x, y, s] * K``), both in COCO pixel coordinates ((0, 0) is the top-left corner of the top-left pixel).

Matching (pixel errors, pose): per image and category, results in descending score each take the still-unmatched
ground truth with the highest OKS (ties, e.g. all OKS 0 far away, go to the smallest mean distance), so every
ground-truth annotation gets at most one result: on one-board images, the best-scoring board. OKS rather than box
IoU because it is the metric the AP uses and it reads the keypoints themselves.

**The sigma for chessboard corners.** OKS is ``mean_i exp(-d_i^2 / (2 s^2 (2 sigma_i)^2))`` over visible keypoints,
``s^2`` the ground-truth area. COCO's sigmas are the spread of human annotators per body part; its most precise
points, the eyes, have 0.025. A chessboard corner is a saddle point the image defines to sub-pixel precision, so no
point is better defined than it: :data:`BOARD_SIGMA` = 0.025, the tightest COCO value, for all 54 corners. On a
board of area 250 px x 250 px one corner's OKS is 0.95 at 3.9 px and 0.5 at 14.4 px, so AP spans the range
detectors actually reach, and the pixel errors and PCK at 2 and 5 px cover the sub-pixel end.

No torch here; pycocotools and cv2 are imported where used.
"""

from __future__ import annotations

import contextlib
import copy
import io
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from shared.errors import BlendsetError

__all__ = [
    "BOARD_SIGMA",
    "COCO_PIXEL_SHIFT",
    "KeypointMetricError",
    "board_pose_errors",
    "keypoint_errors",
    "match_results",
    "object_keypoint_similarity",
    "oks_ap",
]

BOARD_SIGMA = 0.025
"""OKS sigma of one chessboard corner (COCO's eye value, its tightest; see the module notes)."""

COCO_PIXEL_SHIFT = 0.5
"""COCO coordinate = OpenCV coordinate + 0.5 (OpenCV puts pixel centres at integers)."""

_STATS = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")  # COCOeval keypoint order


class KeypointMetricError(BlendsetError, ValueError):
    """Keypoint ground truth or results that cannot be scored as given (wrong number of keypoints or sigmas)."""


# --------------------------------------------------------------------------------------------------------------
# OKS AP


def _keypoint_count(gt: dict) -> int:
    counts = {len(c.get("keypoints", [])) for c in gt["categories"] if c.get("keypoints")}
    counts |= {len(a["keypoints"]) // 3 for a in gt["annotations"] if a.get("keypoints")}
    if len(counts) != 1:
        raise KeypointMetricError(f"ground truth must have one keypoint count, found {sorted(counts) or 'none'}")
    return counts.pop()


def _coco_gt(gt: dict):
    from pycocotools.coco import COCO

    data = copy.deepcopy({k: gt[k] for k in ("images", "annotations", "categories")})
    for i, ann in enumerate(data["annotations"]):
        ann.setdefault("id", i + 1)
        ann.setdefault("iscrowd", 0)
        if "area" not in ann and "bbox" in ann:
            ann["area"] = float(ann["bbox"][2] * ann["bbox"][3])
        if ann.get("keypoints"):
            ann.setdefault("num_keypoints", int(np.count_nonzero(np.asarray(ann["keypoints"])[2::3] > 0)))
        else:
            ann.setdefault("num_keypoints", 0)
    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def oks_ap(gt: dict, results: list[dict], sigmas: Sequence[float]) -> dict[str, float | None]:
    """COCO keypoint AP (pycocotools ``COCOeval``, ``iouType="keypoints"``, ``kpt_oks_sigmas = sigmas``, one sigma
    per keypoint). Returns ``{"AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl"}``; a value is
    None where it is undefined (no ground truth with keypoints in that range), and 0.0 for no results at all."""
    from pycocotools.cocoeval import COCOeval

    k = _keypoint_count(gt)
    sig = np.asarray(sigmas, dtype=np.float64).ravel()
    if len(sig) != k or not np.all(sig > 0):
        raise KeypointMetricError(f"oks_ap needs {k} positive sigmas (one per keypoint), got {len(sig)}")
    bad = [r for r in results if len(r.get("keypoints", [])) != 3 * k]
    if bad:
        raise KeypointMetricError(f"{len(bad)} results lack {k} keypoints (image {bad[0].get('image_id')})")
    coco_gt = _coco_gt(gt)
    scored = [a for a in coco_gt.dataset["annotations"] if a["num_keypoints"] > 0 and not a["iscrowd"]]
    if not results:
        return {name: (0.0 if scored else None) for name in _STATS}
    with contextlib.redirect_stdout(io.StringIO()):
        coco_dt = coco_gt.loadRes(copy.deepcopy(list(results)))
        ev = COCOeval(coco_gt, coco_dt, "keypoints")
        ev.params.kpt_oks_sigmas = sig
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    out = {}
    for name, v in zip(_STATS, ev.stats, strict=True):
        v = float(v)
        out[name] = None if (math.isnan(v) or v < 0) else v
    return out


# --------------------------------------------------------------------------------------------------------------
# Matching and pixel errors


def _points(flat: Sequence[float], k: int, what: str) -> np.ndarray:
    a = np.asarray(flat, dtype=np.float64).ravel()
    if a.size != 3 * k:
        raise KeypointMetricError(f"{what} has {a.size // 3} keypoints, expected {k}")
    return a.reshape(k, 3)


def object_keypoint_similarity(gt_kp: np.ndarray, pred_kp: np.ndarray, area: float, sigmas: Sequence[float]
                               ) -> float:  # fmt: skip
    """COCO's OKS of one prediction against one ground truth ((K, 3) arrays) over the visible (v > 0) ground-truth
    keypoints; 0.0 when none is visible."""
    visible = gt_kp[:, 2] > 0
    if not visible.any():
        return 0.0
    var = (2 * np.asarray(sigmas, np.float64)) ** 2
    d2 = ((gt_kp[:, :2] - pred_kp[:, :2]) ** 2).sum(axis=1)
    e = d2 / var / (area + np.spacing(1)) / 2
    return float(np.mean(np.exp(-e[visible])))


def match_results(gt: dict, results: list[dict], sigmas: Sequence[float] | None = None
                  ) -> tuple[dict[int, dict], list[dict]]:  # fmt: skip
    """``({gt annotation id: its result}, unmatched results)``: per image and category, results by descending score
    each take the unmatched ground truth of highest OKS (ties to the smallest mean distance). Crowd annotations
    and annotations without visible keypoints take no result. ``sigmas`` default to :data:`BOARD_SIGMA` each."""
    k = _keypoint_count(gt)
    sig = np.full(k, BOARD_SIGMA) if sigmas is None else np.asarray(sigmas, np.float64)
    by_key: dict[tuple[int, int], list[dict]] = {}
    for i, ann in enumerate(gt["annotations"]):
        if ann.get("iscrowd", 0) or not ann.get("keypoints"):
            continue
        if not np.any(np.asarray(ann["keypoints"])[2::3] > 0):
            continue
        by_key.setdefault((ann["image_id"], ann["category_id"]), []).append({**ann, "id": ann.get("id", i + 1)})
    matched: dict[int, dict] = {}
    unmatched: list[dict] = []
    order = sorted(range(len(results)), key=lambda i: -float(results[i].get("score", 0.0)))  # stable on ties
    for i in order:
        res = results[i]
        candidates = [a for a in by_key.get((res["image_id"], res["category_id"]), []) if a["id"] not in matched]
        if not candidates:
            unmatched.append(res)
            continue
        pred = _points(res["keypoints"], k, f"result for image {res['image_id']}")
        best, best_key = None, None
        for ann in candidates:
            g = _points(ann["keypoints"], k, f"annotation {ann['id']}")
            area = float(ann.get("area", ann["bbox"][2] * ann["bbox"][3] if "bbox" in ann else 0.0))
            vis = g[:, 2] > 0
            dist = float(np.linalg.norm(g[vis, :2] - pred[vis, :2], axis=1).mean())
            key = (object_keypoint_similarity(g, pred, area, sig), -dist)
            if best_key is None or key > best_key:
                best, best_key = ann, key
        matched[best["id"]] = res
    return matched, unmatched


def keypoint_errors(
    gt: dict, results: list[dict], thresholds: Sequence[float] = (2.0, 5.0), sigmas: Sequence[float] | None = None,
    min_confidence: float | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Pixel error of every visible ground-truth keypoint (v > 0) against its matched result (see
    :func:`match_results`).

    Returns ``{"mean_px", "median_px"}`` over the matched keypoints (None when there are none), ``"pck"``
    ``{"2px": share, ...}`` (share of ALL visible ground-truth keypoints within each threshold: an unmatched ground
    truth counts all its keypoints as misses), ``"per_keypoint"`` rows ``{"index", "name", "mean_px", "n"}`` (one
    per keypoint index, over all categories), and the counts ``"keypoints"`` (visible ground-truth keypoints),
    ``"measured"``, ``"matched"``, ``"unmatched_gt"``, ``"unmatched_results"``. The result's own keypoint score is
    ignored, as in OKS, unless ``min_confidence`` is given: then a predicted keypoint with score <= it is a miss.
    """
    k = _keypoint_count(gt)
    matched, unmatched = match_results(gt, results, sigmas)
    names = next((list(c["keypoints"]) for c in gt["categories"] if len(c.get("keypoints", [])) == k), None)
    names = names or [str(i) for i in range(k)]
    errors: list[float] = []
    per_kp: list[list[float]] = [[] for _ in range(k)]
    total, n_gt, hits = 0, 0, np.zeros(len(thresholds), dtype=np.int64)
    for i, ann in enumerate(gt["annotations"]):
        if ann.get("iscrowd", 0) or not ann.get("keypoints"):
            continue
        g = _points(ann["keypoints"], k, f"annotation {ann.get('id', i + 1)}")
        vis = np.flatnonzero(g[:, 2] > 0)
        if not len(vis):
            continue
        n_gt += 1
        total += len(vis)
        res = matched.get(ann.get("id", i + 1))
        if res is None:
            continue
        p = _points(res["keypoints"], k, f"result for image {res['image_id']}")
        given = vis if min_confidence is None else vis[p[vis, 2] > min_confidence]
        d = np.linalg.norm(g[given, :2] - p[given, :2], axis=1)
        errors.extend(d.tolist())
        for j, dj in zip(given, d, strict=True):
            per_kp[j].append(float(dj))
        hits += np.array([int(np.count_nonzero(d <= t)) for t in thresholds], dtype=np.int64)
    return {
        "mean_px": float(np.mean(errors)) if errors else None,
        "median_px": float(np.median(errors)) if errors else None,
        "pck": {f"{t:g}px": (float(h) / total if total else None) for t, h in zip(thresholds, hits, strict=True)},
        "per_keypoint": [
            {"index": j, "name": names[j], "mean_px": float(np.mean(e)) if e else None, "n": len(e)}
            for j, e in enumerate(per_kp)
        ],
        "keypoints": total,
        "measured": len(errors),
        "matched": len(matched),
        "unmatched_gt": n_gt - len(matched),
        "unmatched_results": len(unmatched),
    }


# --------------------------------------------------------------------------------------------------------------
# Board pose


def _rotation_deg(r_pred: np.ndarray, r_gt: np.ndarray) -> float:
    r = r_pred @ r_gt.T
    return float(np.degrees(np.arccos(np.clip((np.trace(r) - 1) / 2, -1.0, 1.0))))


def _summary(values: list[float]) -> dict[str, float | None]:
    return {"median": float(np.median(values)) if values else None, "mean": float(np.mean(values)) if values else None}


def board_pose_errors(
    gt_images: list[dict], gt_anns: list[dict], results: list[dict], square_mm: float = 25.0,
    grid: tuple[int, int] = (9, 6), min_confidence: float = 0.0, min_points: int = 6,
    sigmas: Sequence[float] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """The board pose from the predicted corners against the calibrated one, per image with a ``board`` record.

    For each image whose record holds ``K``, ``dist``, ``rvec``, ``tvec_mm`` (OpenCV convention; see
    ``trainer/bench/boards_real.py``), the result matched to its board annotation (:func:`match_results`) gives
    the corners with score > ``min_confidence``; with at least ``min_points`` of them, ``cv2.solvePnP``
    (``SOLVEPNP_ITERATIVE``, the image's K and distortion) on board points ``(col, row, 0) * square`` (corner
    ``i`` at ``col = i % grid[0]``, ``row = i // grid[0]``; the record's ``square_mm`` wins over the argument), fed
    the COCO coordinates minus :data:`COCO_PIXEL_SHIFT`. Errors: the angle of ``R_pred R_gt^T`` in degrees and
    ``|t_pred - t_gt|`` in mm.

    Returns ``{"rows": [{"image_id", "file_name", "points", "rotation_deg", "translation_mm"}], "failed":
    [{"image_id", "file_name", "reason"}], "images", "solved", "not_solved", "rotation_deg": {"median", "mean"},
    "translation_mm": {"median", "mean"}}``: an image where PnP is not possible (no matched prediction, too few
    confident corners, solvePnP failing) is a ``failed`` row, never dropped.
    """
    import cv2

    cols, rows_ = grid
    n = cols * rows_
    images = [img for img in gt_images if isinstance(img.get("board"), dict) and "K" in img["board"]]
    wanted = {img["id"] for img in images}
    anns = [a for a in gt_anns if a["image_id"] in wanted and a.get("keypoints")]
    cats = [{"id": cid, "name": str(cid), "keypoints": [str(i) for i in range(n)]}
            for cid in sorted({a["category_id"] for a in anns})]  # fmt: skip
    if anns and _keypoint_count({"annotations": anns, "categories": cats}) != n:
        raise KeypointMetricError(f"board annotations must have {n} keypoints (a {cols}x{rows_} grid)")
    matched, _ = match_results({"images": images, "annotations": anns, "categories": cats},
                               [r for r in results if r["image_id"] in wanted], sigmas)  # fmt: skip
    by_image: dict[int, dict] = {}
    for i, ann in enumerate(anns):
        res = matched.get(ann.get("id", i + 1))
        if res is not None and ann["image_id"] not in by_image:
            by_image[ann["image_id"]] = res
    idx = np.arange(n)
    grid_points = np.stack([idx % cols, idx // cols, np.zeros(n)], axis=1).astype(np.float64)
    rows, failed = [], []
    for img in images:
        board = img["board"]
        name = img.get("file_name", str(img["id"]))
        res = by_image.get(img["id"])
        if res is None:
            failed.append({"image_id": img["id"], "file_name": name, "reason": "no matched prediction"})
            continue
        pred = _points(res["keypoints"], n, f"result for image {img['id']}")
        keep = pred[:, 2] > min_confidence
        if int(keep.sum()) < min_points:
            failed.append({"image_id": img["id"], "file_name": name,
                           "reason": f"{int(keep.sum())} confident corners, PnP needs {min_points}"})  # fmt: skip
            continue
        obj = grid_points[keep] * float(board.get("square_mm", square_mm))
        pix = pred[keep, :2] - COCO_PIXEL_SHIFT
        K = np.asarray(board["K"], np.float64)
        dist = np.asarray(board.get("dist", []), np.float64)
        ok, rvec, tvec = cv2.solvePnP(obj, pix, K, dist, flags=cv2.SOLVEPNP_ITERATIVE)
        if not ok or not (np.all(np.isfinite(rvec)) and np.all(np.isfinite(tvec))):
            failed.append({"image_id": img["id"], "file_name": name, "reason": "cv2.solvePnP found no pose"})
            continue
        r_pred, _ = cv2.Rodrigues(rvec)
        r_gt, _ = cv2.Rodrigues(np.asarray(board["rvec"], np.float64))
        t_err = float(np.linalg.norm(tvec.ravel() - np.asarray(board["tvec_mm"], np.float64)))
        rows.append({"image_id": img["id"], "file_name": name, "points": int(keep.sum()),
                     "rotation_deg": _rotation_deg(r_pred, r_gt), "translation_mm": t_err})  # fmt: skip
    return {
        "rows": rows,
        "failed": failed,
        "images": len(images),
        "solved": len(rows),
        "not_solved": len(failed),
        "rotation_deg": _summary([r["rotation_deg"] for r in rows]),
        "translation_mm": _summary([r["translation_mm"] for r in rows]),
    }

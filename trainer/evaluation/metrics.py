"""Detection and classification metrics, as plain numbers and tables (no plotting, no files).

Detection: COCO AP (pycocotools) with a per-class table, precision / recall / F1 at one IoU and score threshold
(the rescue-scenes study reports these), PR curves, and a confusion matrix with a background row and column.
Classification: accuracy per class with bootstrap intervals (the bias-fix study: 500 resamples of 200 images
per class), the confusion matrix, worst classes first.
Slicing: any metric per bin of an annotation attribute (occlusion, truncation, depth_median ...) or an image field
(``camera.elevation_deg`` from ``images[*].blendset.params``).
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

COCO_STATS = ("mAP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


class EvaluationError(BlendsetError, ValueError):
    """An evaluation that cannot run as asked (a bad --by-attribute spec, ...)."""


# --------------------------------------------------------------------------------------------------------------
# COCO AP


def _coco_gt(gt: dict):
    from pycocotools.coco import COCO

    data = copy.deepcopy({k: gt[k] for k in ("images", "annotations", "categories")})
    for i, ann in enumerate(data["annotations"]):
        ann.setdefault("iscrowd", 0)
        ann.setdefault("area", float(ann["bbox"][2] * ann["bbox"][3]))
        ann.setdefault("id", i + 1)
    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def coco_evaluate(
    gt: dict, results: Sequence[dict], iou_type: str = "bbox", image_ids: Sequence | None = None
) -> dict[str, Any]:
    """COCO AP/AR summary, per-class AP table and PR curves at IoU 0.5 and 0.75.

    Returns ``{"summary": {mAP, AP50, ...}, "per_class": [{id, name, AP, AP50, AP75, gt}], "pr_curves":
    {"recall": [...], "per_class": {name: {"iou50": [...], "iou75": [...]}}}}``. Classes without ground truth
    get ``None`` (undefined) rather than 0.
    """
    from pycocotools.cocoeval import COCOeval

    coco_gt = _coco_gt(gt)
    cats = sorted(gt["categories"], key=lambda c: c["id"])
    gt_counts = {c["id"]: 0 for c in cats}
    wanted = set(image_ids) if image_ids is not None else None
    for ann in gt["annotations"]:
        if (wanted is None or ann["image_id"] in wanted) and not ann.get("iscrowd", 0):
            gt_counts[ann["category_id"]] = gt_counts.get(ann["category_id"], 0) + 1
    results = [r for r in results if wanted is None or r["image_id"] in wanted]
    if not results:
        return _empty_evaluation(cats, gt_counts)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_dt = coco_gt.loadRes(copy.deepcopy(list(results)))
        ev = COCOeval(coco_gt, coco_dt, iou_type)
        if image_ids is not None:
            ev.params.imgIds = sorted(wanted)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    summary = {name: _nan_to_none(v) for name, v in zip(COCO_STATS, ev.stats, strict=False)}
    precision = ev.eval["precision"]  # [T iou, R recall, K class, A area, M maxdets]
    per_class, curves = [], {}
    for k, cat in enumerate(cats):
        pk = precision[:, :, k, 0, -1]
        per_class.append(
            {
                "id": cat["id"],
                "name": cat["name"],
                "gt": gt_counts.get(cat["id"], 0),
                "AP": _mean_valid(pk),
                "AP50": _mean_valid(pk[0]),
                "AP75": _mean_valid(pk[5]),
            }
        )
        curves[cat["name"]] = {"iou50": _curve(pk[0]), "iou75": _curve(pk[5])}
    return {
        "summary": summary,
        "per_class": per_class,
        "pr_curves": {"recall": [float(r) for r in ev.params.recThrs], "per_class": curves},
    }


def _empty_evaluation(cats: list[dict], gt_counts: dict) -> dict:
    any_gt = any(gt_counts.values())
    value = 0.0 if any_gt else None
    summary = {name: value for name in COCO_STATS}
    per_class = [
        {
            "id": c["id"],
            "name": c["name"],
            "gt": gt_counts.get(c["id"], 0),
            "AP": 0.0 if gt_counts.get(c["id"]) else None,
            "AP50": 0.0 if gt_counts.get(c["id"]) else None,
            "AP75": 0.0 if gt_counts.get(c["id"]) else None,
        }
        for c in cats
    ]
    recall = [i / 100 for i in range(101)]
    curves = {c["name"]: {"iou50": [0.0] * 101, "iou75": [0.0] * 101} for c in cats}
    return {"summary": summary, "per_class": per_class, "pr_curves": {"recall": recall, "per_class": curves}}


def _mean_valid(a: np.ndarray) -> float | None:
    valid = a[a > -1]
    return float(valid.mean()) if valid.size else None


def _curve(p: np.ndarray) -> list[float | None]:
    return [float(v) if v > -1 else None for v in p]


def _nan_to_none(v: float) -> float | None:
    v = float(v)
    return None if (math.isnan(v) or v < 0) else v


# --------------------------------------------------------------------------------------------------------------
# Matching at one IoU: precision / recall / F1, confusion matrix, per-annotation hits


def box_iou_xywh(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU between every box in ``a`` (N, 4) and ``b`` (M, 4), both ``[x, y, w, h]``."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    ax2, ay2 = a[:, 0] + a[:, 2], a[:, 1] + a[:, 3]
    bx2, by2 = b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.clip(np.minimum(ax2[:, None], bx2[None]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(ay2[:, None], by2[None]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = iw * ih
    union = (a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3])[None] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def match_detections(
    gt: dict, results: Sequence[dict], iou_threshold: float = 0.5, score_threshold: float = 0.5
) -> dict[str, Any]:
    """Greedy matching (highest score first) of detections above ``score_threshold`` to ground truth.

    Returns per-class ``tp``/``fp``/``fn``, ``matched`` (annotation id -> bool, same-class match) and a
    ``confusion`` matrix of shape (K+1, K+1): rows true class, columns predicted class, last row/column background
    (a missed object is (class, background); a detection on nothing is (background, class)). Crowd annotations are
    ignored.
    """
    cats = sorted(c["id"] for c in gt["categories"])
    col = {c: i for i, c in enumerate(cats)}
    k = len(cats)
    tp, fp, fn = np.zeros(k, int), np.zeros(k, int), np.zeros(k, int)
    confusion = np.zeros((k + 1, k + 1), int)
    matched: dict[Any, bool] = {}
    gts_by_image: dict[Any, list] = {}
    for ann in gt["annotations"]:
        if not ann.get("iscrowd", 0):
            gts_by_image.setdefault(ann["image_id"], []).append(ann)
    dets_by_image: dict[Any, list] = {}
    for det in results:
        if det["score"] >= score_threshold:
            dets_by_image.setdefault(det["image_id"], []).append(det)
    for image in gt["images"]:
        gts = gts_by_image.get(image["id"], [])
        dets = sorted(dets_by_image.get(image["id"], []), key=lambda d: -d["score"])
        _match_image(gts, dets, iou_threshold, col, tp, fp, fn, matched)
        _confuse_image(gts, dets, iou_threshold, col, k, confusion)
    return {"categories": cats, "tp": tp, "fp": fp, "fn": fn, "matched": matched, "confusion": confusion}


def _match_image(gts, dets, thr, col, tp, fp, fn, matched):
    used = np.zeros(len(gts), bool)
    ious = box_iou_xywh([d["bbox"] for d in dets], [g["bbox"] for g in gts]) if gts and dets else None
    for i, det in enumerate(dets):
        best, best_iou = -1, thr
        for j, g in enumerate(gts):
            if not used[j] and g["category_id"] == det["category_id"] and ious[i, j] >= best_iou:
                best, best_iou = j, ious[i, j]
        c = col[det["category_id"]]
        if best >= 0:
            used[best] = True
            tp[c] += 1
        else:
            fp[c] += 1
    for j, g in enumerate(gts):
        matched[g.get("id", (g["image_id"], j))] = bool(used[j])
        if not used[j]:
            fn[col[g["category_id"]]] += 1


def _confuse_image(gts, dets, thr, col, k, confusion):
    """Class-agnostic matching by IoU, so a box found with the wrong class shows up off the diagonal."""
    used_det = np.zeros(len(dets), bool)
    if gts and dets:
        ious = box_iou_xywh([g["bbox"] for g in gts], [d["bbox"] for d in dets])
        for j in np.argsort(-ious.max(axis=1)):
            order = np.argsort(-ious[j])
            hit = next((int(i) for i in order if not used_det[i] and ious[j, i] >= thr), None)
            if hit is None:
                confusion[col[gts[j]["category_id"]], k] += 1
            else:
                used_det[hit] = True
                confusion[col[gts[j]["category_id"]], col[dets[hit]["category_id"]]] += 1
    else:
        for g in gts:
            confusion[col[g["category_id"]], k] += 1
    for i, d in enumerate(dets):
        if not used_det[i]:
            confusion[k, col[d["category_id"]]] += 1


def precision_recall_f1(tp: np.ndarray | int, fp: np.ndarray | int, fn: np.ndarray | int) -> dict[str, Any]:
    """Precision, recall and F1 from counts; undefined ratios (0/0) are None."""
    tp, fp, fn = (np.asarray(x, dtype=float) for x in (tp, fp, fn))
    with np.errstate(invalid="ignore", divide="ignore"):
        p = tp / (tp + fp)
        r = tp / (tp + fn)
        f1 = 2 * p * r / (p + r)
    return {"precision": _nan_list(p), "recall": _nan_list(r), "f1": _nan_list(f1)}


def _nan_list(a: np.ndarray):
    if a.ndim == 0:
        return None if np.isnan(a) else float(a)
    return [None if np.isnan(v) else float(v) for v in a]


# --------------------------------------------------------------------------------------------------------------
# Classification


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], num_classes: int) -> np.ndarray:
    m = np.zeros((num_classes, num_classes), dtype=int)
    np.add.at(m, (np.asarray(y_true, int), np.asarray(y_pred, int)), 1)
    return m


def bootstrap_class_accuracy(
    y_true: Sequence[int],
    y_pred: Sequence[int],
    num_classes: int,
    n_resamples: int = 500,
    resample_size: int | None = None,
    confidence: float = 0.95,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Per-class accuracy with a percentile bootstrap interval.

    For each class, ``n_resamples`` samples of ``resample_size`` images of that class (default: as many as the
    class has, which gives an interval for the measured accuracy; the bias-fix study used 200) are drawn with
    replacement.
    ``ci`` is the central ``confidence`` share of the resampled accuracies, ``min``/``max`` their extremes.
    Classes without samples get None.
    """
    rng = np.random.default_rng(seed)
    y_true, y_pred = np.asarray(y_true, int), np.asarray(y_pred, int)
    rows = []
    alpha = (1 - confidence) / 2
    for c in range(num_classes):
        correct = (y_pred[y_true == c] == c).astype(float)
        n = correct.size
        if n == 0:
            rows.append(
                {
                    "class": c,
                    "n": 0,
                    "accuracy": None,
                    "mean": None,
                    "min": None,
                    "max": None,
                    "ci_low": None,
                    "ci_high": None,
                }
            )
            continue
        size = int(resample_size or n)
        draws = rng.integers(0, n, size=(n_resamples, size))
        accs = correct[draws].mean(axis=1)
        rows.append(
            {
                "class": c,
                "n": int(n),
                "accuracy": float(correct.mean()),
                "mean": float(accs.mean()),
                "min": float(accs.min()),
                "max": float(accs.max()),
                "ci_low": float(np.quantile(accs, alpha)),
                "ci_high": float(np.quantile(accs, 1 - alpha)),
            }
        )
    return rows


def worst_first(rows: list[dict], key: str) -> list[dict]:
    """Sort table rows by ``key`` ascending; rows where it is undefined go last."""
    return sorted(rows, key=lambda r: (r[key] is None, r[key] if r[key] is not None else 0.0))


# --------------------------------------------------------------------------------------------------------------
# Attributes and bins


def attribute_value(name: str, annotation: dict | None, image: dict | None) -> float | None:
    """Value of ``name`` for an annotation: its ``attributes``, then its own keys, then the image
    (``blendset.params`` with dotted names, or a dotted path into the image record). None if absent."""
    for source in (annotation.get("attributes") if annotation else None, annotation):
        if isinstance(source, dict) and name in source:
            return _number(source[name])
    if image:
        params = (image.get("blendset") or {}).get("params") or {}
        if name in params:
            return _number(params[name])
        value = _dotted(image, name)
        if value is not None:
            return _number(value)
    return None


def _dotted(record: Any, path: str) -> Any:
    """Follow ``a.b.c`` where keys may themselves hold dots (``blendset.params.camera.elevation_deg``)."""
    if not path:
        return record
    if not isinstance(record, dict):
        return None
    parts = path.split(".")
    for i in range(len(parts), 0, -1):
        key = ".".join(parts[:i])
        if key in record:
            found = _dotted(record[key], ".".join(parts[i:]))
            if found is not None:
                return found
    return None


def _number(v: Any) -> float | None:
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, (int, float)) and math.isfinite(float(v)):
        return float(v)
    return None


def parse_attribute_spec(spec: str) -> tuple[str, int | list[float]]:
    """``occlusion`` (5 bins), ``occlusion:4`` (4 equal-width bins) or ``occlusion:0,0.25,0.5,1`` (edges)."""
    name, _, bins = spec.partition(":")
    if not name:
        raise EvaluationError(f"--by-attribute {spec!r}: no attribute name")
    if not bins:
        return name, 5
    if "," in bins:
        try:
            edges = sorted(float(x) for x in bins.split(","))
        except ValueError as exc:
            raise EvaluationError(f"--by-attribute {spec!r}: bin edges must be numbers") from exc
        if len(edges) < 2:
            raise EvaluationError(f"--by-attribute {spec!r}: give at least two edges")
        return name, edges
    try:
        n = int(bins)
    except ValueError as exc:
        raise EvaluationError(f"--by-attribute {spec!r}: BINS is a count or comma-separated edges") from exc
    if n < 1:
        raise EvaluationError(f"--by-attribute {spec!r}: at least one bin")
    return name, n


def bin_edges(values: Sequence[float], bins: int | list[float]) -> list[float]:
    if isinstance(bins, list):
        return bins
    lo, hi = float(np.min(values)), float(np.max(values))
    if hi <= lo:
        hi = lo + 1e-9
    return [float(x) for x in np.linspace(lo, hi, bins + 1)]


def bin_of(value: float, edges: list[float]) -> int | None:
    """Index of the bin holding ``value``; the last bin includes its upper edge; outside -> None."""
    if value < edges[0] or value > edges[-1]:
        return None
    i = int(np.searchsorted(edges, value, side="right")) - 1
    return min(i, len(edges) - 2)


def bin_label(edges: list[float], i: int) -> str:
    return f"[{edges[i]:.4g}, {edges[i + 1]:.4g}{']' if i == len(edges) - 2 else ')'}"

"""``evaluate_run``: score a trained run on a dataset and write the report into ``RUN/eval/<dataset-name>/``.

This module is about 490 lines because it is `blendset eval` for every task in one place, one section per task
(detection, keypoints, classification; regression is `regress.py`), so the command's behaviour reads top to
bottom; the metrics themselves are in `metrics.py` and `keypoints.py`, the files in `report.py`.

Files written (all atomically):

\b
  metrics.json            everything below as numbers, plus the run and data it came from
  per_class.csv           detection: AP, AP50, AP75, precision, recall, F1, TP/FP/FN per class, worst AP first
                          classification: accuracy with bootstrap 95% interval per class, worst first
  confusion_matrix.csv    rows = true class, columns = predicted (detection adds a background row/column)
  confusion_matrix.png
  pr_curves.png           detection: precision vs recall per class at IoU 0.5
  by_<attr>.csv / .png    one per --by-attribute: the metric per bin
  detections.json         detection: COCO results format (image_id, category_id, bbox xywh, score)
  predictions.csv         classification: index,image_id,annotation_id,true,pred,score (true/pred are class names)

Keypoint checkpoints get their own set: metrics.json (box AP, keypoint OKS AP, pixel errors and PCK at 2 and
5 px, board pose errors when the images carry ``board`` calibration records), keypoints.json (COCO keypoint
results), per_keypoint.csv (mean error per keypoint), board_pose.csv (with board records) and
keypoints_overlay.png (a few images, predicted vs ground-truth keypoints).

A ``regress`` checkpoint is handed to ``trainer.evaluation.regress.evaluate_regression``; the files themselves
are written by ``trainer/evaluation/report.py``.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from shared.atomic import atomic_write
from shared.progress import Note, silent
from trainer.data.datasets import DataError, dataset_name
from trainer.evaluation.metrics import (
    attribute_value,
    bin_edges,
    bin_label,
    bin_of,
    bootstrap_class_accuracy,
    coco_evaluate,
    confusion_matrix,
    match_detections,
    parse_attribute_spec,
    precision_recall_f1,
    worst_first,
)
from trainer.evaluation.report import (
    plot_bins,
    plot_class_accuracy,
    plot_confusion,
    plot_keypoint_overlay,
    plot_pr_curves,
    safe_name,
    write_csv,
    write_json,
    write_matrix,
)
from trainer.training.checkpoint import CheckpointError, find_checkpoint, load_checkpoint
from trainer.training.loop import resolve_device


def evaluate_run(
    run_dir: str,
    data_path: str,
    out_dir: str | None = None,
    by_attribute: Sequence[str] = (),
    device: str = "auto",
    *,
    name: str | None = None,
    batch_size: int = 4,
    workers: int = 0,
    score_threshold: float = 0.5,
    iou_threshold: float = 0.5,
    n_resamples: int = 500,
    resample_size: int | None = None,
    skip_bad: bool = False,
    seed: int = 0,
    note: Note = silent,
) -> dict[str, Any]:
    """Evaluate ``run_dir``'s best checkpoint (else its latest) on ``data_path``; returns the metrics dict.

    :param by_attribute: ``"occlusion"``, ``"occlusion:4"`` or ``"camera.elevation_deg:0,30,60,90"``.
    :param score_threshold: detections at or above it count for precision/recall/F1 and the confusion matrix
        (AP uses all of them).
    :param resample_size: images per class in each bootstrap resample (default: the class's count).
    """
    ckpt_path = find_checkpoint(run_dir, prefer_best=True)
    ckpt = load_checkpoint(ckpt_path)
    if ckpt.task == "refine":
        raise CheckpointError(f"{ckpt_path} is a refiner, not a model to evaluate (use `blendset refine apply`)")
    name = name or dataset_name(data_path)
    if os.path.isdir(run_dir) and out_dir is None:
        out_dir = os.path.join(run_dir, "eval", name)
    elif out_dir is None:
        out_dir = os.path.join(os.path.dirname(os.path.abspath(run_dir)), "eval", name)
    specs = [parse_attribute_spec(s) for s in by_attribute]
    if ckpt["task"] == "regress":
        from trainer.evaluation.regress import evaluate_regression

        return evaluate_regression(run_dir, data_path, out_dir, tuple(by_attribute), device)
    device = resolve_device(device)
    os.makedirs(out_dir, exist_ok=True)
    common = {
        "run": os.path.abspath(run_dir),
        "checkpoint": os.path.abspath(ckpt_path),
        "epoch": ckpt.get("epoch"),
        "data": os.path.abspath(data_path),
        "dataset": name,
        "model_name": ckpt["model_name"],
    }
    if ckpt["task"] == "detect":
        metrics = _evaluate_detection(
            ckpt, data_path, out_dir, specs, device, batch_size, workers, score_threshold, iou_threshold, skip_bad, note
        )
    elif ckpt["task"] == "keypoints":
        if specs:
            raise DataError("--by-attribute is not available for keypoint runs yet")
        metrics = _evaluate_keypoints(ckpt, data_path, out_dir, device, batch_size, workers, skip_bad, note)
    else:
        metrics = _evaluate_classification(
            ckpt,
            data_path,
            out_dir,
            specs,
            device,
            batch_size,
            workers,
            n_resamples,
            resample_size,
            skip_bad,
            seed,
            note,
        )
    metrics = {"task": ckpt["task"], **common, **metrics}
    write_json(os.path.join(out_dir, "metrics.json"), metrics)
    metrics["out_dir"] = out_dir
    return metrics


def _by_name(ckpt_categories: list[dict], data_categories: list[dict], data_path: str) -> list[dict]:
    """The dataset's categories in the checkpoint's label order, matched by name (ids may differ in real data)."""
    theirs = {c["name"]: c for c in data_categories}
    ours = [c["name"] for c in ckpt_categories]
    if sorted(theirs) != sorted(ours):
        raise DataError(f"{data_path} has classes {sorted(theirs)}, the model was trained on {ours}")
    return [theirs[n] for n in ours]


# --------------------------------------------------------------------------------------------------------------
# Detection


def _evaluate_detection(
    ckpt, data_path, out_dir, specs, device, batch_size, workers, score_threshold, iou_threshold, skip_bad, note
) -> dict[str, Any]:
    from trainer.data.datasets import CocoDetection, describe_skips, detection_collate
    from trainer.data.transforms import detection_transforms
    from trainer.evaluation.predict import predict_detection
    from trainer.training.detect import build_detector_from_checkpoint

    ds = CocoDetection(data_path, detection_transforms([]), on_problem="skip" if skip_bad else "raise")
    note(describe_skips(dataset_name(data_path), ds.skipped))
    categories = _by_name(ckpt["categories"], ds.categories, data_path)
    model = build_detector_from_checkpoint(ckpt).to(device)
    loader = torch.utils.data.DataLoader(
        ds, batch_size=batch_size, shuffle=False, num_workers=workers, collate_fn=detection_collate
    )
    masks = bool(ckpt.get("masks", False))
    results = predict_detection(model, loader, device, categories, masks=masks)
    gt = ds.coco_ground_truth()
    coco = coco_evaluate(gt, results)
    segm = None
    if masks and all(a.get("segmentation") for a in gt["annotations"]):
        segm = coco_evaluate(gt, results, iou_type="segm")["summary"]
    match = match_detections(gt, results, iou_threshold, score_threshold)
    prf = precision_recall_f1(match["tp"], match["fp"], match["fn"])
    overall = precision_recall_f1(match["tp"].sum(), match["fp"].sum(), match["fn"].sum())
    cat_names = {c["id"]: c["name"] for c in gt["categories"]}
    rows = []
    for cls in coco["per_class"]:
        k = match["categories"].index(cls["id"])
        rows.append(
            {
                **cls,
                "precision": prf["precision"][k],
                "recall": prf["recall"][k],
                "f1": prf["f1"][k],
                "tp": int(match["tp"][k]),
                "fp": int(match["fp"][k]),
                "fn": int(match["fn"][k]),
            }
        )
    rows = worst_first(rows, "AP")
    labels = [cat_names[c] for c in match["categories"]] + ["background"]
    sliced = [_slice_detection(gt, results, match, spec, iou_threshold, score_threshold) for spec in specs]

    write_json(os.path.join(out_dir, "detections.json"), results)
    write_csv(
        os.path.join(out_dir, "per_class.csv"),
        rows,
        ["name", "id", "gt", "AP", "AP50", "AP75", "precision", "recall", "f1", "tp", "fp", "fn"],
    )
    write_matrix(os.path.join(out_dir, "confusion_matrix.csv"), match["confusion"], labels)
    plot_confusion(
        os.path.join(out_dir, "confusion_matrix.png"),
        match["confusion"],
        labels,
        f"detections (IoU {iou_threshold}, score >= {score_threshold})",
    )
    plot_pr_curves(os.path.join(out_dir, "pr_curves.png"), coco["pr_curves"])
    for s in sliced:
        write_csv(os.path.join(out_dir, f"by_{safe_name(s['attribute'])}.csv"), s["bins"], list(s["bins"][0]))
        plot_bins(os.path.join(out_dir, f"by_{safe_name(s['attribute'])}.png"), s, ("recall", "AP50"))
    return {
        "images": len(ds),
        "detections": len(results),
        "score_threshold": score_threshold,
        "iou_threshold": iou_threshold,
        "coco": coco["summary"],
        "coco_segm": segm,
        "at_iou": {
            "precision": overall["precision"],
            "recall": overall["recall"],
            "f1": overall["f1"],
            "tp": int(match["tp"].sum()),
            "fp": int(match["fp"].sum()),
            "fn": int(match["fn"].sum()),
        },
        "per_class": rows,
        "confusion_matrix": {"labels": labels, "matrix": match["confusion"].tolist()},
        "by_attribute": sliced,
        "skipped": [str(s) for s in ds.skipped],
    }


def _slice_detection(gt, results, match, spec, iou_threshold, score_threshold) -> dict[str, Any]:
    """Per bin: recall of the annotations in it (annotation attributes) or, for image fields, every metric on the
    images in it. An annotation attribute cannot own a false positive, so only recall is defined per bin then."""
    name, bins = spec
    images = {im["id"]: im for im in gt["images"]}
    anns = [a for a in gt["annotations"] if not a.get("iscrowd", 0)]
    per_ann = [(a, attribute_value(name, a, None)) for a in anns]
    if any(v is not None for _, v in per_ann):
        values = [v for _, v in per_ann if v is not None]
        edges = bin_edges(values, bins)
        counts = np.zeros(len(edges) - 1, int)
        hits = np.zeros(len(edges) - 1, int)
        for a, v in per_ann:
            b = None if v is None else bin_of(v, edges)
            if b is not None:
                counts[b] += 1
                hits[b] += int(match["matched"].get(a.get("id"), False))
        rows = [
            {
                "bin": bin_label(edges, i),
                "low": edges[i],
                "high": edges[i + 1],
                "objects": int(counts[i]),
                "found": int(hits[i]),
                "recall": float(hits[i] / counts[i]) if counts[i] else None,
            }
            for i in range(len(edges) - 1)
        ]
        missing = sum(1 for _, v in per_ann if v is None)
        return {"attribute": name, "level": "annotation", "edges": edges, "bins": rows, "missing": missing}
    per_image = {iid: attribute_value(name, None, im) for iid, im in images.items()}
    values = [v for v in per_image.values() if v is not None]
    if not values:
        raise DataError(
            f"--by-attribute {name!r}: no annotation attribute or image field of that name "
            "(try e.g. occlusion, truncation, depth_median, camera.elevation_deg)"
        )
    edges = bin_edges(values, bins)
    rows = []
    for i in range(len(edges) - 1):
        ids = [iid for iid, v in per_image.items() if v is not None and bin_of(v, edges) == i]
        sub_gt = dict(
            gt, images=[images[j] for j in ids], annotations=[a for a in gt["annotations"] if a["image_id"] in set(ids)]
        )
        sub = match_detections(
            sub_gt, [r for r in results if r["image_id"] in set(ids)], iou_threshold, score_threshold
        )
        prf = precision_recall_f1(sub["tp"].sum(), sub["fp"].sum(), sub["fn"].sum())
        ap = coco_evaluate(gt, results, image_ids=ids)["summary"] if ids else {}
        rows.append(
            {
                "bin": bin_label(edges, i),
                "low": edges[i],
                "high": edges[i + 1],
                "images": len(ids),
                "objects": int(sub["tp"].sum() + sub["fn"].sum()),
                "recall": prf["recall"],
                "precision": prf["precision"],
                "f1": prf["f1"],
                "mAP": ap.get("mAP"),
                "AP50": ap.get("AP50"),
            }
        )
    missing = sum(1 for v in per_image.values() if v is None)
    return {"attribute": name, "level": "image", "edges": edges, "bins": rows, "missing": missing}


# --------------------------------------------------------------------------------------------------------------
# Keypoints

OVERLAY_IMAGES = 4


def _evaluate_keypoints(ckpt, data_path, out_dir, device, batch_size, workers, skip_bad, note) -> dict[str, Any]:
    from trainer.data.datasets import describe_skips, detection_collate
    from trainer.data.keypoints import CocoKeypoints, check_same_keypoints
    from trainer.data.transforms import keypoint_transforms
    from trainer.evaluation.keypoints import board_pose_errors, keypoint_errors, oks_ap
    from trainer.evaluation.predict import predict_keypoints
    from trainer.training.keypoints import build_keypoint_model_from_checkpoint, resolve_sigma

    ds = CocoKeypoints(data_path, keypoint_transforms([]), on_problem="skip" if skip_bad else "raise")
    note(describe_skips(dataset_name(data_path), ds.skipped))
    categories = _by_name(ckpt["categories"], ds.categories, data_path)
    check_same_keypoints([("the model", list(ckpt["keypoint_names"])), (data_path, ds.keypoint_names)])
    model = build_keypoint_model_from_checkpoint(ckpt).to(device)
    loader = torch.utils.data.DataLoader(
        ds, batch_size=batch_size, shuffle=False, num_workers=workers, collate_fn=detection_collate
    )
    results = predict_keypoints(model, loader, device, categories)
    gt = ds.coco_ground_truth()
    sigma = resolve_sigma(ckpt.get("oks_sigma"))
    sigmas = [sigma] * ds.num_keypoints
    box = coco_evaluate(gt, results)["summary"]
    oks = oks_ap(gt, results, sigmas)
    errors = keypoint_errors(gt, results, thresholds=(2.0, 5.0), sigmas=sigmas)
    pose = None
    if any(isinstance(im.get("board"), dict) for im in gt["images"]):
        grid = ((gt.get("info") or {}).get("board") or {}).get("inner_corners", (9, 6))
        pose = board_pose_errors(
            gt["images"], gt["annotations"], results, square_mm=25.0, grid=tuple(grid), sigmas=sigmas
        )

    write_json(os.path.join(out_dir, "keypoints.json"), results)
    write_csv(os.path.join(out_dir, "per_keypoint.csv"), errors["per_keypoint"], ["index", "name", "mean_px", "n"])
    if pose is not None:
        rows = pose["rows"] + [{**f, "points": None} for f in pose["failed"]]
        columns = ["image_id", "file_name", "points", "rotation_deg", "translation_mm", "reason"]
        write_csv(os.path.join(out_dir, "board_pose.csv"), rows, columns)
    plot_keypoint_overlay(
        os.path.join(out_dir, "keypoints_overlay.png"), _overlay_panels(ds, gt, results, sigmas), ds.skeleton
    )
    return {
        "images": len(ds),
        "detections": len(results),
        "oks_sigma": sigma,
        "box": box,
        "keypoints": {
            "oks": oks,
            "errors": {k: v for k, v in errors.items() if k != "per_keypoint"},
            "per_keypoint": errors["per_keypoint"],
            "pose": pose,
        },
        "skipped": [str(s) for s in ds.skipped],
    }


def _overlay_panels(ds, gt: dict, results: list[dict], sigmas: list[float]) -> list[dict]:
    """The first images that hold labelled keypoints, each with its ground truth and the results matched to it."""
    from trainer.data.datasets import read_image, resolve_image_path
    from trainer.evaluation.keypoints import match_results

    matched, _ = match_results(gt, results, sigmas)
    k = ds.num_keypoints
    panels = []
    for info, anns in zip(ds.images, ds.anns, strict=True):
        labelled = [a for a in anns if any(v > 0 for v in a["keypoints"][2::3])]
        if not labelled:
            continue
        image = read_image(resolve_image_path(ds.source.images_root, info["file_name"]))
        preds = [matched[a["id"]] for a in labelled if a["id"] in matched]
        panels.append({
            "image": image.permute(1, 2, 0).numpy(),
            "gt": [np.asarray(a["keypoints"], float).reshape(k, 3) for a in labelled],
            "pred": [np.asarray(r["keypoints"], float).reshape(k, 3) for r in preds],
            "title": f"{info['file_name']}: " + (", ".join(f"score {r['score']:.2f}" for r in preds) or "no match"),
        })  # fmt: skip
        if len(panels) == OVERLAY_IMAGES:
            break
    return panels


# --------------------------------------------------------------------------------------------------------------
# Classification


def _evaluate_classification(
    ckpt, data_path, out_dir, specs, device, batch_size, workers, n_resamples, resample_size, skip_bad, seed, note
) -> dict[str, Any]:
    from trainer.data.datasets import classification_dataset, describe_skips
    from trainer.data.transforms import classification_transforms
    from trainer.evaluation.predict import predict_classification
    from trainer.training.classify import build_classifier_from_checkpoint

    tf = classification_transforms(int(ckpt.get("image_size", 224)), [], bool(ckpt.get("grayscale", False)))
    ds = classification_dataset(
        data_path, tf, on_problem="skip" if skip_bad else "raise", padding=float(ckpt.get("padding", 0.1))
    )
    note(describe_skips(dataset_name(data_path), ds.skipped))
    _by_name(ckpt["categories"], ds.categories, data_path)  # same class names, or a DataError
    remap = {c["name"]: i for i, c in enumerate(ckpt["categories"])}
    old_names = [c["name"] for c in ds.categories]
    ds.targets = [remap[old_names[t]] for t in ds.targets]  # dataset labels in the model's order
    model = build_classifier_from_checkpoint(ckpt).to(device)
    loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=workers)
    true, pred, score = predict_classification(model, loader, device)
    names = [c["name"] for c in ckpt["categories"]]
    k = len(names)
    rows = bootstrap_class_accuracy(true, pred, k, n_resamples, resample_size, seed=seed)
    for r in rows:
        r["name"] = names[r.pop("class")]
    rows = worst_first(rows, "accuracy")
    matrix = confusion_matrix(true, pred, k)
    accuracy = float(np.mean(np.asarray(true) == np.asarray(pred))) if true else None
    sliced = [_slice_classification(ds, true, pred, spec) for spec in specs]

    with atomic_write(os.path.join(out_dir, "predictions.csv"), newline="") as f:
        w = csv.writer(f)
        w.writerow(["index", "image_id", "annotation_id", "true", "pred", "score"])
        for i, (t, p, s) in enumerate(zip(true, pred, score, strict=True)):
            image_id, ann_id = ds.meta[i]
            w.writerow([i, image_id, "" if ann_id is None else ann_id, names[t], names[p], f"{s:.5f}"])
    write_csv(
        os.path.join(out_dir, "per_class.csv"),
        rows,
        ["name", "n", "accuracy", "ci_low", "ci_high", "mean", "min", "max"],
    )
    write_matrix(os.path.join(out_dir, "confusion_matrix.csv"), matrix, names)
    plot_confusion(os.path.join(out_dir, "confusion_matrix.png"), matrix, names, "classification")
    plot_class_accuracy(os.path.join(out_dir, "per_class_accuracy.png"), rows)
    for s in sliced:
        write_csv(os.path.join(out_dir, f"by_{safe_name(s['attribute'])}.csv"), s["bins"], list(s["bins"][0]))
        plot_bins(os.path.join(out_dir, f"by_{safe_name(s['attribute'])}.png"), s, ("accuracy",))
    return {
        "samples": len(ds),
        "accuracy": accuracy,
        "bootstrap": {"resamples": n_resamples, "resample_size": resample_size, "confidence": 0.95},
        "per_class": rows,
        "confusion_matrix": {"labels": names, "matrix": matrix.tolist()},
        "by_attribute": sliced,
        "skipped": [str(s) for s in ds.skipped],
    }


def _slice_classification(ds, true, pred, spec) -> dict[str, Any]:
    name, bins = spec
    if not hasattr(ds, "annotation"):
        raise DataError(f"--by-attribute {name!r} needs a COCO dataset (ImageFolder has no attributes)")
    values = []
    for i in range(len(ds)):
        image, ann = ds.annotation(i)
        values.append(attribute_value(name, ann, image))
    known = [v for v in values if v is not None]
    if not known:
        raise DataError(f"--by-attribute {name!r}: no annotation attribute or image field of that name")
    edges = bin_edges(known, bins)
    rows = []
    for b in range(len(edges) - 1):
        idx = [i for i, v in enumerate(values) if v is not None and bin_of(v, edges) == b]
        correct = sum(int(true[i] == pred[i]) for i in idx)
        rows.append(
            {
                "bin": bin_label(edges, b),
                "low": edges[b],
                "high": edges[b + 1],
                "samples": len(idx),
                "correct": correct,
                "accuracy": correct / len(idx) if idx else None,
            }
        )
    return {
        "attribute": name,
        "level": "annotation",
        "edges": edges,
        "bins": rows,
        "missing": sum(v is None for v in values),
    }

"""The files of an evaluation report: JSON, CSV tables and plots, each written atomically.

``trainer/evaluation/evaluate.py`` computes the numbers and calls these; nothing here computes a metric.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from shared.atomic import atomic_path, atomic_write


def write_json(path: str, value: Any) -> None:
    with atomic_write(path) as f:
        json.dump(value, f, indent=1, default=float)


def write_csv(path: str, rows: list[dict], columns: list[str]) -> None:
    with atomic_write(path, newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in columns})


def write_matrix(path: str, matrix: np.ndarray, labels: list[str]) -> None:
    with atomic_write(path, newline="") as f:
        w = csv.writer(f)
        w.writerow(["true \\ pred", *labels])
        for label, row in zip(labels, matrix.tolist(), strict=True):
            w.writerow([label, *row])


def safe_name(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in name)


def _figure():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, path: str) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, bbox_inches="tight")
    plt.close(fig)


def plot_confusion(path: str, matrix: np.ndarray, labels: list[str], title: str) -> None:
    plt = _figure()
    size = 2 + 0.5 * len(labels)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for (i, j), v in np.ndenumerate(matrix):
        ax.text(j, i, str(v), ha="center", va="center", fontsize=8)
    _save(plt, fig, path)


def plot_pr_curves(path: str, curves: dict) -> None:
    plt = _figure()
    fig, ax = plt.subplots(figsize=(5, 4))
    recall = curves["recall"]
    for name, c in curves["per_class"].items():
        prec = [np.nan if v is None else v for v in c["iou50"]]
        ax.plot(recall, prec, label=name)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.05)
    ax.set_title("precision-recall at IoU 0.5")
    ax.legend(fontsize=7)
    _save(plt, fig, path)


def plot_class_accuracy(path: str, rows: list[dict]) -> None:
    plt = _figure()
    fig, ax = plt.subplots(figsize=(5, 1 + 0.35 * len(rows)))
    names = [r["name"] for r in rows]
    acc = [np.nan if r["accuracy"] is None else r["accuracy"] for r in rows]
    lo = [0 if r["ci_low"] is None else r["accuracy"] - r["ci_low"] for r in rows]
    hi = [0 if r["ci_high"] is None else r["ci_high"] - r["accuracy"] for r in rows]
    ax.barh(names, acc, xerr=[lo, hi], color="tab:blue", alpha=0.8)
    ax.set_xlim(0, 1)
    ax.set_xlabel("accuracy (95% bootstrap interval)")
    ax.invert_yaxis()
    _save(plt, fig, path)


def plot_bins(path: str, sliced: dict, keys: Sequence[str]) -> None:
    plt = _figure()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    labels = [b["bin"] for b in sliced["bins"]]
    for key in keys:
        ys = [np.nan if b.get(key) is None else b[key] for b in sliced["bins"]]
        ax.plot(range(len(labels)), ys, marker="o", label=key)
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_xlabel(sliced["attribute"])
    ax.legend()
    _save(plt, fig, path)


def plot_keypoint_overlay(path: str, panels: Sequence[dict], skeleton: Sequence[Sequence[int]] = ()) -> None:
    """A row of images with ground-truth keypoints (green rings) and the predictions matched to them (red
    crosses on a skeleton line in red), for the README and a first look.

    Each panel is ``{"image": HxWx3 uint8, "gt": [(K, 3) array], "pred": [(K, 3) array], "title": str}`` in COCO
    continuous coordinates; the image is drawn with ``extent=(0, W, H, 0)`` so pixel (i, j) covers [i, i + 1] x
    [j, j + 1] and a point lands where the data puts it. Only labelled ground truth (v > 0) is drawn.
    """
    plt = _figure()
    n = max(1, len(panels))
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3.6), squeeze=False)
    for ax, panel in zip(axes[0], panels, strict=False):
        image = np.asarray(panel["image"])
        h, w = image.shape[:2]
        ax.imshow(image, extent=(0, w, h, 0), cmap="gray" if image.ndim == 2 else None)
        for gt in panel["gt"]:
            seen = gt[:, 2] > 0
            ax.scatter(gt[seen, 0], gt[seen, 1], s=28, facecolors="none", edgecolors="lime", linewidths=1.2)
        for pred in panel["pred"]:
            for a, b in skeleton:
                ax.plot(pred[[a - 1, b - 1], 0], pred[[a - 1, b - 1], 1], color="red", linewidth=0.6, alpha=0.6)
            ax.scatter(pred[:, 0], pred[:, 1], s=16, marker="x", color="red", linewidths=1.0)
        ax.set_xlim(0, w)
        ax.set_ylim(h, 0)
        ax.set_title(panel.get("title", ""), fontsize=8)
        ax.axis("off")
    for ax in axes[0][len(panels) :]:
        ax.axis("off")
    fig.suptitle("keypoints: ground truth (green rings), prediction (red crosses)", fontsize=9)
    _save(plt, fig, path)

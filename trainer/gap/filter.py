"""``blendset gap filter``: drop the synthetic images (and boxes) least likely under the real feature
distribution (the gap thesis, 4.7 and 5.4.4: chair mAP 0.429 -> 0.465 after filtering).

Every synthetic image is scored by its features' likelihood under the real set
(:func:`trainer.gap.distances.likelihood_scores`): ``knn`` (minus the mean distance to the k nearest real images;
the default, robust with ~100 real images) or ``kde`` (Gaussian KDE log-density in the real set's top principal
components). The cut is the knee of the sorted scores (Kneedle) or a fixed ``keep`` share.

Boxes: with ``level="box"`` or ``"both"`` box crops are scored the same way, and low boxes are taken out of images
that stay. The pixels must stay consistent with the labels, so a dropped box is either

- ``blackout`` (default): its pixels are painted black (mask-exact when the dataset has instance maps, keeping
  the pixels of every kept object; the whole box otherwise), and the annotation is removed: no unlabelled
  object remains for a detector to learn as background. The gap thesis calls this "black-boxed".
- ``ignore``: pixels untouched, the annotation stays with ``iscrowd: 1`` and ``ignore: 1``: COCO evaluation and
  trainers that honour crowd regions skip it. Choose it only if your trainer does (torchvision's reference
  loader drops crowd boxes, which turns the object into background).
"""

from __future__ import annotations

import csv
import math
import os
import shutil
from typing import Any

import numpy as np

from shared.atomic import atomic_path, atomic_write, write_json
from shared.progress import ProgressFn, Step
from trainer.gap import GapError
from trainer.gap import distances as dist
from trainer.gap.metadata import category_names, check_classes, image_path, load_dataset, read_rgb


def choose_cut(scores: np.ndarray, keep: float | None = None, max_drop: float = 0.5) -> tuple[int, str]:
    """How many of the lowest scores to drop: ``keep`` share, else the elbow (at most ``max_drop`` of all)."""
    n = len(scores)
    if keep is not None:
        if not 0.0 < keep <= 1.0:
            raise GapError(f"--keep must be in (0, 1], got {keep}")
        return int(round(n * (1.0 - keep))), f"keep {keep:.0%}"
    drop = dist.elbow_index(np.sort(scores))
    cap = int(math.floor(max_drop * n))
    if drop > cap:
        return cap, f"elbow at {drop}, capped at max_drop {max_drop:.0%}"
    return drop, "elbow" if drop else "elbow: no knee (scores close to a straight line), nothing dropped"


def filter_dataset(
    synthetic: str,
    real: str,
    out: str,
    extractor: str = "random",
    method: str = "knn",
    keep: float | None = None,
    level: str = "image",
    box_mode: str = "blackout",
    k: int = 5,
    size: int = 96,
    max_drop: float = 0.5,
    link: bool = False,
    device: str = "cpu",
    overwrite: bool = False,
    progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """Write a filtered copy of ``synthetic`` to ``out`` (images/ + annotations.json + scores.csv +
    filter.json). Returns the summary written to filter.json."""
    from trainer.gap.features import build_extractor, embed_dataset

    if level not in ("image", "box", "both"):
        raise GapError(f"unknown level {level!r}; use image, box or both")
    if box_mode not in ("blackout", "ignore"):
        raise GapError(f"unknown box mode {box_mode!r}; use blackout or ignore")
    _prepare(out, synthetic, overwrite)
    syn = load_dataset(synthetic, "synthetic")
    rea = load_dataset(real, "real")
    notes = check_classes(category_names(syn), category_names(rea))
    ext = build_extractor(extractor, size=size, device=device)
    want_boxes = level != "image"
    emb_s = embed_dataset(syn, ext, boxes=want_boxes, progress=progress, stage="features (synthetic)")
    emb_r = embed_dataset(rea, ext, boxes=want_boxes, progress=progress, stage="features (real)")

    image_scores = dist.likelihood_scores(emb_r.images, emb_s.images, method, k)
    drop_images: set[int] = set()
    image_rule = "no image-level filtering"
    if level in ("image", "both"):
        n_drop, image_rule = choose_cut(image_scores, keep, max_drop)
        order = np.argsort(image_scores, kind="stable")
        drop_images = {int(emb_s.image_ids[i]) for i in order[:n_drop]}
    drop_boxes: set[int] = set()
    box_scores = np.zeros(0)
    box_rule = "no box-level filtering"
    if want_boxes:
        if len(emb_r.boxes) < 2:
            raise GapError(f"box-level filtering needs at least 2 real boxes, got {len(emb_r.boxes)}")
        box_scores = dist.likelihood_scores(emb_r.boxes, emb_s.boxes, method, k)
        n_drop, box_rule = choose_cut(box_scores, keep, max_drop)
        order = np.argsort(box_scores, kind="stable")
        drop_boxes = {int(emb_s.annotation_ids[i]) for i in order[:n_drop]}

    summary = write_filtered(syn, out, drop_images, drop_boxes, box_mode, link, progress)
    summary.update(
        {
            "synthetic": synthetic,
            "real": real,
            "extractor": ext.label,
            "random_init": ext.random_init,
            "method": method,
            "level": level,
            "box_mode": box_mode,
            "image_rule": image_rule,
            "box_rule": box_rule,
            "images_in": len(emb_s.image_ids),
            "images_dropped": sorted(drop_images),
            "boxes_in": len(emb_s.annotation_ids),
            "boxes_dropped": sorted(drop_boxes),
            "notes": notes,
            "box_mode_explained": BOX_MODES[box_mode],
        }
    )
    _write_scores(os.path.join(out, "scores.csv"), syn, emb_s, image_scores, drop_images, box_scores, drop_boxes)
    write_json(os.path.join(out, "filter.json"), summary, indent=2)
    return summary


BOX_MODES = {
    "blackout": "dropped boxes were painted black (instance-mask exact where instance maps exist, keeping kept "
    "objects' pixels) and their annotations removed",
    "ignore": "dropped boxes keep their pixels; their annotations stay with iscrowd=1 and ignore=1",
}


def _prepare(out: str, synthetic: str, overwrite: bool) -> None:
    if os.path.realpath(out) == os.path.realpath(synthetic):
        raise GapError("--out must differ from --synthetic (the filtered set is written next to the original)")
    if os.path.exists(os.path.join(out, "annotations.json")):
        if not overwrite:
            raise GapError(f"{out!r} already holds a dataset; pass --overwrite to replace")
        shutil.rmtree(os.path.join(out, "images"), ignore_errors=True)
    os.makedirs(os.path.join(out, "images"), exist_ok=True)


def write_filtered(
    loaded: Any,
    out: str,
    drop_images: set[int],
    drop_boxes: set[int],
    box_mode: str,
    link: bool,
    progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """Copy (or hard-link) kept images, black out or mark dropped boxes, write annotations.json last (progress
    stage ``writing``)."""
    from shared.layout import safe_join

    data = loaded.data
    anns_by_image: dict[int, list[dict[str, Any]]] = {}
    for a in data.get("annotations", []):
        anns_by_image.setdefault(int(a["image_id"]), []).append(a)
    images_out, anns_out = [], []
    blacked = overlapped = 0
    kept = [im for im in data["images"] if int(im["id"]) not in drop_images]
    for i, image in enumerate(kept):
        anns = anns_by_image.get(int(image["id"]), [])
        gone = [a for a in anns if int(a["id"]) in drop_boxes]
        stay = [a for a in anns if int(a["id"]) not in drop_boxes]
        src = image_path(loaded, image)
        dst = safe_join(os.path.join(out, "images"), image["file_name"])
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        if gone and box_mode == "blackout":
            rgb = read_rgb(src).copy()
            overlapped += _blackout(rgb, loaded, image, gone, stay)
            _save_image(rgb, dst)
            blacked += len(gone)
            anns_out.extend(stay)
        else:
            _copy(src, dst, link)
            anns_out.extend(stay)
            if gone:  # ignore mode
                anns_out.extend({**a, "iscrowd": 1, "ignore": 1} for a in gone)
        images_out.append(image)
        if progress:
            progress(Step("writing", i + 1, len(kept)))
    info = dict(data.get("info") or {})
    info["blendset_filter"] = {
        "images_dropped": len(drop_images),
        "boxes_dropped": len(drop_boxes),
        "box_mode": box_mode,
        "explained": BOX_MODES[box_mode],
    }
    coco = {**data, "info": info, "images": images_out, "annotations": anns_out}
    # fsync: an annotations.json in OUT is what marks the filtered dataset as complete (see _prepare)
    write_json(os.path.join(out, "annotations.json"), coco, indent=None, fsync=True)
    return {
        "images_out": len(images_out),
        "annotations_out": len(anns_out),
        "boxes_blacked_out": blacked,
        "blackout_overlapping_kept_boxes": overlapped,
    }


def _blackout(rgb: np.ndarray, loaded: Any, image: dict[str, Any], gone: list[dict], stay: list[dict]) -> int:
    """Paint the dropped boxes black. With an instance map, only pixels not belonging to a kept object; without
    one, the whole box. Returns how many dropped boxes overlapped a kept box."""
    instance = _instance_map(loaded, image)
    protect = np.zeros(rgb.shape[:2], dtype=bool)
    if instance is not None:
        kept_ids = [int((a.get("attributes") or {}).get("instance_id", -1)) for a in stay]
        protect = np.isin(instance, [i for i in kept_ids if i > 0])
    overlaps = 0
    h, w = rgb.shape[:2]
    for a in gone:
        x, y, bw, bh = a["bbox"]
        x0, y0 = max(0, int(math.floor(x))), max(0, int(math.floor(y)))
        x1, y1 = min(w, int(math.ceil(x + bw))), min(h, int(math.ceil(y + bh)))
        region = np.zeros_like(protect)
        region[y0:y1, x0:x1] = True
        rgb[region & ~protect] = 0
        overlaps += any(_iou_overlap(a["bbox"], b["bbox"]) for b in stay)
    return overlaps


def _iou_overlap(a: list[float], b: list[float]) -> bool:
    return not (a[0] + a[2] <= b[0] or b[0] + b[2] <= a[0] or a[1] + a[3] <= b[1] or b[1] + b[3] <= a[1])


def _instance_map(loaded: Any, image: dict[str, Any]) -> np.ndarray | None:
    """OUT/instance/<stem>.png next to images/ (shared/layout.py), when the dataset has one."""
    from PIL import Image

    root = os.path.dirname(os.path.abspath(str(loaded.path)))
    stem = os.path.splitext(os.path.basename(image["file_name"]))[0]
    path = os.path.join(root, "instance", stem + ".png")
    if not os.path.isfile(path):
        return None
    with Image.open(path) as im:
        return np.asarray(im).astype(np.int64)


def _save_image(rgb: np.ndarray, dst: str) -> None:
    from PIL import Image

    with atomic_path(dst) as tmp:
        if dst.lower().endswith((".jpg", ".jpeg")):
            Image.fromarray(rgb).save(tmp, quality=95)
        else:
            Image.fromarray(rgb).save(tmp)


def _copy(src: str, dst: str, link: bool) -> None:
    if os.path.exists(dst):
        os.remove(dst)
    if link:
        try:
            os.link(src, dst)
            return
        except OSError:
            pass  # another file system: fall back to a copy
    shutil.copyfile(src, dst)


def _write_scores(
    path: str,
    loaded: Any,
    emb: Any,
    image_scores: np.ndarray,
    drop_images: set[int],
    box_scores: np.ndarray,
    drop_boxes: set[int],
) -> None:
    names = {int(im["id"]): im["file_name"] for im in loaded.data["images"]}
    with atomic_write(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["level", "image_id", "annotation_id", "file_name", "score", "dropped"])
        for iid, s in zip(emb.image_ids, image_scores, strict=True):
            w.writerow(["image", int(iid), "", names[int(iid)], f"{s:.6g}", int(int(iid) in drop_images)])
        if len(box_scores):
            ann_image = {int(a["id"]): int(a["image_id"]) for a in loaded.data["annotations"]}
            for aid, s in zip(emb.annotation_ids, box_scores, strict=True):
                iid = ann_image[int(aid)]
                w.writerow(["box", iid, int(aid), names[iid], f"{s:.6g}", int(int(aid) in drop_boxes)])

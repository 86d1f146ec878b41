"""COCO -> YOLO (Ultralytics/Darknet text labels) export.

Layout written under ``out_dir``::

    images/<file_name>        links (relative symlinks) to, or copies of, the COCO images
    labels/<stem>.txt         one line per annotation: ``class cx cy w h`` (normalised 0..1), or with
                              ``segments`` ``class x1 y1 x2 y2 ...`` (normalised polygon), or for a dataset
                              with keypoints ``class cx cy w h x1 y1 v1 ... xK yK vK`` (Ultralytics pose)
    data.yaml                 ``path``, ``train``, ``val``, ``nc``, ``names`` (+ ``kpt_shape``, ``flip_idx``)
    classes.txt               the category names, one per line, in class-index order

The class index of a category is its position in the sorted list of category ids (category id 0 included), and
``data.yaml`` / ``classes.txt`` list the names in that order. Every annotation that is not exported (crowd,
empty box, unknown image or category) is counted with its reason in the returned summary.

Pose: when a category has COCO ``keypoints``, every label line carries ``K`` keypoints, coordinates normalised
like the box and COCO's visibility kept (0 outside, 1 hidden, 2 visible; a ``v = 0`` point is ``0 0 0``).
``data.yaml`` gets ``kpt_shape: [K, 3]`` and ``flip_idx`` (from the category's ``keypoint_flip_map``, the pairs
of names a flip swaps; else the identity). Ultralytics holds one keypoint layout per dataset, so categories with
different keypoint names or flips are refused (:class:`YoloError`); box-only categories in a pose dataset get
all-zero keypoints. The identity ``flip_idx`` keeps every index in place under a left-right flip: right for a
layout with no left/right names, wrong for one that has no valid flip at all (a chessboard's corners, whose order
a mirror image reverses): train those with Ultralytics' ``fliplr=0``.
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from typing import Any

from .atomic import atomic_path, write_text
from .coco import write_json_atomic
from .errors import BlendsetError
from .keypoints import flip_index
from .layout import safe_join

__all__ = ["YoloError", "export_yolo", "category_index", "keypoint_layout"]


class YoloError(BlendsetError, ValueError):
    """The COCO data cannot be written in the YOLO format asked for (the message says why)."""


def category_index(coco: dict[str, Any]) -> dict[int, int]:
    """Category id -> YOLO class index (position among the sorted category ids)."""
    return {cid: i for i, cid in enumerate(sorted(int(c["id"]) for c in coco["categories"]))}


def _place_image(src: str, dst: str, link: bool) -> None:
    if os.path.lexists(dst):
        os.unlink(dst)
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    if link:
        try:
            os.symlink(os.path.relpath(src, os.path.dirname(dst)), dst)
            return
        except OSError:  # no symlinks here (some Windows setups, some mounts): copy instead
            pass
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)


def _link_path(out_dir: str, name: str) -> str:
    """Where an image link goes; checks the folder only, since the link itself may point outside."""
    base = os.path.basename(name)
    if base in ("", ".", ".."):
        raise ValueError(f"image file name {name!r} is not a file name")
    return os.path.join(safe_join(out_dir, "images", os.path.dirname(name) or "."), base)


def _fmt(v: float) -> str:
    return f"{min(max(v, 0.0), 1.0):.6f}"


def _polygons(ann: dict[str, Any]) -> list[list[float]] | None:
    if isinstance(ann.get("polygons"), list) and ann["polygons"]:
        return ann["polygons"]
    seg = ann.get("segmentation")
    if isinstance(seg, list) and seg and isinstance(seg[0], list):
        return seg
    return None


def keypoint_layout(coco: dict[str, Any]) -> tuple[list[str], list[int]] | None:
    """The dataset's one keypoint layout ``(names, flip_idx)``, or None without keypoints. Raises
    :class:`YoloError` when categories have different layouts (Ultralytics has one ``kpt_shape``)."""
    layout: tuple[list[str], list[int]] | None = None
    first = None
    for c in sorted(coco["categories"], key=lambda c: int(c["id"])):
        names = c.get("keypoints")
        if not names:
            continue
        try:
            flip = flip_index(names, c.get("keypoint_flip_map") or [])
        except (KeyError, TypeError, ValueError):
            raise YoloError(
                f"category {c['id']} ({c.get('name')!r}): keypoint_flip_map {c.get('keypoint_flip_map')!r} is not "
                "a list of pairs of its keypoint names"
            ) from None
        if layout is None:
            layout, first = (list(names), list(flip)), c
        elif (list(names), list(flip)) != layout:
            assert first is not None
            raise YoloError(
                f"a YOLO pose dataset holds one keypoint layout: category {c['id']} ({c.get('name')!r}, "
                f"{len(names)} keypoints) differs from category {first['id']} ({first.get('name')!r}, "
                f"{len(layout[0])} keypoints) in its keypoint names or flip_idx"
            )
    return layout


def _keypoint_text(ann: dict[str, Any], k: int, W: float, H: float) -> str:
    flat = ann.get("keypoints") or [0] * (3 * k)
    if len(flat) != 3 * k:
        raise YoloError(f"annotation {ann.get('id')}: {len(flat) // 3} keypoints, the dataset's layout has {k}")
    parts = []
    for x, y, v in zip(flat[0::3], flat[1::3], flat[2::3], strict=True):
        v = int(v)
        parts += ["0.000000", "0.000000", "0"] if v == 0 else [_fmt(x / W), _fmt(y / H), str(v)]
    return " ".join(parts)


def export_yolo(
    coco: dict[str, Any],
    images_dir: str,
    out_dir: str,
    link_images: bool = True,
    segments: bool | None = None,
) -> dict[str, Any]:
    """Write a YOLO dataset for ``coco`` (a COCO dict whose ``file_name``s are relative to ``images_dir``).

    ``segments``: write polygon lines instead of boxes; ``None`` decides by the data (polygons when any
    annotation has them, under ``polygons`` or as list-form ``segmentation``). Annotations without a polygon
    then get their box as a 4-corner polygon so every line of a file has the same form. A dataset with
    keypoints is written as pose labels (boxes plus keypoints; ``segments`` must not be True then). Returns a
    summary: ``images``, ``labels`` (files), ``boxes``, ``segments``, ``missing_images`` (image ids whose file is
    absent: their labels are still written), ``skipped`` (counts per reason), ``names``, and for pose
    ``kpt_shape`` and ``flip_idx``.
    """
    kpt = keypoint_layout(coco)
    if kpt is not None and segments:
        raise YoloError("the data has keypoints: Ultralytics' pose labels hold boxes and keypoints, not polygons")
    cats = category_index(coco)
    by_id = {int(c["id"]): c for c in coco["categories"]}
    names = [str(by_id[cid]["name"]) for cid in sorted(cats)]
    anns = coco.get("annotations", [])
    if segments is None:
        segments = kpt is None and any(_polygons(a) is not None for a in anns)
    images = {int(img["id"]): img for img in coco.get("images", [])}
    per_image: dict[int, list[dict]] = {i: [] for i in images}
    skipped: Counter[str] = Counter()
    for a in anns:
        if a.get("image_id") not in per_image:
            skipped["unknown image"] += 1
        elif a.get("category_id") not in cats:
            skipped["unknown category"] += 1
        elif a.get("iscrowd", 0):
            skipped["crowd annotation"] += 1
        elif not (len(a.get("bbox", [])) == 4 and a["bbox"][2] > 0 and a["bbox"][3] > 0):
            skipped["empty box"] += 1
        else:
            per_image[a["image_id"]].append(a)

    os.makedirs(os.path.join(out_dir, "images"), exist_ok=True)
    os.makedirs(os.path.join(out_dir, "labels"), exist_ok=True)
    n_boxes = n_segments = 0
    missing: list[int] = []
    stems: set[str] = set()
    for iid in sorted(per_image):
        img = images[iid]
        name = str(img["file_name"])
        stem = os.path.splitext(name)[0]
        if stem in stems:
            raise ValueError(f"two images map to the same label file {stem}.txt")
        stems.add(stem)
        W, H = float(img["width"]), float(img["height"])
        lines = []
        for a in sorted(per_image[iid], key=lambda a: a["id"]):
            cls = cats[a["category_id"]]
            x, y, bw, bh = (float(v) for v in a["bbox"])
            if segments:
                polys = _polygons(a) or [[x, y, x + bw, y, x + bw, y + bh, x, y + bh]]
                poly = max(polys, key=len)  # YOLO has one polygon per object: keep the largest outline
                coords = " ".join(_fmt(v / (W if k % 2 == 0 else H)) for k, v in enumerate(poly))
                lines.append(f"{cls} {coords}")
                n_segments += 1
            else:
                cx, cy = (x + bw / 2) / W, (y + bh / 2) / H
                line = f"{cls} {_fmt(cx)} {_fmt(cy)} {_fmt(bw / W)} {_fmt(bh / H)}"
                if kpt is not None:
                    line += " " + _keypoint_text(a, len(kpt[0]), W, H)
                lines.append(line)
                n_boxes += 1
        label_path = safe_join(out_dir, "labels", stem + ".txt")
        os.makedirs(os.path.dirname(label_path), exist_ok=True)
        write_text(label_path, "".join(line + "\n" for line in lines))
        src = safe_join(images_dir, name)
        if os.path.exists(src):
            _place_image(src, _link_path(out_dir, name), link_images)
        else:
            missing.append(iid)

    out_abs = os.path.abspath(out_dir)
    yaml_lines = [
        f"path: {json.dumps(out_abs)}",
        "train: images",
        "val: images",
        f"nc: {len(names)}",
        "names:",
        *[f"  {i}: {json.dumps(n)}" for i, n in enumerate(names)],
    ]
    if kpt is not None:
        yaml_lines += [f"kpt_shape: [{len(kpt[0])}, 3]", f"flip_idx: {json.dumps(kpt[1])}"]
        if kpt[1] == list(range(len(kpt[0]))):
            yaml_lines.append(
                "# identity flip_idx: if these keypoints have no left-right symmetry, train with fliplr=0"
            )
    write_text(os.path.join(out_dir, "data.yaml"), "\n".join(yaml_lines) + "\n")
    write_text(os.path.join(out_dir, "classes.txt"), "".join(n + "\n" for n in names))
    summary = {
        "images": len(per_image),
        "labels": len(per_image),
        "boxes": n_boxes,
        "segments": n_segments,
        "missing_images": missing,
        "skipped": dict(skipped),
        "names": names,
    }
    if kpt is not None:
        summary["kpt_shape"] = [len(kpt[0]), 3]
        summary["flip_idx"] = kpt[1]
    write_json_atomic(os.path.join(out_dir, "export_summary.json"), summary, indent=2)
    return summary

"""Convert Blendset/COCO datasets for other trainers: YOLO (via ``shared.yolo``) and ImageFolder box crops."""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

from shared.atomic import atomic_path
from trainer.data.datasets import CocoCrops, DataError


def _check_out(out: str, overwrite: bool) -> None:
    if os.path.isdir(out) and os.listdir(out) and not overwrite:
        raise DataError(f"{out} exists and is not empty (pass --overwrite to write into it)")
    os.makedirs(out, exist_ok=True)


def export_yolo_dataset(
    data: str,
    out: str,
    link_images: bool = True,
    segments: bool | None = None,
    skip_bad: bool = False,
    overwrite: bool = False,
) -> dict[str, Any]:
    """A YOLO folder (images/, labels/, data.yaml) from a checked COCO dataset; returns ``shared.yolo``'s summary
    plus ``skipped_on_load`` (what the COCO check removed, as text)."""
    from shared.yolo import export_yolo
    from trainer.data.datasets import load_coco_source

    source = load_coco_source(data, on_problem="skip" if skip_bad else "raise")
    _check_out(out, overwrite)
    try:
        summary = export_yolo(source.data, source.images_root, out, link_images=link_images, segments=segments)
    except ValueError as exc:  # shared.yolo names the image or label file it cannot map
        raise DataError(f"{data}: {exc}") from exc
    summary["skipped_on_load"] = [str(s) for s in source.skipped]
    return summary


def export_imagefolder(
    data: str, out: str, padding: float = 0.1, min_size: float = 2.0, skip_bad: bool = False, overwrite: bool = False
) -> dict[str, Any]:
    """One PNG per box crop in ``out/<class name>/<image_id>_<annotation_id>.png`` (readable by ImageFolder and
    by ``blendset train classify``). Returns counts per class and the skipped items with reasons."""
    from PIL import Image

    from shared.layout import safe_join

    ds = CocoCrops(
        data, transforms=None, padding=padding, on_problem="skip" if skip_bad else "raise", min_size=min_size
    )
    _check_out(out, overwrite)
    counts: Counter[str] = Counter()
    for i in range(len(ds)):
        crop, label = ds[i]
        name = ds.categories[label]["name"]
        image_id, ann_id = ds.meta[i]
        folder = safe_join(out, str(name))
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, f"{image_id}_{ann_id}.png")
        with atomic_path(path) as tmp:
            Image.fromarray(crop.permute(1, 2, 0).numpy()).save(tmp)
        counts[name] += 1
    for c in ds.categories:  # empty class folders keep the class list complete for ImageFolder
        os.makedirs(safe_join(out, str(c["name"])), exist_ok=True)
    return {"crops": sum(counts.values()), "per_class": dict(counts), "skipped": [str(s) for s in ds.skipped]}

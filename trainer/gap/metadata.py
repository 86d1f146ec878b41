"""Per-image and per-box metadata of a COCO dataset (the gap thesis, sections 4.6.1 and 4.6.2).

Basic metadata (both sides): box area, aspect, centre x/y; brightness, contrast, entropy, sharpness and blur of
the whole image and of each box crop; background similarity. Advanced metadata that only a renderer knows
(depth, distance, occlusion, truncation, visible pixels, a*d^2, object shape) come from our exports'
``annotations[*].attributes`` (shared/layout.py) and are NaN on real data; ``predict-metadata`` estimates them.

Background similarity has one definition, ``shared.annotate.background_similarity(rgb, mask)`` (the gap
thesis's boundary-pixel cosine). Real datasets have boxes, not masks, so the box outline is the mask proxy on BOTH sides
for the compared column ``background_similarity``; the exact mask-based value of synthetic boxes is kept apart
as ``background_similarity_mask``.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from shared.progress import ProgressFn, Step
from trainer.gap import GapError


@dataclass(frozen=True)
class MetaSpec:
    """One metadata column: how to bin it and what the gap thesis found about aligning it."""

    name: str
    level: str  # "box" or "image"
    label: str
    log: bool = False  # bin on a log10 scale (heavy-tailed values)
    matters: bool = False  # the gap thesis found aligning it changes mAP
    note: str = ""
    real: bool = True  # computable on real data (else synthetic-only)


METADATA: tuple[MetaSpec, ...] = (
    MetaSpec(
        "box_area",
        "box",
        "box area (share of image)",
        log=True,
        matters=True,
        note="the gap thesis, 5.2.1: aligning box area raised Faster R-CNN bag mAP 0.196 -> 0.454, "
        "chair 0.072 -> 0.125",
    ),
    MetaSpec(
        "box_center_y",
        "box",
        "box centre y (0 top, 1 bottom)",
        matters=True,
        note="the gap thesis, 5.2.2: position/orientation on a surface raised mAP; vertical-position BD 0.27 -> 0.08",
    ),
    MetaSpec(
        "box_center_x",
        "box",
        "box centre x (0 left, 1 right)",
        matters=True,
        note="position (the gap thesis compared the vertical axis only)",
    ),
    MetaSpec(
        "background_similarity",
        "box",
        "background similarity (box-outline proxy)",
        matters=True,
        note="the gap thesis, 5.3.2: white backgrounds (BD 0.75) gave mAP 0.01-0.03; aligning it by style transfer "
        "did not help further",
    ),
    MetaSpec("box_aspect", "box", "box aspect (w/h)", log=True, note="follows object orientation and shape"),
    MetaSpec("box_brightness", "box", "box brightness"),
    MetaSpec("box_contrast", "box", "box contrast (grey std)"),
    MetaSpec("box_entropy", "box", "box entropy (bits)"),
    MetaSpec("box_sharpness", "box", "box sharpness (Laplacian variance)", log=True),
    MetaSpec("box_blur", "box", "box blur (Crete et al., 0 sharp .. 1 blurred)"),
    MetaSpec("image_brightness", "image", "image brightness", note="the gap thesis, 5.2.3: no mAP gain from aligning"),
    MetaSpec("image_contrast", "image", "image contrast (grey std)", note="the gap thesis, 5.2.3: no mAP gain"),
    MetaSpec("image_entropy", "image", "image entropy (bits)", note="the gap thesis, 5.2.3: no mAP gain"),
    MetaSpec(
        "image_sharpness",
        "image",
        "image sharpness (Laplacian variance)",
        log=True,
        note="the gap thesis, 5.2.3: no mAP gain",
    ),
    MetaSpec(
        "image_blur",
        "image",
        "image blur (Crete et al.)",
        note="the gap thesis, 5.2.2: aligning blur did not help (augmenting blur in training did)",
    ),
    # Renderer-only (synthetic side), from annotations[*].attributes
    MetaSpec(
        "depth_median",
        "box",
        "depth median (m)",
        real=False,
        matters=False,
        note="the gap thesis, 5.3.3: close-ups cut overlapping predictions (Faster R-CNN 307 -> 75)",
    ),
    MetaSpec("distance", "box", "camera-object distance (m)", real=False),
    MetaSpec(
        "occlusion",
        "box",
        "occlusion (1 - visible/unoccluded)",
        real=False,
        note="the gap thesis, 5.3.4: aligning occlusion did not improve mAP",
    ),
    MetaSpec(
        "occlusion_ad2", "box", "visible pixels x depth^2 (the gap thesis's occlusion indicator)", log=True, real=False
    ),
    MetaSpec("truncation", "box", "truncation (share outside image)", real=False),
    MetaSpec("background_similarity_mask", "box", "background similarity (instance mask)", real=False),
)
SPECS = {s.name: s for s in METADATA}
SHAPE_NOTE = (
    "the gap thesis, 5.4.2: removing the two object shapes least likely under the real feature distribution "
    "raised mAP on all three sets (chair 0.429 -> 0.463)"
)


@dataclass
class DatasetMeta:
    """Metadata of one dataset: an image table and a box table, each a dict of equal-length columns."""

    name: str
    path: str
    images_root: str
    categories: dict[int, str]
    images: dict[str, np.ndarray]
    boxes: dict[str, np.ndarray]
    skipped: list[Any] = field(default_factory=list)
    coco: dict[str, Any] = field(default_factory=dict)

    @property
    def n_images(self) -> int:
        return len(self.images["image_id"])

    @property
    def n_boxes(self) -> int:
        return len(self.boxes["annotation_id"])


# ---------------------------------------------------------------------------------------------------------------
# Loading


def load_dataset(path: str, role: str) -> Any:
    """Read a dataset folder (its ``annotations.json``) or a COCO file through ``shared.coco.load_coco``;
    problems become a GapError naming ``role``."""
    from shared.coco import load_coco

    if not os.path.exists(path):
        raise GapError(f"{role} dataset {path!r} does not exist")
    coco_file = os.path.join(path, "annotations.json") if os.path.isdir(path) else path
    if not os.path.isfile(coco_file):
        raise GapError(f"{role} dataset {path!r} has no annotations.json")
    try:
        loaded = load_coco(coco_file, on_problem="raise", check_files=True)
    except GapError:
        raise
    except (ValueError, OSError, KeyError, TypeError) as e:
        raise GapError(f"{role} dataset {path!r}: {e}") from e
    if not loaded.data.get("images"):
        raise GapError(f"{role} dataset {path!r} has no images")
    return loaded


def image_path(loaded: Any, image: dict[str, Any]) -> str:
    from shared.layout import safe_join

    return safe_join(str(loaded.images_root), image["file_name"])


def read_rgb(path: str) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def iter_images(loaded: Any) -> Iterator[tuple[dict[str, Any], np.ndarray]]:
    for image in loaded.data["images"]:
        yield image, read_rgb(image_path(loaded, image))


def category_names(loaded: Any) -> dict[int, str]:
    """``{category id: name}`` of a loaded dataset."""
    return {int(c["id"]): str(c["name"]) for c in loaded.data.get("categories", [])}


def check_classes(synthetic: dict[int, str], real: dict[int, str]) -> list[str]:
    """Classes are matched by name. Real classes missing from the synthetic set are an error (nothing to compare
    or align them with); synthetic-only classes are returned as a note."""
    syn, rea = set(synthetic.values()), set(real.values())
    missing = sorted(rea - syn)
    if missing:
        raise GapError(
            f"mismatched classes: the real set has {missing} which the synthetic set lacks "
            f"(synthetic classes: {sorted(syn)}); rename the categories or render those classes"
        )
    extra = sorted(syn - rea)
    return [f"synthetic-only classes (not in the real set): {extra}"] if extra else []


# ---------------------------------------------------------------------------------------------------------------
# Pixel statistics


def grey(rgb: np.ndarray) -> np.ndarray:
    """Luma on the 0..255 scale (ITU-R BT.601 weights)."""
    rgb = rgb.astype(np.float64)
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


def entropy_bits(g: np.ndarray) -> float:
    hist = np.bincount(np.clip(g, 0, 255).astype(np.int64).ravel(), minlength=256).astype(np.float64)
    p = hist[hist > 0] / hist.sum()
    return float(-(p * np.log2(p)).sum())


def laplacian_variance(g: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian: high for crisp edges (the usual sharpness measure)."""
    if g.shape[0] < 3 or g.shape[1] < 3:
        return math.nan
    lap = g[1:-1, :-2] + g[1:-1, 2:] + g[:-2, 1:-1] + g[2:, 1:-1] - 4.0 * g[1:-1, 1:-1]
    return float(lap.var())


def blur_crete(g: np.ndarray, width: int = 9) -> float:
    """No-reference blur of Crete et al. (2007): re-blur the image and measure how much of its neighbour-pixel
    variation survives. 0 = sharp, 1 = fully blurred. Max over the two axes."""
    if min(g.shape) < width + 2:
        return math.nan
    from scipy.ndimage import uniform_filter1d

    out = []
    for axis in (0, 1):
        blurred = uniform_filter1d(g, width, axis=axis, mode="nearest")
        d_f = np.abs(np.diff(g, axis=axis))
        d_b = np.abs(np.diff(blurred, axis=axis))
        s_f = d_f.sum()
        if s_f <= 0:
            out.append(1.0)
            continue
        s_v = np.maximum(0.0, d_f - d_b).sum()
        out.append(float((s_f - s_v) / s_f))
    return max(out)


def pixel_stats(rgb: np.ndarray, prefix: str) -> dict[str, float]:
    g = grey(rgb)
    if g.size == 0:
        return {f"{prefix}_{k}": math.nan for k in ("brightness", "contrast", "entropy", "sharpness", "blur")}
    return {
        f"{prefix}_brightness": float(g.mean() / 255.0),
        f"{prefix}_contrast": float(g.std() / 255.0),
        f"{prefix}_entropy": entropy_bits(g),
        f"{prefix}_sharpness": laplacian_variance(g),
        f"{prefix}_blur": blur_crete(g),
    }


def box_background_similarity(rgb: np.ndarray, bbox: list[float]) -> float:
    """The box outline as the object mask (real data has no masks): the gap thesis's boundary cosine, computed by
    ``shared.annotate.background_similarity`` on a crop with a margin so the ring outside the box exists."""
    from shared.annotate import background_similarity

    h, w = rgb.shape[:2]
    x, y, bw, bh = bbox
    x0, y0 = int(math.floor(x)), int(math.floor(y))
    x1, y1 = int(math.ceil(x + bw)), int(math.ceil(y + bh))
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    if x1 <= x0 or y1 <= y0:
        return math.nan
    m = 3
    cx0, cy0, cx1, cy1 = max(0, x0 - m), max(0, y0 - m), min(w, x1 + m), min(h, y1 + m)
    crop = rgb[cy0:cy1, cx0:cx1]
    mask = np.zeros(crop.shape[:2], dtype=bool)
    mask[y0 - cy0 : y1 - cy0, x0 - cx0 : x1 - cx0] = True
    if mask.all():  # the box covers the whole image: no background ring
        return math.nan
    value = background_similarity(crop, mask)
    return math.nan if value is None else float(value)


def shape_name(attributes: dict[str, Any]) -> str:
    """The object identity the gap thesis calls "shape": the Blender object name without its ``.001`` copy suffix."""
    name = str(attributes.get("object") or "")
    return re.sub(r"\.\d{3,}$", "", name)


# ---------------------------------------------------------------------------------------------------------------
# Tables


def compute_metadata(loaded: Any, name: str, progress: ProgressFn | None = None) -> DatasetMeta:
    """One pass over the images: image-level stats, then every box of that image. Progress stage:
    ``metadata (<name>)``."""
    data = loaded.data
    categories = category_names(loaded)
    anns_by_image: dict[int, list[dict[str, Any]]] = {}
    for a in data.get("annotations", []):
        anns_by_image.setdefault(int(a["image_id"]), []).append(a)
    img_rows: list[dict[str, Any]] = []
    box_rows: list[dict[str, Any]] = []
    total = len(data["images"])
    for i, (image, rgb) in enumerate(iter_images(loaded)):
        h, w = rgb.shape[:2]
        img_rows.append({"image_id": int(image["id"]), "width": w, "height": h, **pixel_stats(rgb, "image")})
        for a in anns_by_image.get(int(image["id"]), []):
            box_rows.append(_box_row(rgb, a, categories))
        if progress:
            progress(Step(f"metadata ({name})", i + 1, total))
    return DatasetMeta(
        name=name,
        path=str(loaded.path),
        images_root=str(loaded.images_root),
        categories=categories,
        images=_columns(img_rows, ("image_id",)),
        boxes=_columns(box_rows, ("annotation_id", "image_id")),
        skipped=list(getattr(loaded, "skipped", []) or []),
        coco=data,
    )


def _box_row(rgb: np.ndarray, ann: dict[str, Any], categories: dict[int, str]) -> dict[str, Any]:
    h, w = rgb.shape[:2]
    x, y, bw, bh = (float(v) for v in ann["bbox"])
    attrs = ann.get("attributes") or {}
    row: dict[str, Any] = {
        "annotation_id": int(ann["id"]),
        "image_id": int(ann["image_id"]),
        "category": categories.get(int(ann["category_id"]), str(ann["category_id"])),
        "box_x": x,
        "box_y": y,
        "box_w": bw,
        "box_h": bh,
        "box_area_px": bw * bh,
        "box_area": bw * bh / float(w * h),
        "box_aspect": bw / bh if bh > 0 else math.nan,
        "box_center_x": (x + bw / 2) / w,
        "box_center_y": (y + bh / 2) / h,
        "background_similarity": box_background_similarity(rgb, [x, y, bw, bh]),
        "shape": shape_name(attrs) if attrs else "",
    }
    crop = rgb[max(0, int(y)) : min(h, int(math.ceil(y + bh))), max(0, int(x)) : min(w, int(math.ceil(x + bw)))]
    row.update(pixel_stats(crop, "box"))
    for key in ("depth_median", "distance", "occlusion", "truncation", "visible_pixels"):
        row[key] = _num(attrs.get(key))
    row["background_similarity_mask"] = _num(attrs.get("background_similarity"))
    row["occlusion_ad2"] = row["visible_pixels"] * row["depth_median"] ** 2
    return row


def _num(v: Any) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return math.nan
    return f if math.isfinite(f) else math.nan


def _columns(rows: list[dict[str, Any]], int_keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    if not rows:
        return {k: np.zeros(0, dtype=np.int64) for k in int_keys}
    out: dict[str, np.ndarray] = {}
    for key in rows[0]:
        values = [r[key] for r in rows]
        if key in int_keys:
            out[key] = np.asarray(values, dtype=np.int64)
        elif isinstance(values[0], str):
            out[key] = np.asarray(values, dtype=object)
        else:
            out[key] = np.asarray(values, dtype=np.float64)
    return out


def column(meta: DatasetMeta, spec: MetaSpec) -> np.ndarray:
    table = meta.boxes if spec.level == "box" else meta.images
    if spec.name not in table:
        return np.zeros(0)
    values = table[spec.name].astype(np.float64)
    return values[np.isfinite(values)]


def geometry_table(loaded: Any) -> dict[str, np.ndarray]:
    """Box geometry and renderer attributes from the COCO file alone (no pixels read): what ``align`` needs.

    Adds the camera's focal length in pixels (``fx``) and the image size from ``images[*].blendset.camera.K``
    where our exports carry it (NaN otherwise)."""
    data = loaded.data
    categories = category_names(loaded)
    images = {int(im["id"]): im for im in data["images"]}
    rows = []
    for a in data.get("annotations", []):
        im = images.get(int(a["image_id"]))
        if im is None:
            continue
        w, h = float(im["width"]), float(im["height"])
        x, y, bw, bh = (float(v) for v in a["bbox"])
        attrs = a.get("attributes") or {}
        cam = (im.get("blendset") or {}).get("camera") or {}
        k = cam.get("K")
        fx = _num(k[0][0]) if isinstance(k, list) and k and isinstance(k[0], list) else math.nan
        rows.append(
            {
                "annotation_id": int(a["id"]),
                "image_id": int(a["image_id"]),
                "category": categories.get(int(a["category_id"]), str(a["category_id"])),
                "width": w,
                "height": h,
                "box_area_px": bw * bh,
                "box_area": bw * bh / (w * h),
                "box_center_x": (x + bw / 2) / w,
                "box_center_y": (y + bh / 2) / h,
                "distance": _num(attrs.get("distance")),
                "depth_median": _num(attrs.get("depth_median")),
                "occlusion": _num(attrs.get("occlusion")),
                "truncation": _num(attrs.get("truncation")),
                "fx": fx,
                "sensor_width_mm": _num(cam.get("sensor_width_mm")),
                "focal_length_mm": _num(cam.get("focal_length_mm")),
            }
        )
    return _columns(rows, ("annotation_id", "image_id"))

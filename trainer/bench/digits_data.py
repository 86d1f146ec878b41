"""Data side of the digits benchmark: the real digits, their fixed split, and renders brought into their form.

The real set is scikit-learn's ``load_digits()``: 1797 handwritten digits from the UCI "optdigits" collection.
Each was made by binarising a scanned digit into a 32x32 bitmap (digit scaled to fill the box) and counting the
ink pixels in each 4x4 block, so every image is 8x8 with 17 grey levels (0..16) and ink = high values.

:func:`to_digit_form` applies the same recipe to a rendered crop (the documented preprocessing step):

1. grey = mean of RGB over the COCO box (tight to the visible pixels) plus a 15% margin of background;
2. binarise with Otsu's threshold; the ink side is the one that overlaps the instance mask more (renders may
   be dark-on-light or light-on-dark), and ink is kept only within 2 px of the mask (background shading never
   becomes ink);
3. scale the ink bitmap so its longer side fills 32 pixels, keeping the aspect ratio, centred in 32x32;
4. count ink pixels per 4x4 block: an 8x8 array of integers 0..16.

Both sides are stored as ImageFolder trees (``DIR/<digit>/<name>.png``, 8x8 greyscale, value * 255 / 16) so the
classifier reads real and synthetic images through the same code.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from shared.atomic import atomic_path, is_temp, write_json
from shared.errors import BlendsetError
from shared.progress import ProgressFn, Step

CLASS_NAMES = tuple(str(d) for d in range(10))
LEVELS = 16  # values 0..16
BITMAP = 32


class DigitsDataError(BlendsetError, RuntimeError):
    """A dataset for the digits benchmark is missing or malformed."""


# ---------------------------------------------------------------------------------------------------------------
# Real digits


def load_real_digits() -> tuple[np.ndarray, np.ndarray]:
    """``(images uint8 [N, 8, 8] in 0..16, labels int64 [N])`` from scikit-learn's bundled copy (no download)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.images.astype(np.uint8), d.target.astype(np.int64)


@dataclass(frozen=True)
class RealSplit:
    """Index arrays into the real digits. ``test`` is never trained on; ``val`` only picks the best epoch."""

    pool: np.ndarray
    val: np.ndarray
    test: np.ndarray
    seed: int

    def to_dict(self) -> dict:
        return {"seed": self.seed, "pool": self.pool.tolist(), "val": self.val.tolist(), "test": self.test.tolist()}


def split_real(labels: np.ndarray, seed: int, test_share: float = 0.5, val_per_class: int = 15) -> RealSplit:
    """Stratified split: ``test_share`` of every class to test, ``val_per_class`` per class to val, rest = pool."""
    if not 0.5 <= test_share < 1.0:
        raise ValueError(f"test_share must be in [0.5, 1), got {test_share}")
    rng = np.random.default_rng(seed)
    pool, val, test = [], [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_test = int(np.ceil(test_share * len(idx)))
        if n_test + val_per_class >= len(idx):
            raise ValueError(f"class {c}: {len(idx)} images leave nothing for the train pool")
        test.append(idx[:n_test])
        val.append(idx[n_test : n_test + val_per_class])
        pool.append(idx[n_test + val_per_class :])
    return RealSplit(*(np.sort(np.concatenate(p)) for p in (pool, val, test)), seed=seed)


def budget_label(budget: int | None) -> str:
    """A real budget as the table and folder names write it: ``"all"`` for the whole pool (``None``)."""
    return "all" if budget is None else str(budget)


def budget_subset(pool: np.ndarray, labels: np.ndarray, budget: int | None, seed: int) -> np.ndarray:
    """``budget`` pool images, as class-balanced as possible, nested: a smaller budget is a subset of a larger one
    for the same seed (the same per-class order is cut shorter). ``None`` = the whole pool."""
    if budget is None or budget >= len(pool):
        return np.sort(pool)
    if budget < 1:
        raise ValueError(f"a real budget must be >= 1, got {budget}")
    rng = np.random.default_rng(seed)
    classes = np.unique(labels[pool])
    per_class = {c: list(rng.permutation(pool[labels[pool] == c])) for c in classes}
    # Round-robin over classes in a seeded order: every class gets floor or ceil of budget / n_classes.
    order = list(rng.permutation(classes))
    picked: list[int] = []
    while len(picked) < budget:
        for c in order:
            if per_class[c] and len(picked) < budget:
                picked.append(int(per_class[c].pop(0)))
    return np.sort(np.asarray(picked))


# ---------------------------------------------------------------------------------------------------------------
# Preprocessing renders into the real form


def otsu_threshold(values: np.ndarray) -> float:
    """Otsu's threshold on values in [0, 1] (256 bins): maximises the between-class variance."""
    hist, edges = np.histogram(values.ravel(), bins=256, range=(0.0, 1.0))
    p = hist.astype(np.float64) / max(1, hist.sum())
    omega = np.cumsum(p)
    centers = (edges[:-1] + edges[1:]) / 2
    mu = np.cumsum(p * centers)
    mu_t = mu[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mu_t * omega - mu) ** 2 / (omega * (1.0 - omega))
    between[~np.isfinite(between)] = -1.0
    return float(centers[int(np.argmax(between))])


def ink_bitmap(gray: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Binary ink image of a grey crop in [0, 1]. Ink is the Otsu side that overlaps ``mask`` more, kept only
    within 2 px of the mask; without a mask it is the minority side (a digit covers less than half of its box)."""
    t = otsu_threshold(gray)
    dark = gray <= t
    if mask is not None and mask.shape == gray.shape and mask.any():
        from scipy.ndimage import binary_dilation

        ink = dark if dark[mask].mean() >= (~dark)[mask].mean() else ~dark
        # Shading in the background can fall on the ink side of the threshold: only pixels on or next to the
        # object's silhouette count as ink.
        return ink & binary_dilation(mask, iterations=2)
    return dark if dark.mean() <= 0.5 else ~dark


def fit_bitmap(ink: np.ndarray, size: int = BITMAP) -> np.ndarray:
    """Scale a binary image so its longer side fills ``size`` pixels (aspect kept), centred; returns bool."""
    from PIL import Image

    rows, cols = np.flatnonzero(ink.any(1)), np.flatnonzero(ink.any(0))
    if len(rows) == 0:
        return np.zeros((size, size), bool)
    ink = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    h, w = ink.shape
    scale = size / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    img = Image.fromarray((ink * 255).astype(np.uint8)).resize((nw, nh), Image.BILINEAR)
    out = np.zeros((size, size), bool)
    top, left = (size - nh) // 2, (size - nw) // 2
    out[top : top + nh, left : left + nw] = np.asarray(img) >= 128
    return out


def block_counts(bitmap: np.ndarray, block: int = 4) -> np.ndarray:
    """Ink pixels per ``block`` x ``block`` cell: 32x32 bool -> 8x8 uint8 in 0..16."""
    h, w = bitmap.shape
    return bitmap.reshape(h // block, block, w // block, block).sum(axis=(1, 3)).astype(np.uint8)


def to_digit_form(rgb_crop: np.ndarray, mask_crop: np.ndarray | None = None) -> np.ndarray:
    """A rendered crop (HxWx3 or HxW, uint8) -> an 8x8 uint8 array in 0..16 shaped like ``load_digits``."""
    arr = np.asarray(rgb_crop, dtype=np.float64)
    if arr.ndim == 3:
        arr = arr[..., :3].mean(axis=2)
    gray = arr / 255.0
    return block_counts(fit_bitmap(ink_bitmap(gray, mask_crop)))


# ---------------------------------------------------------------------------------------------------------------
# ImageFolder storage


def digit_png(values: np.ndarray) -> np.ndarray:
    """0..16 -> 0..255 uint8 (17 evenly spaced grey levels)."""
    return np.round(np.asarray(values, np.float64) * 255.0 / LEVELS).astype(np.uint8)


def write_imagefolder(out: str, images: np.ndarray, labels: np.ndarray, names: Sequence[str]) -> int:
    """Write 8x8 digits as ``out/<digit>/<name>.png`` atomically, then ``out/done.json``. Idempotent: a finished
    folder (``done.json`` present with the same count) is left as it is. Returns the number of images."""
    from PIL import Image

    done = os.path.join(out, "done.json")
    if os.path.isfile(done):
        with open(done, encoding="utf-8") as f:
            if json.load(f).get("count") == len(images):
                return len(images)
    for c in CLASS_NAMES:  # every class folder exists, so ImageFolder sees all 10 classes even when one is empty
        os.makedirs(os.path.join(out, c), exist_ok=True)
        for name in os.listdir(os.path.join(out, c)):  # a killed earlier attempt's temp files are not images
            if is_temp(name):
                os.unlink(os.path.join(out, c, name))
    for img, label, name in zip(images, labels, names, strict=True):
        path = os.path.join(out, CLASS_NAMES[int(label)], f"{name}.png")
        with atomic_path(path) as tmp:
            Image.fromarray(digit_png(img), mode="L").save(tmp, format="PNG")
    counts = np.bincount(np.asarray(labels, np.int64), minlength=10).tolist()
    write_json(done, {"count": len(images), "per_class": counts}, indent=1)
    return len(images)


def read_imagefolder(folder: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Inverse of :func:`write_imagefolder`: ``(images 0..16, labels, names)`` sorted by class then name."""
    from PIL import Image

    images, labels, names = [], [], []
    for c, cname in enumerate(CLASS_NAMES):
        sub = os.path.join(folder, cname)
        if not os.path.isdir(sub):
            continue
        for fname in sorted(os.listdir(sub)):
            if fname.endswith(".png") and not is_temp(fname):
                arr = np.asarray(Image.open(os.path.join(sub, fname)).convert("L"), np.float64)
                images.append(np.round(arr * LEVELS / 255.0).astype(np.uint8))
                labels.append(c)
                names.append(fname[:-4])
    if not images:
        raise DigitsDataError(f"{folder}: no digit images (expected {folder}/<digit>/*.png)")
    return np.stack(images), np.asarray(labels, np.int64), names


# ---------------------------------------------------------------------------------------------------------------
# Renders (Blendset COCO export) -> ImageFolder


@dataclass
class ConversionReport:
    """What :func:`coco_to_digit_folder` did: images kept per class and every skip with its reason."""

    kept: int
    per_class: list[int]
    skipped: dict[str, int]

    def to_dict(self) -> dict:
        return {"kept": self.kept, "per_class": self.per_class, "skipped": self.skipped}


def coco_to_digit_folder(dataset: str, out: str, progress: ProgressFn | None = None) -> ConversionReport:
    """Crop every annotated digit of a Blendset dataset, bring it into the real form and write an ImageFolder.

    Class names must be ``"0"`` ... ``"9"`` (the digits scene's labels). Skips are counted by reason:
    ``unknown_class``, ``crowd``, ``empty_crop`` (box under 2 px), ``no_ink`` (binarisation left nothing),
    ``missing_image``. ``progress`` gets a ``convert`` step per annotation.
    """
    from PIL import Image
    from pycocotools import mask as mask_utils

    ann_path = os.path.join(dataset, "annotations.json")
    if not os.path.isfile(ann_path):
        raise DigitsDataError(f"{dataset}: no annotations.json (render the digits scene into it first)")
    with open(ann_path, encoding="utf-8") as f:
        coco = json.load(f)
    cat_names = {c["id"]: str(c["name"]) for c in coco.get("categories", [])}
    images = {im["id"]: im for im in coco.get("images", [])}
    anns = coco.get("annotations", [])
    skipped: dict[str, int] = {}
    out_images, out_labels, out_names = [], [], []
    cache: dict[int, np.ndarray | None] = {}

    def skip(reason: str) -> None:
        skipped[reason] = skipped.get(reason, 0) + 1

    for k, ann in enumerate(anns):
        if progress is not None:
            progress(Step("convert", k, len(anns)))
        name = cat_names.get(ann.get("category_id"))
        if name not in CLASS_NAMES:
            skip("unknown_class")
            continue
        if ann.get("iscrowd", 0):
            skip("crowd")
            continue
        im = images.get(ann["image_id"])
        if im is None:
            skip("missing_image")
            continue
        if im["id"] not in cache:
            path = os.path.join(dataset, im["file_name"])
            if not os.path.isfile(path):
                path = os.path.join(dataset, "images", os.path.basename(im["file_name"]))
            cache.clear()  # one image at a time: annotations are grouped by image
            cache[im["id"]] = np.asarray(Image.open(path).convert("RGB")) if os.path.isfile(path) else None
        rgb = cache[im["id"]]
        if rgb is None:
            skip("missing_image")
            continue
        x, y, w, h = (int(round(v)) for v in ann["bbox"])
        if w < 2 or h < 2:
            skip("empty_crop")
            continue
        # A margin of background around the box gives Otsu's threshold both sides to separate.
        m = int(round(0.15 * max(w, h)))
        x0, y0 = max(0, x - m), max(0, y - m)
        x1, y1 = min(rgb.shape[1], x + w + m), min(rgb.shape[0], y + h + m)
        mask = None
        seg = ann.get("segmentation")
        if isinstance(seg, dict) and "counts" in seg:
            rle = dict(seg)
            if isinstance(rle["counts"], str):
                rle["counts"] = rle["counts"].encode("ascii")
            mask = mask_utils.decode(rle).astype(bool)[y0:y1, x0:x1]
        digit = to_digit_form(rgb[y0:y1, x0:x1], mask)
        if digit.sum() == 0:
            skip("no_ink")
            continue
        out_images.append(digit)
        out_labels.append(CLASS_NAMES.index(name))
        out_names.append(f"ann{ann['id']}")
    if not out_images:
        raise DigitsDataError(f"{dataset}: no usable digit crops (skipped: {skipped or 'no annotations'})")
    write_imagefolder(out, np.stack(out_images), np.asarray(out_labels), out_names)
    per_class = np.bincount(np.asarray(out_labels), minlength=10).tolist()
    report = ConversionReport(kept=len(out_images), per_class=per_class, skipped=skipped)
    write_json(os.path.join(out, "conversion.json"), report.to_dict(), indent=1)
    return report


def digit_folder_to_coco(folder: str, out: str, upscale: int = 4, limit: int | None = None, seed: int = 0) -> str:
    """Write a digit ImageFolder as a COCO dataset for the gap toolkit: each 8x8 digit upscaled ``upscale`` times
    (nearest neighbour, so the 17 levels stay) to ``out/images``, one box per image around its ink (values > 0).
    ``limit`` keeps a seeded random subset. Returns ``out``."""
    from PIL import Image

    images, labels, names = read_imagefolder(folder)
    order = np.arange(len(images))
    if limit is not None and limit < len(images):
        order = np.sort(np.random.default_rng(seed).choice(len(images), size=limit, replace=False))
    os.makedirs(os.path.join(out, "images"), exist_ok=True)
    coco: dict = {
        "images": [],
        "annotations": [],
        "categories": [{"id": i, "name": n} for i, n in enumerate(CLASS_NAMES)],
    }
    for k, i in enumerate(order):
        big = np.kron(digit_png(images[i]), np.ones((upscale, upscale), np.uint8))
        file_name = f"{names[i]}.png"  # relative to out/images, the COCO image root of a Blendset folder
        with atomic_path(os.path.join(out, "images", file_name)) as tmp:
            Image.fromarray(big, mode="L").convert("RGB").save(tmp, format="PNG")
        rows, cols = np.flatnonzero(big.any(1)), np.flatnonzero(big.any(0))
        x0, y0 = int(cols[0]), int(rows[0])
        w, h = int(cols[-1]) + 1 - x0, int(rows[-1]) + 1 - y0
        coco["images"].append({"id": k + 1, "file_name": file_name, "width": big.shape[1], "height": big.shape[0]})
        coco["annotations"].append(
            {
                "id": k + 1,
                "image_id": k + 1,
                "category_id": int(labels[i]),
                "bbox": [x0, y0, w, h],
                "area": float(w * h),
                "iscrowd": 0,
            }
        )
    write_json(os.path.join(out, "annotations.json"), coco, indent=1)
    return out

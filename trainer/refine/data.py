"""Image sources for the refiner: a Blendset/COCO dataset folder, a plain folder of images, or an in-memory array.

Every source yields H x W x 3 uint8 arrays. Grayscale inputs are repeated to three channels, so one refiner
handles renders, photos and the 8x8 digits alike.
"""

from __future__ import annotations

import json
import os

import numpy as np
from PIL import Image

from shared.errors import BlendsetError
from shared.layout import safe_join

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


class RefineError(BlendsetError, ValueError):
    """Bad refiner input: a missing or empty dataset, a corrupt or mismatched model file."""


def to_rgb_uint8(image: np.ndarray) -> np.ndarray:
    """H x W, H x W x 1, H x W x 3 or H x W x 4 → H x W x 3 uint8 (alpha dropped)."""
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        raise RefineError(f"expected an H x W (x 1|3|4) image, got shape {image.shape}")
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    image = image[:, :, :3]
    if image.dtype != np.uint8:
        image = np.clip(np.rint(image.astype(np.float64)), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(image)


def read_image(path: str) -> np.ndarray:
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("I;16", "I", "F"):
                raise RefineError(f"{path}: a {im.mode} image is not an RGB picture (a mask or depth map?)")
            return to_rgb_uint8(np.asarray(im.convert("RGB")))
    except FileNotFoundError:
        raise RefineError(f"image {path!r} does not exist") from None
    except OSError as e:
        raise RefineError(f"cannot read image {path!r}: {e}") from None


def load_coco(root: str) -> dict:
    path = os.path.join(root, "annotations.json")
    try:
        with open(path, encoding="utf-8") as f:
            coco = json.load(f)
    except FileNotFoundError:
        raise RefineError(f"{root!r} has no annotations.json (not a Blendset/COCO dataset folder)") from None
    except json.JSONDecodeError as e:
        raise RefineError(f"{path}: not valid JSON: {e}") from None
    if not isinstance(coco, dict) or not isinstance(coco.get("images"), list):
        raise RefineError(f"{path}: a COCO file needs an 'images' list")
    return coco


def coco_image_path(root: str, file_name: str) -> str:
    """Where a COCO ``file_name`` lives: relative to the dataset root, or inside ``images/``."""
    direct = safe_join(root, file_name)
    if os.path.exists(direct):
        return direct
    nested = safe_join(root, "images", file_name)
    return nested if os.path.exists(nested) else direct


def list_images(path: str) -> list[str]:
    """Image files of a dataset folder (from annotations.json) or of a plain image folder (its ``images/``
    sub-folder when there is one), sorted. Raises RefineError when there are none."""
    if not os.path.isdir(path):
        raise RefineError(f"{path!r} is not a folder")
    if os.path.exists(os.path.join(path, "annotations.json")):
        coco = load_coco(path)
        files = [coco_image_path(path, im["file_name"]) for im in coco["images"]]
    else:
        folder = os.path.join(path, "images") if os.path.isdir(os.path.join(path, "images")) else path
        files = sorted(os.path.join(folder, n) for n in os.listdir(folder) if n.lower().endswith(IMAGE_SUFFIXES))
    if not files:
        raise RefineError(f"{path!r} holds no images")
    return files


class FolderSource:
    """Images read from disk on demand (a small cache keeps toy runs off the disk)."""

    def __init__(self, path: str, cache: int = 4096):
        self.path = path
        self.files = list_images(path)
        self._cache: dict[int, np.ndarray] = {}
        self._cache_size = cache

    def __len__(self) -> int:
        return len(self.files)

    def get(self, i: int) -> np.ndarray:
        if i in self._cache:
            return self._cache[i]
        image = read_image(self.files[i])
        if len(self._cache) < self._cache_size:
            self._cache[i] = image
        return image


class ArraySource:
    """N x H x W (x C) images already in memory, uint8 or float on a 0..255 scale."""

    def __init__(self, images: np.ndarray):
        if len(images) == 0:
            raise RefineError("no images given")
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def get(self, i: int) -> np.ndarray:
        return to_rgb_uint8(self.images[i])


def random_crops(source: FolderSource | ArraySource, batch: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """``batch`` random ``size`` x ``size`` crops at native scale (images smaller than ``size`` are upscaled
    first), with random horizontal flips: B x 3 x size x size float32 in [-1, 1]."""
    out = np.empty((batch, 3, size, size), dtype=np.float32)
    for b in range(batch):
        image = source.get(int(rng.integers(len(source))))
        h, w = image.shape[:2]
        if min(h, w) < size:
            scale = size / min(h, w)
            image = np.asarray(
                Image.fromarray(image).resize((max(size, round(w * scale)), max(size, round(h * scale))))
            )
            h, w = image.shape[:2]
        y = int(rng.integers(h - size + 1))
        x = int(rng.integers(w - size + 1))
        crop = image[y : y + size, x : x + size]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        out[b] = crop.transpose(2, 0, 1) / 127.5 - 1.0
    return out

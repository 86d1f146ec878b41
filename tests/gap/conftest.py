"""Small drawn COCO datasets with known geometry for the gap toolkit's unit tests.

Each image is a flat background with textured rectangles ("objects") whose size and position we choose, so box
area, position and colour distributions are known exactly. The end-to-end tests use real renders instead.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image

FX = 100.0  # focal length in pixels of the drawn "camera"


def draw_dataset(
    root: str,
    sizes: list[float],
    rng: np.random.Generator,
    classes: tuple[str, ...] = ("cube",),
    bg: tuple[int, int, int] | list[tuple[int, int, int]] = (90, 110, 130),
    fg: tuple[int, int, int] = (200, 60, 40),
    res: tuple[int, int] = (96, 72),
    center_y: float | list[float] | None = None,
    attributes: bool = False,
) -> str:
    """One object per image; ``sizes`` are box sides as a share of the image height. Returns ``root``."""
    w, h = res
    os.makedirs(os.path.join(root, "images"), exist_ok=True)
    images, anns = [], []
    for i, side in enumerate(sizes):
        bg_i = bg[i] if isinstance(bg, list) else bg
        arr = np.empty((h, w, 3), dtype=np.uint8)
        arr[:] = bg_i
        arr = np.clip(arr.astype(int) + rng.integers(-12, 13, size=arr.shape), 0, 255).astype(np.uint8)
        bh = max(2, int(round(side * h)))
        bw = max(2, int(round(bh * rng.uniform(0.8, 1.25))))
        bw = min(bw, w - 2)
        bh = min(bh, h - 2)
        cy = center_y[i] if isinstance(center_y, list) else center_y
        y0 = int(np.clip(round((cy if cy is not None else rng.uniform(0.3, 0.7)) * h - bh / 2), 0, h - bh))
        x0 = int(rng.integers(0, w - bw + 1))
        patch = np.clip(np.array(fg) + rng.integers(-30, 31, size=(bh, bw, 3)), 0, 255)
        arr[y0 : y0 + bh, x0 : x0 + bw] = patch.astype(np.uint8)
        name = f"{i:06d}.png"
        Image.fromarray(arr).save(os.path.join(root, "images", name))
        image = {"id": i + 1, "file_name": name, "width": w, "height": h}
        if attributes:
            image["blendset"] = {
                "camera": {
                    "K": [[FX, 0, w / 2], [0, FX, h / 2], [0, 0, 1]],
                    "sensor_width_mm": 36.0,
                    "focal_length_mm": FX * 36.0 / w,
                }
            }
        images.append(image)
        ann = {
            "id": (i + 1) * 10000,
            "image_id": i + 1,
            "category_id": i % len(classes),
            "bbox": [x0, y0, bw, bh],
            "area": bw * bh,
            "iscrowd": 0,
        }
        if attributes:
            # Pinhole: side_px = FX * S / d with object size S = 1 m.
            ann["attributes"] = {
                "distance": FX / max(bh, 1),
                "depth_median": FX / max(bh, 1),
                "occlusion": 0.0,
                "truncation": 0.0,
                "visible_pixels": bw * bh,
                "background_similarity": 0.5,
                "object": f"Cube.{i % 3:03d}",
            }
        anns.append(ann)
    coco = {"images": images, "annotations": anns, "categories": [{"id": k, "name": n} for k, n in enumerate(classes)]}
    with open(os.path.join(root, "annotations.json"), "w") as f:
        json.dump(coco, f)
    return root


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture(autouse=True)
def _one_thread():
    import torch

    torch.set_num_threads(1)

"""Tiny COCO datasets drawn with numpy, with known boxes, attributes and image fields.

Used for the unit-level trainer tests; the end-to-end train+eval test runs on the engine-rendered
``basic_dataset`` from ``tests/conftest.py`` when that fixture exists.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

CATEGORIES = [{"id": 1, "name": "square"}, {"id": 2, "name": "disc"}]


def draw_shapes_dataset(
    root: str, n_images: int = 12, size: tuple[int, int] = (96, 96), seed: int = 0, empty_every: int = 0
) -> str:
    """Red squares (class 1) and green discs (class 2) on a grey noisy background, 1-3 objects per image.

    Each annotation gets ``attributes.occlusion`` (a known value per object) and each image a
    ``blendset.params["camera.elevation_deg"]``. Every ``empty_every``-th image has no objects.
    """
    rng = np.random.default_rng(seed)
    os.makedirs(os.path.join(root, "images"), exist_ok=True)
    height, width = size
    images, annotations = [], []
    for i in range(n_images):
        img = (rng.normal(110, 12, (height, width, 3))).clip(0, 255).astype(np.uint8)
        count = 0 if empty_every and i % empty_every == empty_every - 1 else int(rng.integers(1, 4))
        for k in range(count):
            cat = int(rng.integers(1, 3))
            s = int(rng.integers(16, 30))
            x, y = int(rng.integers(0, width - s)), int(rng.integers(0, height - s))
            if cat == 1:
                img[y : y + s, x : x + s] = (220, 40, 40)
                seg = [[x, y, x + s, y, x + s, y + s, x, y + s]]
            else:
                yy, xx = np.mgrid[0:height, 0:width]
                disc = (yy - (y + s / 2)) ** 2 + (xx - (x + s / 2)) ** 2 <= (s / 2) ** 2
                img[disc] = (40, 200, 60)
                angles = np.linspace(0, 2 * np.pi, 16, endpoint=False)
                seg = [
                    [float(v) for a in angles for v in (x + s / 2 + s / 2 * np.cos(a), y + s / 2 + s / 2 * np.sin(a))]
                ]
            annotations.append(
                {
                    "id": (i + 1) * 10_000 + k,
                    "image_id": i + 1,
                    "category_id": cat,
                    "bbox": [x, y, s, s],
                    "area": float(s * s),
                    "iscrowd": 0,
                    "segmentation": seg,
                    "attributes": {"occlusion": round(float(rng.uniform(0, 1)), 3), "truncation": 0.0},
                }
            )
        name = f"{i:06d}.png"  # relative to images/, as in shared.layout
        Image.fromarray(img).save(os.path.join(root, "images", name))
        images.append(
            {
                "id": i + 1,
                "file_name": name,
                "width": width,
                "height": height,
                "blendset": {"params": {"camera.elevation_deg": float(10 + 70 * i / max(n_images - 1, 1))}},
            }
        )
    with open(os.path.join(root, "annotations.json"), "w") as f:
        json.dump({"images": images, "annotations": annotations, "categories": CATEGORIES}, f)
    return root


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def shapes_dataset(tmp_path_factory) -> str:
    return draw_shapes_dataset(str(tmp_path_factory.mktemp("shapes")), n_images=12, seed=0, empty_every=6)


@pytest.fixture(scope="session")
def shapes_val_dataset(tmp_path_factory) -> str:
    return draw_shapes_dataset(str(tmp_path_factory.mktemp("shapes_val")), n_images=6, seed=1)


@pytest.fixture
def make_shapes(tmp_path):
    """Factory for a fresh, editable dataset in the test's tmp folder."""
    counter = iter(range(1000))

    def make(**kwargs) -> str:
        return draw_shapes_dataset(str(tmp_path / f"ds{next(counter)}"), **kwargs)

    return make

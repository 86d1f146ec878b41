"""Refinement on engine renders with a planted domain shift: the "real" set is the same renders with a warm
colour cast, lifted blacks and sensor noise. The refiner must shrink the feature-space gap (the gap toolkit's
Fréchet and KNN distances on its random-init extractor) while annotations.json and the masks stay byte-identical
and the edges stay where they were."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from trainer.gap.distances import frechet_distance, knn_distance
from trainer.gap.features import build_extractor
from trainer.refine import apply_refiner, train_refiner
from trainer.refine.data import list_images, read_image

torch.set_num_threads(1)

CAST = np.array([1.2, 0.95, 0.7])


def _plant_shift(dataset: str, out: str, seed: int = 0) -> str:
    """The dataset's images with the planted shift, as a plain image folder (real sets need no labels)."""
    rng = np.random.default_rng(seed)
    os.makedirs(out)
    for i, path in enumerate(list_images(dataset)):
        image = read_image(path).astype(np.float64)
        shifted = image * CAST + 25.0 + rng.normal(0.0, 6.0, image.shape)
        Image.fromarray(np.clip(np.rint(shifted), 0, 255).astype(np.uint8)).save(os.path.join(out, f"{i:04d}.png"))
    return out


def _images(folder: str) -> list[np.ndarray]:
    return [read_image(p) for p in list_images(folder)]


@pytest.mark.blender
def test_refiner_closes_a_planted_gap_and_keeps_labels(basic_dataset, tmp_path):
    real = _plant_shift(basic_dataset, str(tmp_path / "real"))
    run = str(tmp_path / "refiner")
    summary = train_refiner(
        basic_dataset,
        real,
        run,
        model="fastcut",
        steps=200,
        image_size=32,
        batch=4,
        lr=1e-3,
        ngf=8,
        n_blocks=2,
        num_patches=64,
        seed=0,
    )
    assert summary["steps"] == 200 and summary["img_per_s"] > 0
    out = str(tmp_path / "refined")
    report = apply_refiner(run, basic_dataset, out)

    # Labels: byte-identical annotations and masks, edges and mask boundaries in place.
    assert report["annotations_identical"]
    with (
        open(os.path.join(basic_dataset, "annotations.json"), "rb") as a,
        open(os.path.join(out, "annotations.json"), "rb") as b,
    ):
        assert a.read() == b.read()
    for name in os.listdir(os.path.join(basic_dataset, "instance")):
        with (
            open(os.path.join(basic_dataset, "instance", name), "rb") as a,
            open(os.path.join(out, "instance", name), "rb") as b,
        ):
            assert a.read() == b.read()
    assert report["edge_iou_mean"] > 0.7, report["per_image"]
    assert report["boundary_agreement_mean"] > 0.85, report["per_image"]
    assert report["images_without_instance_map"] == 0
    with open(os.path.join(out, "refine_report.json")) as f:
        assert json.load(f)["images"] == report["images"]

    # The gap, measured with the gap toolkit on its random-init extractor.
    extractor = build_extractor("random", size=64)
    f_syn = extractor.embed(_images(basic_dataset))
    f_real = extractor.embed(_images(real))
    f_ref = extractor.embed(_images(out))
    before, after = frechet_distance(f_syn, f_real), frechet_distance(f_ref, f_real)
    knn_before = float(knn_distance(f_syn, f_real, k=3).mean())
    knn_after = float(knn_distance(f_ref, f_real, k=3).mean())
    print(
        f"Fréchet {before:.3f} -> {after:.3f}; KNN {knn_before:.3f} -> {knn_after:.3f}; "
        f"edge IoU {report['edge_iou_mean']:.3f}; {summary['img_per_s']} img/s"
    )
    assert after < 0.5 * before
    assert knn_after < knn_before

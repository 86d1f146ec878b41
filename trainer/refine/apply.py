"""Apply a trained refiner to a Blendset dataset: a copy with refined RGB and byte-identical labels.

``OUT/annotations.json``, the masks, depth, normals and frame records are copied unchanged; only the RGB images
are replaced. The refiner is fully convolutional and runs at each image's native size, so no pixel moves through
resizing. Each image pair is measured (``geometry.compare``): the report says how far edges and mask boundaries
agree between input and output, and ``OUT/refine_report.json`` keeps the per-image numbers.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time

import numpy as np
import torch
from PIL import Image

from shared.atomic import atomic_path, write_json
from shared.layout import safe_join
from shared.progress import ProgressFn, Step
from trainer.refine.checkpoint import REFINER_FILE, load_generator
from trainer.refine.data import RefineError, coco_image_path, load_coco, read_image, to_rgb_uint8
from trainer.refine.geometry import compare
from trainer.refine.networks import ResnetGenerator
from trainer.refine.train import train_refiner

# Everything in a dataset folder besides the RGB images, copied as it is.
_COPIED_DIRS = ("instance", "semantic", "depth", "normals", "frames", "yolo")
_COPIED_FILES = ("annotations.json", "config.json")


@torch.no_grad()
def refine_image(net: ResnetGenerator, image: np.ndarray, device: str = "cpu", seed: int = 0) -> np.ndarray:
    """One H x W x 3 uint8 image through the generator, at its own size; ``seed`` fixes its injected noise, so
    refining the same image twice gives the same bytes."""
    x = torch.from_numpy(to_rgb_uint8(image).transpose(2, 0, 1).copy()).float().div(127.5).sub(1.0)
    y = net(x[None].to(device), generator=torch.Generator().manual_seed(seed))[0].cpu().numpy()
    return np.clip(np.rint((y.transpose(1, 2, 0) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def _write_image(image: np.ndarray, path: str) -> None:
    suffix = os.path.splitext(path)[1].lower()
    with atomic_path(path) as tmp:
        if suffix in (".jpg", ".jpeg"):
            Image.fromarray(image).save(tmp, quality=95)
        else:
            Image.fromarray(image).save(tmp)


def _instance_map(root: str, file_name: str) -> np.ndarray | None:
    stem = os.path.splitext(os.path.basename(file_name))[0]
    path = os.path.join(root, "instance", stem + ".png")
    if not os.path.exists(path):
        return None
    with Image.open(path) as im:
        return np.asarray(im)


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _copy_labels(src: str, out: str) -> list[str]:
    copied = []
    for name in _COPIED_FILES:
        if os.path.exists(os.path.join(src, name)):
            shutil.copyfile(os.path.join(src, name), os.path.join(out, name))
            copied.append(name)
    for name in _COPIED_DIRS:
        if os.path.isdir(os.path.join(src, name)):
            shutil.copytree(os.path.join(src, name), os.path.join(out, name), dirs_exist_ok=True)
            copied.append(name + "/")
    return copied


def _mean(values: list) -> float | None:
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def apply_refiner(
    model_path: str,
    synthetic_dir: str,
    out_dir: str,
    device: str = "cpu",
    overwrite: bool = False,
    progress: ProgressFn | None = None,
) -> dict:
    """Write a refined copy of the dataset ``synthetic_dir`` into ``out_dir`` and return the geometry report.

    The report (also ``out_dir/refine_report.json``) holds the mean and minimum ``edge_iou`` and
    ``boundary_agreement`` over images, per-image values, img/s, and whether annotations.json is byte-identical.
    A rerun rewrites the same images (the refiner is deterministic), so an interrupted run is simply repeated.
    ``progress`` gets one :class:`~shared.progress.Step` of stage ``apply`` per image.
    """
    net, ckpt = load_generator(model_path, device)
    coco = load_coco(synthetic_dir)
    if os.path.realpath(out_dir) == os.path.realpath(synthetic_dir):
        raise RefineError("the output folder must differ from the synthetic dataset folder")
    if os.path.isdir(out_dir) and os.listdir(out_dir) and not overwrite:
        raise RefineError(f"output folder {out_dir!r} is not empty (pass overwrite / --overwrite to replace it)")
    os.makedirs(out_dir, exist_ok=True)
    copied = _copy_labels(synthetic_dir, out_dir)

    per_image = []
    t0 = time.perf_counter()
    n = len(coco["images"])
    for i, record in enumerate(coco["images"]):
        src_path = coco_image_path(synthetic_dir, record["file_name"])
        rel = os.path.relpath(src_path, os.path.realpath(synthetic_dir))
        dst_path = safe_join(out_dir, rel)
        source = read_image(src_path)
        refined = refine_image(net, source, device, seed=i)
        _write_image(refined, dst_path)
        geo = compare(source, refined, _instance_map(synthetic_dir, record["file_name"]))
        per_image.append({"image_id": record.get("id"), "file_name": record["file_name"], **geo})
        if progress is not None:
            progress(Step("apply", i + 1, n))
    seconds = time.perf_counter() - t0

    same_annotations = _sha256(os.path.join(synthetic_dir, "annotations.json")) == _sha256(
        os.path.join(out_dir, "annotations.json")
    )
    edge = [p["edge_iou"] for p in per_image]
    agree = [p.get("boundary_agreement") for p in per_image]
    report = {
        "refiner": os.path.abspath(model_path),
        "refiner_model": ckpt["model_name"],
        "refiner_step": ckpt.get("step"),
        "synthetic": os.path.abspath(synthetic_dir),
        "out": os.path.abspath(out_dir),
        "images": n,
        "copied_unchanged": copied,
        "annotations_identical": same_annotations,
        "edge_iou_mean": _mean(edge),
        "edge_iou_min": float(min(edge)) if edge else None,
        "boundary_agreement_mean": _mean(agree),
        "boundary_agreement_min": min((a for a in agree if a is not None), default=None),
        "images_without_instance_map": sum(1 for p in per_image if "boundary_agreement" not in p),
        "seconds": round(seconds, 3),
        "img_per_s": round(n / seconds, 2) if seconds > 0 else None,
        "device": device,
        "per_image": per_image,
    }
    write_json(os.path.join(out_dir, "refine_report.json"), report, indent=2)
    return report


def refine_arrays(
    synthetic: np.ndarray,
    real: np.ndarray,
    out: str,
    model: str = "fastcut",
    steps: int = 500,
    image_size: int | None = None,
    batch: int = 8,
    device: str = "cpu",
    progress: ProgressFn | None = None,
    **options,
) -> tuple[np.ndarray, dict]:
    """Train a refiner on in-memory images and return the refined synthetic images, same shape and dtype.

    For benchmarks that hold their images as arrays (the digits protocol: N x 8 x 8 floats on any 0..max
    scale). Inputs are scaled to 0..255 by their joint maximum, refined, and scaled back; a grayscale input comes
    back grayscale (mean of the three output channels). ``image_size`` defaults to the smaller image side.
    Returns ``(refined, summary)``; the refiner itself is saved under ``out``.
    """
    synthetic = np.asarray(synthetic)
    real = np.asarray(real)
    if synthetic.ndim not in (3, 4) or real.ndim not in (3, 4):
        raise RefineError(f"expected N x H x W (x C) arrays, got {synthetic.shape} and {real.shape}")
    scale = float(max(synthetic.max(initial=0), real.max(initial=0))) or 1.0
    to255 = lambda a: a.astype(np.float64) * (255.0 / scale)
    size = image_size or int(min(synthetic.shape[1], synthetic.shape[2], real.shape[1], real.shape[2]))
    summary = train_refiner(
        to255(synthetic),
        to255(real),
        out,
        model=model,
        steps=steps,
        image_size=size,
        batch=batch,
        device=device,
        progress=progress,
        **options,
    )
    net, _ = load_generator(os.path.join(out, REFINER_FILE), device)
    refined = np.stack([refine_image(net, to_rgb_uint8(im), device, seed=i) for i, im in enumerate(to255(synthetic))])
    refined = refined.astype(np.float64)
    if synthetic.ndim == 3:
        refined = refined.mean(axis=3)
    elif synthetic.shape[3] == 1:
        refined = refined.mean(axis=3, keepdims=True)
    refined = refined * (scale / 255.0)
    if np.issubdtype(synthetic.dtype, np.integer):
        refined = np.rint(refined)
    return refined.astype(synthetic.dtype), summary

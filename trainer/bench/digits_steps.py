"""The steps of the digits benchmark: render the digits scene, write the real split, train and evaluate one model.

:mod:`trainer.bench.digits` runs them in order for every training set and budget; the bias fix
(:mod:`trainer.bench.digits_bias_fix`) and the refined curves (:mod:`trainer.bench.digits_refined`) reuse them.
Each step writes its outputs atomically and returns early when they are already complete, so a killed run
resumes where it stopped.
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from shared.atomic import atomic_write, write_json
from shared.progress import Note
from trainer.bench import digits_data as dd
from trainer.bench.digits_data import budget_label
from trainer.bench.errors import BenchError

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCENE_SCRIPT = os.path.join(REPO, "scenes", "digits", "build.py")


# ---------------------------------------------------------------------------------------------------------------
# What a run is made of


@dataclass(frozen=True)
class Scale:
    """How big a run is. ``budgets``: real images per training run (``None`` = the whole pool). ``steps``:
    optimizer steps per training run, the same for every training set so they are compared at equal cost."""

    name: str
    frames: int
    budgets: tuple[int | None, ...]
    resolution: int
    samples: int
    steps: int
    epochs: int
    batch_size: int
    image_size: int
    model: str
    lr: float
    bias_fix_frames: int
    weak_classes: int
    n_boot: int
    optimizer: str = "adamw"  # SGD at a useful rate sometimes diverged for small_cnn (no BatchNorm) on 30 images
    # The bias fix compares models trained on 10 real images, whose per-class accuracy swings with the training
    # seed: before and after are each averaged over this many seeds.
    bias_fix_seeds: int = 3


@dataclass(frozen=True)
class TrainingSet:
    """One line of the plot. ``synthetic`` names a source in ``trainer.bench.digits.SYNTHETIC_BUILDERS`` (or None);
    ``real`` says whether it takes real images at each budget. ``synthetic_share`` is the share of every batch
    drawn from the synthetic source when both are used."""

    key: str
    label: str
    real: bool
    synthetic: str | None = None
    synthetic_share: float = 0.5

    @property
    def budgets_apply(self) -> bool:
        return self.real


@dataclass
class BenchContext:
    """Everything a step needs: the output folder, scale, seed, real data and the synthetic folders built so far."""

    out: str
    scale: Scale
    seed: int
    device: str
    progress: Note
    real_images: np.ndarray
    real_labels: np.ndarray
    split: dd.RealSplit
    synthetic_dirs: dict[str, str] = field(default_factory=dict)
    scene_options: dict[str, Any] = field(default_factory=dict)

    def path(self, *parts: str) -> str:
        return os.path.join(self.out, *parts)


# ---------------------------------------------------------------------------------------------------------------
# Rendering through the engine


def render_dataset(
    config: Any, out: str, count: int, seed: int, progress: Note, scene_options: dict[str, Any] | None = None
) -> str:
    """Render ``count`` frames of ``config`` with the digits scene into ``out`` through the engine's headless
    runner (``blender_addon/headless.py`` on the bpy module; it resumes an interrupted run itself).
    ``scene_options`` are the keyword arguments of the scene's ``build()``."""
    from shared import config as C

    os.makedirs(out, exist_ok=True)
    cfg_path = out.rstrip(os.sep) + ".config.json"
    C.save_config(replace(config, count=count, seed=seed), cfg_path)
    if _complete(out, count):
        return out
    from trainer.rendering.launcher import RenderError, RenderJob, run_render

    job = RenderJob(
        cfg_path, out, scene_script=SCENE_SCRIPT, count=count, seed=seed, scene_args=json.dumps(scene_options or {})
    )
    progress(f"rendering {count} digit frames into {out}")
    t0 = time.time()
    try:
        run_render(job, blender=None)  # the bpy module of this Python
    except RenderError as e:
        raise BenchError(f"rendering {out} failed: {e}") from None
    if not _complete(out, count):
        raise BenchError(f"rendering {out} finished without all {count} frames")
    progress(f"rendered {count} frames in {time.time() - t0:.0f} s")
    return out


def _complete(out: str, count: int) -> bool:
    path = os.path.join(out, "annotations.json")
    if not os.path.isfile(path):
        return False
    with open(path, encoding="utf-8") as f:
        return len(json.load(f).get("images", [])) >= count


def convert_renders(raw: str, out: str, progress: Note) -> str:
    """Renders -> ImageFolder in the real form; the conversion report (kept, skips by reason) is logged."""
    report = dd.coco_to_digit_folder(raw, out)
    skipped = ", ".join(f"{k}: {v}" for k, v in sorted(report.skipped.items())) or "none"
    progress(f"{out}: {report.kept} digit crops (per class {report.per_class}); skipped: {skipped}")
    return out


# ---------------------------------------------------------------------------------------------------------------
# Real data


def prepare_real(ctx: BenchContext) -> None:
    """Write the fixed split (``real/split.json``) and the val, test and per-budget pool folders (``pool_all``
    always: the gap analysis compares against the whole pool)."""
    real = ctx.path("real")
    os.makedirs(real, exist_ok=True)
    write_json(os.path.join(real, "split.json"), ctx.split.to_dict(), indent=1)
    images, labels = ctx.real_images, ctx.real_labels
    for name, idx in (("val", ctx.split.val), ("test", ctx.split.test)):
        dd.write_imagefolder(os.path.join(real, name), images[idx], labels[idx], [f"real{i:04d}" for i in idx])
    for budget in sorted(set(ctx.scale.budgets) | {None}, key=lambda b: math.inf if b is None else b):
        idx = dd.budget_subset(ctx.split.pool, labels, budget, ctx.seed)
        folder = os.path.join(real, f"pool_{budget_label(budget)}")
        dd.write_imagefolder(folder, images[idx], labels[idx], [f"real{i:04d}" for i in idx])


def real_budget_dir(ctx: BenchContext, budget: int | None) -> str:
    return ctx.path("real", f"pool_{budget_label(budget)}")


# ---------------------------------------------------------------------------------------------------------------
# Training and evaluation with the trainer's library (``trainer.training.classify.train_classifier``)


def count_images(folder: str) -> int:
    """Images in a folder written by :func:`trainer.bench.digits_data.write_imagefolder`."""
    with open(os.path.join(folder, "done.json"), encoding="utf-8") as f:
        return int(json.load(f)["count"])


def train_classifier(ctx: BenchContext, run: str, sources: list[tuple[str, float | None]], seed: int) -> str:
    """Train the benchmark's classifier on ``sources`` (ImageFolder paths with per-batch shares) into ``run``.

    Every run takes the same number of optimizer steps (``scale.epochs`` epochs of ``scale.steps / epochs``
    batches, drawn with replacement and class-balanced), whatever its data size, so training sets are compared
    at equal cost. No augmentation (a horizontal flip would change digits); grey 3-channel input.
    """
    if os.path.isfile(os.path.join(run, "bench_done.json")):
        return run
    from trainer.training.classify import train_classifier as train

    s = ctx.scale
    per_epoch = math.ceil(s.steps / s.epochs)
    resume = os.path.isfile(os.path.join(run, "checkpoint.pth"))
    try:
        result = train(
            sources,
            run,
            val=ctx.path("real", "val"),
            model=s.model,
            epochs=s.epochs,
            batch_size=s.batch_size,
            lr=s.lr,
            optimizer=s.optimizer,
            warmup_iters=min(50, s.steps // 10),
            image_size=s.image_size,
            weights="none",
            balanced=True,
            grayscale=True,
            augment="none",
            seed=seed,
            device=ctx.device,
            workers=0,
            resume=resume,
            epoch_size=per_epoch * s.batch_size,
        )
    except (RuntimeError, ValueError) as e:
        raise BenchError(f"training {run} failed: {e}") from e
    n = sum(count_images(p) for p, _ in sources)
    write_json(
        os.path.join(run, "bench_done.json"),
        {
            "sources": [[p, r] for p, r in sources],
            "images": n,
            "steps": per_epoch * s.epochs,
            "best_epoch": result.get("best_epoch"),
            "best_val_accuracy": result.get("best_metric"),
        },
        indent=1,
        allow_nan=True,  # a diverged run's NaN is recorded, as before, rather than failing the whole benchmark
    )
    return run


def evaluate_on(ctx: BenchContext, run: str, data: str) -> tuple[np.ndarray, np.ndarray]:
    """``(labels, predictions)`` of ``run``'s best checkpoint on the ImageFolder ``data``; cached in
    ``RUN/bench_eval/<name>/predictions.csv`` (columns ``file``, ``label``, ``pred``, ``score``)."""
    name = os.path.basename(os.path.normpath(data))
    pred_csv = os.path.join(run, "bench_eval", name, "predictions.csv")
    if not os.path.isfile(pred_csv):
        _predict(ctx, run, data, pred_csv)
    return read_predictions(pred_csv)


def _predict(ctx: BenchContext, run: str, data: str, pred_csv: str) -> None:
    import torch

    from trainer.data.datasets import ImageFolderDataset
    from trainer.data.transforms import classification_transforms
    from trainer.evaluation.predict import predict_classification
    from trainer.training.checkpoint import load_checkpoint
    from trainer.training.classify import build_classifier_from_checkpoint

    ckpt = load_checkpoint(os.path.join(run, "best.pth"))
    names = [c["name"] for c in ckpt["categories"]]
    if names != list(dd.CLASS_NAMES):
        raise BenchError(f"{run}: classes {names} are not the digits 0..9")
    model = build_classifier_from_checkpoint(ckpt).to(ctx.device)
    tf = classification_transforms(int(ckpt.get("image_size", ctx.scale.image_size)), [], grayscale=True)
    ds = ImageFolderDataset(data, tf)
    loader = torch.utils.data.DataLoader(ds, batch_size=256, shuffle=False, num_workers=0)
    with torch.no_grad():
        true, pred, score = predict_classification(model, loader, ctx.device)
    with atomic_write(pred_csv, newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "label", "pred", "score"])
        for file, t, p, sc in zip(ds.files, true, pred, score, strict=True):
            w.writerow([os.path.relpath(file, data), t, p, f"{sc:.5f}"])


def read_predictions(path: str) -> tuple[np.ndarray, np.ndarray]:
    """Ground-truth and predicted class ids (digits 0..9) from a predictions.csv."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise BenchError(f"{path}: no predictions")
    return np.asarray([int(r["label"]) for r in rows]), np.asarray([int(r["pred"]) for r in rows])


def cell_sources(
    ctx: BenchContext, ts: TrainingSet, budget: int | None
) -> tuple[list[tuple[str, float | None]], int, int]:
    """The training sources of ``ts`` at ``budget`` with their per-batch shares, and (n_real, n_synthetic)."""
    sources: list[tuple[str, float | None]] = []
    n_real = n_syn = 0
    mixed = ts.real and ts.synthetic is not None
    if ts.synthetic is not None:
        syn = ctx.synthetic_dirs[ts.synthetic]
        n_syn = count_images(syn)
        sources.append((syn, ts.synthetic_share if mixed else None))
    if ts.real:
        real = real_budget_dir(ctx, budget)
        n_real = count_images(real)
        sources.append((real, round(1.0 - ts.synthetic_share, 6) if mixed else None))
    return sources, n_real, n_syn

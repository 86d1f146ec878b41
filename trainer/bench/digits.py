"""The digits benchmark: does Blendset's rendered data help a classifier on real handwritten digits?

Seed 001's design with Blendset's own pipeline, plus seed 000's bias fix:

1. Split scikit-learn's 1797 real digits once, with a fixed seed (:data:`SPLIT_SEED`): a real train pool, a real
   val set (picks the best epoch) and a real test set (50%, never trained on).
2. Render the digits scene (``scenes/digits/build.py``) through the engine and bring every crop into the real
   form (:func:`trainer.bench.digits_data.to_digit_form`: grey, 8x8, 17 levels, ink high).
3. Train the same classifier on every :class:`TrainingSet` (synthetic only; real only and real + synthetic at
   each real budget), evaluate on the real test set, and report accuracy with bootstrap 95% intervals: one table
   (CSV + Markdown) and one plot (error vs real budget, one line per training set).
4. Bias fix on real + synthetic at the smallest budget: ``blendset gap suggest`` names the weakest classes on the
   real val set and writes a rendering plan (mixture components restricted to those classes); the engine renders
   it, the model is retrained with the extra frames, and per-class test accuracy is compared before/after.

Every step writes its outputs atomically and is skipped when already done, so an interrupted run resumes.
Extension point: :data:`TRAINING_SETS` is a list of training-set definitions and :data:`SYNTHETIC_BUILDERS`
maps a synthetic source name to the function that produces its ImageFolder; refinement (``trainer/refine``) adds
``real+refined`` and ``refined`` by appending to both.
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from trainer.bench import digits_data as dd
from trainer.bench.stats import Estimate, bootstrap_mean, per_class_accuracy, per_class_mean

SPLIT_SEED = 20261121  # the real split never changes with --seed
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCENE_SCRIPT = os.path.join(REPO, "scenes", "digits", "build.py")

Progress = Callable[[str], None]


class BenchError(RuntimeError):
    """A benchmark step failed; the message names the step and what to look at."""


# ---------------------------------------------------------------------------------------------------------------
# Scales


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


SCALES: dict[str, Scale] = {
    "toy": Scale("toy", 40, (10, 30), 64, 1, 6, 1, 16, 16, "small_cnn", 0.003, 12, 2, 200, bias_fix_seeds=1),
    "small": Scale("small", 1600, (10, 30, 100, 300, None), 64, 2, 300, 3, 64, 16, "small_cnn", 0.003, 400, 2, 1000),
    "full": Scale("full", 6000, (10, 30, 100, 300, None), 96, 4, 1000, 5, 64, 16, "small_cnn", 0.003, 1200, 2, 1000),
}


def budget_label(budget: int | None) -> str:
    return "all" if budget is None else str(budget)


# ---------------------------------------------------------------------------------------------------------------
# Training-set definitions (the extension point)


@dataclass(frozen=True)
class TrainingSet:
    """One line of the plot. ``synthetic`` names a source in :data:`SYNTHETIC_BUILDERS` (or None);
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


TRAINING_SETS: list[TrainingSet] = [
    TrainingSet("synthetic", "(a) synthetic only", real=False, synthetic="synthetic"),
    TrainingSet("real", "(b) real only", real=True),
    TrainingSet("real+synthetic", "(c) real + synthetic", real=True, synthetic="synthetic"),
]


@dataclass
class BenchContext:
    """Everything a step needs: the output folder, scale, seed, real data and the synthetic folders built so far."""

    out: str
    scale: Scale
    seed: int
    device: str
    progress: Progress
    real_images: np.ndarray
    real_labels: np.ndarray
    split: dd.RealSplit
    synthetic_dirs: dict[str, str] = field(default_factory=dict)
    scene_options: dict[str, Any] = field(default_factory=dict)

    def path(self, *parts: str) -> str:
        return os.path.join(self.out, *parts)


def build_synthetic(ctx: BenchContext) -> str:
    """Render the digits scene and convert it into ``OUT/synthetic`` (the real form)."""
    config = digits_config(ctx.scale)
    raw = ctx.path("renders", "synthetic")
    render_dataset(config, raw, ctx.scale.frames, ctx.seed, ctx.progress, ctx.scene_options)
    return convert_renders(raw, ctx.path("synthetic"), ctx.progress)


SYNTHETIC_BUILDERS: dict[str, Callable[[BenchContext], str]] = {"synthetic": build_synthetic}


# ---------------------------------------------------------------------------------------------------------------
# Rendering through the engine


def digits_config(scale: Scale) -> Any:
    """The generator config for the digits scene: the ten digit classes and the generic randomizers."""
    from shared import config as C

    classes = tuple(C.ClassSpec(name=str(d), id=d, objects=(f"blendset_digit_{d}",)) for d in range(10))
    cfg = C.DatasetConfig(
        name="digits",
        count=scale.frames,
        classes=classes,
        label_properties=False,
        render=C.RenderSettings(
            engine="CYCLES", resolution=(scale.resolution, scale.resolution), samples=scale.samples, threads=1
        ),
        output=C.OutputSettings(depth_png=False),
        camera=C.CameraRandomizer(
            mode="orbit",
            look_at=(0.0, 0.0, 0.0),
            distance=C.Range(1.5, 2.0),
            elevation_deg=C.Range(-12.0, 12.0),
            azimuth_deg=C.Range(-102.0, -78.0),
            look_at_jitter=0.05,
            focal_length_mm=C.Range(45.0, 55.0),
            roll_deg=C.Range(-8.0, 8.0),
        ),
        # Dark ink on light paper-like backgrounds, as the real digits were scanned: contrast is what the
        # preprocessing needs; colour and lighting still vary.
        lights=C.LightRandomizer(count=C.IntRange(1, 2), types=("AREA", "POINT"), energy_w=C.Range(100.0, 600.0)),
        materials=C.MaterialRandomizer(value_scale=C.Range(0.3, 1.5), roughness=C.Range(0.5, 1.0)),
        background=C.BackgroundRandomizer(mode="color", saturation=C.Range(0.0, 0.3), value=C.Range(0.6, 1.0)),
        post=C.PostRandomizer(blur_share=0.3, blur_sigma_px=C.Range(0.3, 1.0), noise_share=0.3),
        filters=C.Filters(min_visible_pixels=20),
    )
    cfg.validate()
    return cfg


def render_dataset(
    config: Any, out: str, count: int, seed: int, progress: Progress, scene_options: dict[str, Any] | None = None
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


def convert_renders(raw: str, out: str, progress: Progress) -> str:
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
    dd._write_json(os.path.join(real, "split.json"), ctx.split.to_dict())
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
# Training and evaluation with the trainer's library (engineer D's ``trainer.training.classify.train_classifier``)


def _count_images(folder: str) -> int:
    with open(os.path.join(folder, "done.json"), encoding="utf-8") as f:
        return int(json.load(f)["count"])


def run_cli(args: list[str]) -> None:
    """Run a ``blendset`` subcommand in this process (torch is imported once for the whole benchmark)."""
    import click

    from trainer.cli import cli

    try:
        cli.main(args=args, prog_name="blendset", standalone_mode=False)
    except click.ClickException as e:
        raise BenchError(f"blendset {' '.join(args)}: {e.format_message()}") from e


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
    n = sum(_count_images(p) for p, _ in sources)
    dd._write_json(
        os.path.join(run, "bench_done.json"),
        {
            "sources": [[p, r] for p, r in sources],
            "images": n,
            "steps": per_epoch * s.epochs,
            "best_epoch": result.get("best_epoch"),
            "best_val_accuracy": result.get("best_metric"),
        },
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
    from trainer.training.checkpoint import load_checkpoint
    from trainer.training.classify import build_classifier_from_checkpoint
    from trainer.training.epoch import predict_classification

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
    os.makedirs(os.path.dirname(pred_csv), exist_ok=True)
    tmp = pred_csv + ".tmp"
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["file", "label", "pred", "score"])
        for file, t, p, sc in zip(ds.files, true, pred, score, strict=True):
            w.writerow([os.path.relpath(file, data), t, p, f"{sc:.5f}"])
    os.replace(tmp, pred_csv)


def read_predictions(path: str) -> tuple[np.ndarray, np.ndarray]:
    """Ground-truth and predicted class ids (digits 0..9) from a predictions.csv."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise BenchError(f"{path}: no predictions")
    return np.asarray([int(r["label"]) for r in rows]), np.asarray([int(r["pred"]) for r in rows])


# ---------------------------------------------------------------------------------------------------------------
# The protocol


@dataclass
class Cell:
    """One trained model: a training set at one real budget, scored on the real test set."""

    training_set: str
    label: str
    budget: int | None
    n_real: int
    n_synthetic: int
    accuracy: Estimate
    run: str

    def row(self) -> dict[str, Any]:
        a = self.accuracy
        return {
            "training_set": self.training_set,
            "budget": budget_label(self.budget),
            "n_real": self.n_real,
            "n_synthetic": self.n_synthetic,
            "accuracy": round(a.mean, 4),
            "ci_lo": round(a.lo, 4),
            "ci_hi": round(a.hi, 4),
            "error": round(1.0 - a.mean, 4),
            "n_test": a.n,
            "run": os.path.relpath(self.run),
        }


def make_context(
    out: str,
    scale: str,
    seed: int,
    device: str = "cpu",
    progress: Progress | None = None,
    scene_options: dict[str, Any] | None = None,
) -> BenchContext:
    if scale not in SCALES:
        raise BenchError(f"unknown scale {scale!r}; choose from {', '.join(SCALES)}")
    images, labels = dd.load_real_digits()
    return BenchContext(
        out=os.path.abspath(out),
        scale=SCALES[scale],
        seed=seed,
        device=device,
        progress=progress or (lambda msg: None),
        real_images=images,
        real_labels=labels,
        split=dd.split_real(labels, SPLIT_SEED),
        scene_options=dict(scene_options or {}),
    )


def run_cells(ctx: BenchContext, training_sets: list[TrainingSet] | None = None) -> list[Cell]:
    """Train and score every training set at every budget that applies to it."""
    cells = []
    for ts in training_sets or TRAINING_SETS:
        if ts.synthetic is not None and ts.synthetic not in ctx.synthetic_dirs:
            if ts.synthetic not in SYNTHETIC_BUILDERS:
                raise BenchError(f"training set {ts.key!r}: no builder for synthetic source {ts.synthetic!r}")
            ctx.synthetic_dirs[ts.synthetic] = SYNTHETIC_BUILDERS[ts.synthetic](ctx)
        for budget in ctx.scale.budgets if ts.real else (0,):
            cells.append(run_cell(ctx, ts, budget))
    return cells


def cell_sources(
    ctx: BenchContext, ts: TrainingSet, budget: int | None
) -> tuple[list[tuple[str, float | None]], int, int]:
    """The training sources of ``ts`` at ``budget`` with their per-batch shares, and (n_real, n_synthetic)."""
    sources: list[tuple[str, float | None]] = []
    n_real = n_syn = 0
    mixed = ts.real and ts.synthetic is not None
    if ts.synthetic is not None:
        syn = ctx.synthetic_dirs[ts.synthetic]
        n_syn = _count_images(syn)
        sources.append((syn, ts.synthetic_share if mixed else None))
    if ts.real:
        real = real_budget_dir(ctx, budget)
        n_real = _count_images(real)
        sources.append((real, round(1.0 - ts.synthetic_share, 6) if mixed else None))
    return sources, n_real, n_syn


def run_cell(ctx: BenchContext, ts: TrainingSet, budget: int | None) -> Cell:
    sources, n_real, n_syn = cell_sources(ctx, ts, budget)
    run = ctx.path("runs", f"{ts.key}_{budget_label(budget) if ts.real else 'none'}")
    ctx.progress(f"training {ts.label} with {n_real} real + {n_syn} synthetic images")
    train_classifier(ctx, run, sources, ctx.seed)
    labels, preds = evaluate_on(ctx, run, ctx.path("real", "test"))
    acc = bootstrap_mean(labels == preds, n_boot=ctx.scale.n_boot, seed=ctx.seed)
    ctx.progress(
        f"  {ts.label} @ {budget_label(budget) if ts.real else '-'}: test accuracy {acc.mean:.3f} "
        f"[{acc.lo:.3f}, {acc.hi:.3f}]"
    )
    return Cell(ts.key, ts.label, budget if ts.real else 0, n_real, n_syn, acc, run)


# ---------------------------------------------------------------------------------------------------------------
# Table and plot


def write_table(cells: list[Cell], out: str) -> tuple[str, str]:
    rows = [c.row() for c in cells]
    csv_path, md_path = os.path.join(out, "table.csv"), os.path.join(out, "table.md")
    tmp = csv_path + ".tmp"
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, csv_path)
    lines = [
        "| training set | real budget | real imgs | synthetic imgs | test accuracy | 95% CI | n test |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in cells:
        a = c.accuracy
        b = budget_label(c.budget) if c.n_real else "0"
        lines.append(
            f"| {c.label} | {b} | {c.n_real} | {c.n_synthetic} | {a.mean:.3f} | [{a.lo:.3f}, {a.hi:.3f}] | {a.n} |"
        )
    with open(md_path + ".tmp", "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(md_path + ".tmp", md_path)
    return csv_path, md_path


# Lines without real images are horizontal bands; each gets its own colour and dash, in plot order, so (a) synthetic
# only and (e) refined only stay apart. Curves take matplotlib's colour cycle; refined ones a square marker.
FLAT_STYLES: list[tuple[str, str]] = [("grey", "--"), ("tab:purple", ":"), ("tab:brown", "-.")]
CURVE_MARKERS: dict[str, str] = {"real+refined": "s"}


def plot_error_vs_budget(cells: list[Cell], pool_size: int, path: str) -> str:
    """Seed 001's figure: test error vs number of real training images, one line per training set. A training
    set without real images is a horizontal dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=110)
    by_set: dict[str, list[Cell]] = {}
    for c in cells:
        by_set.setdefault(c.label, []).append(c)
    xs_all = sorted({c.n_real for c in cells if c.n_real})
    flat = 0
    for label, group in by_set.items():
        if all(c.n_real == 0 for c in group):
            c = group[0]
            color, ls = FLAT_STYLES[flat % len(FLAT_STYLES)]
            flat += 1
            ax.axhline(1 - c.accuracy.mean, ls=ls, color=color, label=f"{label} ({c.n_synthetic} renders)")
            ax.axhspan(1 - c.accuracy.hi, 1 - c.accuracy.lo, color=color, alpha=0.12)
            continue
        group = sorted(group, key=lambda c: c.n_real)
        x = [c.n_real for c in group]
        y = [1 - c.accuracy.mean for c in group]
        yerr = [[c.accuracy.hi - c.accuracy.mean for c in group], [c.accuracy.mean - c.accuracy.lo for c in group]]
        ax.errorbar(x, y, yerr=yerr, marker=CURVE_MARKERS.get(group[0].training_set, "o"), capsize=3, label=label)
    ax.set_xscale("log")
    if xs_all:
        ax.set_xticks(xs_all)
        ax.set_xticklabels([str(x) for x in xs_all])
    ax.set_xlabel(f"real training images (pool of {pool_size})")
    ax.set_ylabel("test error on real digits")
    ax.set_ylim(0, max(0.05, min(1.0, ax.get_ylim()[1])))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("Error vs real budget (95% bootstrap CI)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path + ".tmp.png")
    plt.close(fig)
    os.replace(path + ".tmp.png", path)
    return path


# ---------------------------------------------------------------------------------------------------------------
# Seed 000's bias fix


@dataclass
class BiasFix:
    budget: int | None
    weak_classes: list[int]
    planner: str
    seeds: int
    extra_frames: int
    before: list[Estimate]
    after: list[Estimate]
    before_overall: Estimate
    after_overall: Estimate
    plan: str
    run: str
    real_only: list[Estimate] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "budget": budget_label(self.budget),
            "weak_classes": self.weak_classes,
            "planner": self.planner,
            "extra_frames": self.extra_frames,
            "seeds": self.seeds,
            "plan": os.path.relpath(self.plan),
            "run": os.path.relpath(self.run),
            "before": [e.to_dict() for e in self.before],
            "after": [e.to_dict() for e in self.after],
            "real_only": [e.to_dict() for e in self.real_only] if self.real_only else None,
            "before_overall": self.before_overall.to_dict(),
            "after_overall": self.after_overall.to_dict(),
            "weakest_delta": {str(c): round(self.after[c].mean - self.before[c].mean, 4) for c in self.weak_classes},
        }


def bias_fix(ctx: BenchContext, base: Cell, real_only: Cell | None = None) -> BiasFix:
    """Seed 000's loop on ``base`` (real + synthetic at the smallest budget): plan, render, retrain, compare."""
    s = ctx.scale
    plan_dir = ctx.path("bias_fix", "plan")
    plan_path, weak, planner = suggest_plan(ctx, base.run, plan_dir)
    raw = ctx.path("bias_fix", "renders")
    from shared import config as C

    plan = C.load_config(plan_path)
    render_dataset(plan, raw, s.bias_fix_frames, ctx.seed + 1, ctx.progress, ctx.scene_options)
    extra = convert_renders(raw, ctx.path("bias_fix", "synthetic_extra"), ctx.progress)
    syn = ctx.synthetic_dirs["synthetic"]
    real = real_budget_dir(ctx, base.budget)
    n_syn, n_extra = _count_images(syn), _count_images(extra)
    share = TRAINING_SETS[2].synthetic_share
    sources = [
        (syn, round(share * n_syn / (n_syn + n_extra), 6)),
        (extra, round(share * n_extra / (n_syn + n_extra), 6)),
        (real, round(1 - share, 6)),
    ]
    b = budget_label(base.budget)
    base_sources, _, _ = cell_sources(ctx, TRAINING_SETS[2], base.budget)
    ctx.progress(f"retraining with {n_extra} extra renders of classes {weak} ({s.bias_fix_seeds} training seeds)")
    test = ctx.path("real", "test")
    before, after = [], []
    for k in range(s.bias_fix_seeds):
        seed = ctx.seed + k
        suffix = "" if k == 0 else f"_seed{seed}"
        base_run = (
            base.run
            if k == 0
            else train_classifier(ctx, ctx.path("runs", f"real+synthetic_{b}{suffix}"), base_sources, seed)
        )
        fix_run = train_classifier(ctx, ctx.path("runs", f"real+synthetic+biasfix_{b}{suffix}"), sources, seed)
        labels, preds_b = evaluate_on(ctx, base_run, test)
        labels_a, preds_a = evaluate_on(ctx, fix_run, test)
        if not np.array_equal(labels, labels_a):
            raise BenchError("test predictions of the runs are not in the same order")
        before.append(preds_b == labels)
        after.append(preds_a == labels)
    before_m, after_m = np.mean(before, axis=0), np.mean(after, axis=0)
    ref = None
    if real_only is not None:
        labels_r, preds_r = evaluate_on(ctx, real_only.run, test)
        ref = per_class_accuracy(labels_r, preds_r, 10, s.n_boot, ctx.seed)
    return BiasFix(
        budget=base.budget,
        weak_classes=weak,
        real_only=ref,
        planner=planner,
        extra_frames=s.bias_fix_frames,
        seeds=s.bias_fix_seeds,
        before=per_class_mean(labels, before_m, 10, s.n_boot, ctx.seed),
        after=per_class_mean(labels, after_m, 10, s.n_boot, ctx.seed),
        before_overall=bootstrap_mean(before_m, s.n_boot, ctx.seed),
        after_overall=bootstrap_mean(after_m, s.n_boot, ctx.seed),
        plan=plan_path,
        run=ctx.path("runs", f"real+synthetic+biasfix_{b}"),
    )


def suggest_plan(ctx: BenchContext, run: str, out: str) -> tuple[str, list[int], str]:
    """``gap suggest`` (the gap toolkit's planner) on the real val set, never the test set: per-class error
    rates of ``run`` and a plan config with one mixture component per weak class (``classes`` = that class,
    weight = its share of the errors). The val set goes in as COCO (8x8 images, one whole-image box each), so
    the classifier sees exactly the pixels it sees from the ImageFolder.
    Returns (plan config path, weak class ids, planner summary line)."""
    from shared import config as C
    from trainer.gap import GapError
    from trainer.gap.suggest import suggest

    plan_path = os.path.join(out, "plan.json")
    summary_path = os.path.join(out, "suggest.json")
    if not (os.path.isfile(plan_path) and os.path.isfile(summary_path)):
        val_coco = write_digits_coco(ctx, ctx.split.val, ctx.path("real", "val_coco"))
        try:
            suggest(
                run,
                val_coco,
                out,
                base_config=ctx.path("renders", "synthetic.config.json"),
                count=ctx.scale.bias_fix_frames,
                device=ctx.device,
                overwrite=True,
            )
        except GapError as e:
            raise BenchError(f"gap suggest on {run}: {e}") from e
    with open(summary_path, encoding="utf-8") as f:
        summary = json.load(f)
    plan = C.load_config(plan_path)
    weak = sorted({int(c) for m in plan.mixture for c in m.classes})
    if not weak:
        raise BenchError(f"{plan_path}: the plan restricts no mixture component to weak classes")
    rates = {c["class"]: c.get("rate") for c in summary.get("classes", [])}
    line = "blendset gap suggest on real val: " + ", ".join(
        f"{c} (val acc {rates[str(c)]:.2f})" if isinstance(rates.get(str(c)), float) else str(c) for c in weak
    )
    return plan_path, weak, line


def write_digits_coco(ctx: BenchContext, idx: np.ndarray, out: str) -> str:
    """Real digits ``idx`` as a COCO folder: 8x8 PNGs, one whole-image box each (what the classifier sees)."""
    from PIL import Image

    ann = os.path.join(out, "annotations.json")
    if os.path.isfile(ann):
        return out
    os.makedirs(os.path.join(out, "images"), exist_ok=True)
    coco: dict[str, Any] = {
        "images": [],
        "annotations": [],
        "categories": [{"id": i, "name": n} for i, n in enumerate(dd.CLASS_NAMES)],
    }
    for k, i in enumerate(idx):
        name = f"real{int(i):04d}.png"
        path = os.path.join(out, "images", name)
        Image.fromarray(dd.digit_png(ctx.real_images[i]), mode="L").save(path + ".tmp", format="PNG")
        os.replace(path + ".tmp", path)
        coco["images"].append({"id": k + 1, "file_name": name, "width": 8, "height": 8})
        coco["annotations"].append(
            {
                "id": k + 1,
                "image_id": k + 1,
                "category_id": int(ctx.real_labels[i]),
                "bbox": [0, 0, 8, 8],
                "area": 64.0,
                "iscrowd": 0,
            }
        )
    dd._write_json(ann, coco)
    return out


# ---------------------------------------------------------------------------------------------------------------
# Entry point


def run_digits_benchmark(
    out: str,
    scale: str = "small",
    seed: int = 0,
    device: str = "cpu",
    progress: Progress | None = None,
    training_sets: list[TrainingSet] | None = None,
    with_bias_fix: bool = True,
    scene_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run the whole protocol into ``out`` and return the results dict (also written to ``out/results.json``)."""
    t0 = time.time()
    ctx = make_context(out, scale, seed, device, progress, scene_options)
    os.makedirs(ctx.out, exist_ok=True)
    prepare_real(ctx)
    cells = run_cells(ctx, training_sets)
    csv_path, md_path = write_table(cells, ctx.out)
    plot = plot_error_vs_budget(cells, len(ctx.split.pool), os.path.join(ctx.out, "error_vs_budget.png"))
    results: dict[str, Any] = {
        "scale": ctx.scale.name,
        "seed": seed,
        "split_seed": SPLIT_SEED,
        "split": {"pool": len(ctx.split.pool), "val": len(ctx.split.val), "test": len(ctx.split.test)},
        "scale_settings": ctx.scale.__dict__,
        "cells": [c.row() | {"label": c.label} for c in cells],
        "table_csv": csv_path,
        "table_md": md_path,
        "plot": plot,
        "target": check_target(cells),
    }
    if with_bias_fix:
        smallest = min(b for b in ctx.scale.budgets if b is not None)
        base = next(c for c in cells if c.training_set == "real+synthetic" and c.budget == smallest)
        ref = next((c for c in cells if c.training_set == "real" and c.budget == smallest), None)
        results["bias_fix"] = bias_fix(ctx, base, ref).to_dict()
    results["seconds"] = round(time.time() - t0, 1)
    dd._write_json(os.path.join(ctx.out, "results.json"), results)
    return results


def check_target(cells: list[Cell]) -> dict[str, Any]:
    """The stated target: real + synthetic beats real only at every budget <= 100, with non-overlapping 95% CIs
    at the smallest budget."""
    real = {c.budget: c for c in cells if c.training_set == "real"}
    mixed = {c.budget: c for c in cells if c.training_set == "real+synthetic"}
    budgets = sorted(b for b in real if b is not None and b in mixed and b <= 100)
    if not budgets:
        return {"met": None, "reason": "no budget <= 100 run for both real and real+synthetic"}
    beats = {str(b): mixed[b].accuracy.mean > real[b].accuracy.mean for b in budgets}
    smallest = budgets[0]
    separated = mixed[smallest].accuracy.lo > real[smallest].accuracy.hi
    return {
        "met": all(beats.values()) and separated,
        "beats_real_only": beats,
        "non_overlapping_at_smallest": separated,
        "smallest_budget": smallest,
    }

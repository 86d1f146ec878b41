"""The digits benchmark: does Blendset's rendered data help a classifier on real handwritten digits?

The refinement talk's design with Blendset's own pipeline, plus the bias-fix study's loop:

1. Split scikit-learn's 1797 real digits once, with a fixed seed (:data:`SPLIT_SEED`): a real train pool, a real
   val set (picks the best epoch) and a real test set (50%, never trained on).
2. Render the digits scene (``scenes/digits/build.py``) through the engine and bring every crop into the real
   form (:func:`trainer.bench.digits_data.to_digit_form`: grey, 8x8, 17 levels, ink high).
3. Train the same classifier on every :class:`~trainer.bench.digits_steps.TrainingSet` (synthetic only; real only
   and real + synthetic at each real budget), evaluate on the real test set, and report accuracy with bootstrap
   95% intervals: one table (CSV + Markdown) and one plot (error vs real budget, one line per training set).
4. Bias fix on real + synthetic at the smallest budget (:mod:`trainer.bench.digits_bias_fix`): ``blendset gap
   suggest`` names the weakest classes on the real val set and writes a rendering plan (mixture components
   restricted to those classes); the engine renders it, the model is retrained with the extra frames, and
   per-class test accuracy is compared before/after.

This module says what runs and in which order; :mod:`trainer.bench.digits_steps` does each step (atomic outputs,
skipped when already done, so an interrupted run resumes) and :mod:`trainer.bench.digits_results` writes the
table and plot. Extension point: :data:`TRAINING_SETS` is a list of training-set definitions and
:data:`SYNTHETIC_BUILDERS` maps a synthetic source name to the function that produces its ImageFolder;
:mod:`trainer.bench.digits_refined` adds ``real+refined`` and ``refined`` by appending to both.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from shared.atomic import write_json
from shared.progress import Note, silent
from trainer.bench import digits_data as dd
from trainer.bench.digits_bias_fix import bias_fix
from trainer.bench.digits_data import budget_label
from trainer.bench.digits_results import Cell, check_target, plot_error_vs_budget, write_table
from trainer.bench.digits_steps import (
    BenchContext,
    Scale,
    TrainingSet,
    cell_sources,
    convert_renders,
    evaluate_on,
    prepare_real,
    render_dataset,
    train_classifier,
)
from trainer.bench.errors import BenchError
from trainer.bench.stats import bootstrap_mean

SPLIT_SEED = 20261121  # the real split never changes with --seed


SCALES: dict[str, Scale] = {
    "toy": Scale("toy", 40, (10, 30), 64, 1, 6, 1, 16, 16, "small_cnn", 0.003, 12, 2, 200, bias_fix_seeds=1),
    "small": Scale("small", 1600, (10, 30, 100, 300, None), 64, 2, 300, 3, 64, 16, "small_cnn", 0.003, 400, 2, 1000),
    "full": Scale("full", 6000, (10, 30, 100, 300, None), 96, 4, 1000, 5, 64, 16, "small_cnn", 0.003, 1200, 2, 1000),
}


TRAINING_SETS: list[TrainingSet] = [
    TrainingSet("synthetic", "(a) synthetic only", real=False, synthetic="synthetic"),
    TrainingSet("real", "(b) real only", real=True),
    TrainingSet("real+synthetic", "(c) real + synthetic", real=True, synthetic="synthetic"),
]


def build_synthetic(ctx: BenchContext) -> str:
    """Render the digits scene and convert it into ``OUT/synthetic`` (the real form)."""
    config = digits_config(ctx.scale)
    raw = ctx.path("renders", "synthetic")
    render_dataset(config, raw, ctx.scale.frames, ctx.seed, ctx.progress, ctx.scene_options)
    return convert_renders(raw, ctx.path("synthetic"), ctx.progress)


SYNTHETIC_BUILDERS: dict[str, Callable[[BenchContext], str]] = {"synthetic": build_synthetic}


# ---------------------------------------------------------------------------------------------------------------
# The digits scene's config


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


# ---------------------------------------------------------------------------------------------------------------
# The protocol


def make_context(
    out: str,
    scale: str,
    seed: int,
    device: str = "cpu",
    progress: Note | None = None,
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
        progress=progress or silent,
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
# Entry point


def run_digits_benchmark(
    out: str,
    scale: str = "small",
    seed: int = 0,
    device: str = "cpu",
    progress: Note | None = None,
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
        mixed = next(ts for ts in TRAINING_SETS if ts.key == "real+synthetic")
        results["bias_fix"] = bias_fix(ctx, base, mixed, ref).to_dict()
    results["seconds"] = round(time.time() - t0, 1)
    write_json(os.path.join(ctx.out, "results.json"), results, indent=1, allow_nan=True)
    return results

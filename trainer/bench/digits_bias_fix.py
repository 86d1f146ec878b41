"""The bias fix on the digits benchmark, after the bias-fix study: find the weakest classes of a model on the real
val set, render more of exactly those, retrain, and compare per-class test accuracy before and after.

``blendset gap suggest`` is the planner: it scores the model per class on the real val set (never the test set)
and writes a rendering plan whose mixture components are restricted to the weak classes. Before and after are
each averaged over ``scale.bias_fix_seeds`` training seeds, since per-class accuracy at 10 real images swings with
the seed.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from shared.atomic import atomic_path, write_json
from trainer.bench import digits_data as dd
from trainer.bench.digits_data import budget_label
from trainer.bench.digits_results import Cell
from trainer.bench.digits_steps import (
    BenchContext,
    TrainingSet,
    cell_sources,
    convert_renders,
    count_images,
    evaluate_on,
    real_budget_dir,
    render_dataset,
    train_classifier,
)
from trainer.bench.errors import BenchError
from trainer.bench.stats import Estimate, bootstrap_mean, per_class_accuracy, per_class_mean


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


def bias_fix(ctx: BenchContext, base: Cell, mixed: TrainingSet, real_only: Cell | None = None) -> BiasFix:
    """The loop on ``base`` (real + synthetic at the smallest budget, trained as the training set ``mixed``):
    plan, render, retrain with the extra renders in the synthetic share of every batch, compare. ``real_only``
    (the real-only cell at the same budget) adds its per-class accuracy for reference."""
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
    n_syn, n_extra = count_images(syn), count_images(extra)
    share = mixed.synthetic_share
    sources = [
        (syn, round(share * n_syn / (n_syn + n_extra), 6)),
        (extra, round(share * n_extra / (n_syn + n_extra), 6)),
        (real, round(1 - share, 6)),
    ]
    b = budget_label(base.budget)
    base_sources, _, _ = cell_sources(ctx, mixed, base.budget)
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
        with atomic_path(os.path.join(out, "images", name)) as tmp:
            Image.fromarray(dd.digit_png(ctx.real_images[i]), mode="L").save(tmp, format="PNG")
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
    write_json(ann, coco, indent=1)
    return out

"""The refinement talk's refined curves for the digits benchmark: (d) real + refined and (e) refined only.

The digits benchmark (:mod:`trainer.bench.digits`) keeps its training sets in ``TRAINING_SETS`` and the builders
of its synthetic sources in ``SYNTHETIC_BUILDERS``; :func:`add_refined_curves` appends the ``refined`` source and
the two training sets, so ``run_cells`` trains and plots them beside (a)-(c). The refiner itself is
:func:`trainer.refine.refine_arrays`; this module is the benchmark's side of the hook (bench uses refine, never
the other way round).

Which real images the refiner sees: the benchmark's synthetic folder is built once, not per budget, so the
refiner is trained on the real images of the *smallest* budget only. Budgets are nested (a smaller budget's images
are a subset of every larger one), so no cell ever sees a real image outside its own budget through the refiner.
The refinement talk trained its GAN on each budget's images instead; that would refine better at large budgets,
so the curves here are a conservative estimate of what refinement adds.
"""

from __future__ import annotations

import os
from types import ModuleType

from trainer.bench import digits as digits_bench
from trainer.bench import digits_data as dd
from trainer.bench.digits_steps import BenchContext, TrainingSet

# Refiner steps per benchmark scale (8x8 images: a step takes milliseconds on a CPU).
STEPS = {"toy": 60, "small": 600, "full": 2000}

# The keys of the training sets this module adds, so a caller can leave them out again (``bench digits`` without
# ``--refined`` in a process that registered them).
REFINED_KEYS = ("real+refined", "refined")


def build_refined(ctx: BenchContext) -> str:
    """A ``SYNTHETIC_BUILDERS`` entry: refine the benchmark's synthetic digits toward the smallest real budget and
    write them as ``OUT/refined`` (ImageFolder, same names and labels). Idempotent: a finished folder is kept."""
    from trainer.refine.apply import refine_arrays

    if "synthetic" not in ctx.synthetic_dirs:
        ctx.synthetic_dirs["synthetic"] = digits_bench.SYNTHETIC_BUILDERS["synthetic"](ctx)
    images, labels, names = dd.read_imagefolder(ctx.synthetic_dirs["synthetic"])
    budgets = [b for b in ctx.scale.budgets if b is not None]
    budget = min(budgets) if budgets else None
    idx = dd.budget_subset(ctx.split.pool, ctx.real_labels, budget, ctx.seed)
    out = ctx.path("refined")
    done = os.path.join(out, "done.json")
    if os.path.isfile(done):
        return out
    ctx.progress(f"refining {len(images)} synthetic digits toward {len(idx)} real ones (budget {budget})")
    refined, summary = refine_arrays(
        images,
        ctx.real_images[idx],
        ctx.path("refiner"),
        model="fastcut",
        steps=STEPS.get(ctx.scale.name, STEPS["small"]),
        image_size=8,
        batch=16,
        device=ctx.device,
        seed=ctx.seed,
    )
    ctx.progress(f"refiner: {summary['steps']} steps, {summary['img_per_s']} img/s")
    dd.write_imagefolder(out, refined, labels, names)
    return out


def add_refined_curves(bench: ModuleType = digits_bench) -> list[TrainingSet]:
    """Register the ``refined`` source and the training sets (d) and (e) with the digits benchmark (the module
    :mod:`trainer.bench.digits` unless another one with the same lists is given) and return the full list of
    training sets. Idempotent: a second call adds nothing."""
    bench.SYNTHETIC_BUILDERS["refined"] = build_refined
    keys = {ts.key for ts in bench.TRAINING_SETS}
    new = [
        TrainingSet(REFINED_KEYS[0], "(d) real + refined", real=True, synthetic="refined"),
        TrainingSet(REFINED_KEYS[1], "(e) refined only", real=False, synthetic="refined"),
    ]
    bench.TRAINING_SETS.extend(ts for ts in new if ts.key not in keys)
    return list(bench.TRAINING_SETS)

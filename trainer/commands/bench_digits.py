"""`blendset bench digits`: rendered digits vs scikit-learn's real handwritten digits (after the refinement talk and
the bias-fix study)."""

from __future__ import annotations

import os

import click

from trainer.commands.options import device_option, out_option, overwrite_option, quiet_option, seed_option


@click.command(short_help="Digits benchmark: synthetic vs real vs real+synthetic, plus the bias fix.")
@out_option
@click.option(
    "--scale",
    type=click.Choice(["toy", "small", "full"]),
    default="small",
    show_default=True,
    help="toy: wiring check (minutes); small: the demo's run; full: the benchmark.",
)
@seed_option
@device_option
@click.option(
    "--bias-fix/--no-bias-fix",
    default=True,
    show_default=True,
    help="Run the bias-fix study's loop at the end (render more of the weakest classes, retrain, compare).",
)
@click.option(
    "--handwriting/--no-handwriting",
    default=True,
    show_default=True,
    help="Deform the glyph strokes with the scene's lattice (the 'handwriting-like' option).",
)
@click.option(
    "--refined/--no-refined",
    default=False,
    show_default=True,
    help="Also train (d) real + refined and (e) refined only: the renders passed through the sim-to-real refiner.",
)
@overwrite_option
@quiet_option
def digits(
    out: str,
    scale: str,
    seed: int,
    device: str,
    bias_fix: bool,
    handwriting: bool,
    refined: bool,
    overwrite: bool,
    quiet: bool,
) -> None:
    """Run the digits protocol and write table.csv, table.md, error_vs_budget.png and results.json into OUT.

    \b
    Real data: sklearn's load_digits (1797 images), split once with a fixed seed into a train pool, a val set
    and a test set (50%, never trained on). Training sets: (a) synthetic only, (b) real only and (c) real +
    synthetic at real budgets 10, 30, 100, 300 and all. --refined adds (d) real + refined and (e) refined only
    (the renders refined toward the smallest budget's real images; docs/refine.md). Test accuracy with bootstrap
    95% intervals.
    An existing OUT is resumed (finished steps are kept); --overwrite is needed only to reuse a folder that
    holds something else.

    \b
    Example:
      blendset bench digits --out runs/digits --scale small --seed 0
    """
    from trainer.bench import digits as bench
    from trainer.bench.digits_refined import REFINED_KEYS, add_refined_curves
    from trainer.commands.options import resolve_device
    from trainer.commands.progress import note_printer

    results_file = os.path.join(out, "results.json")
    if os.path.isdir(out) and os.listdir(out) and not overwrite and not os.path.isdir(os.path.join(out, "real")):
        raise click.UsageError(f"{out} exists and is not a digits benchmark folder; use --overwrite to write into it")
    if refined:
        training_sets = add_refined_curves(bench)
    else:
        training_sets = [ts for ts in bench.TRAINING_SETS if ts.key not in REFINED_KEYS]
    results = bench.run_digits_benchmark(
        out,
        scale=scale,
        seed=seed,
        device=resolve_device(device),
        progress=note_printer(quiet),
        with_bias_fix=bias_fix,
        scene_options={"handwriting": handwriting},
        training_sets=training_sets,
    )
    with open(results["table_md"], encoding="utf-8") as f:
        click.echo(f.read())
    target = results["target"]
    click.echo(
        f"target (real+synthetic beats real-only at budgets <= 100, separated CIs at the smallest): "
        f"{'met' if target.get('met') else 'NOT met'} {target}"
    )
    if "bias_fix" in results:
        click.echo(
            f"bias fix: {results['bias_fix']['weakest_delta']} (weak classes {results['bias_fix']['weak_classes']})"
        )
    click.echo(f"results: {results_file}")

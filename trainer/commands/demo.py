"""`blendset demo`: the main job (`make demo`) on the built-in digits scene, ending in one HTML report."""

from __future__ import annotations

import click

from trainer.commands.options import device_option, quiet_option, seed_option


@click.command(short_help="Render digits, train, evaluate on real digits, analyze the gap, write report.html.")
@click.option(
    "--scale",
    type=click.Choice(["toy", "small", "full"]),
    default="small",
    show_default=True,
    help="small: minutes on a 2-core CPU; full: the benchmark scale; toy: a wiring check.",
)
@click.option(
    "-o",
    "--out",
    "out",
    default="runs/demo",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Output folder (an existing demo folder is resumed).",
)
@seed_option
@device_option
@quiet_option
def demo(scale: str, out: str, seed: int, device: str, quiet: bool) -> None:
    """Run the whole Blendset loop on the digits scene and write OUT/report.html.

    \b
    1. render the digits scene through the engine (3D text digits, handwriting-like lattice deformation);
    2. bring the crops into the real digits' form (grey, 8x8, 17 levels);
    3. train one classifier on synthetic only, real only and real + synthetic at real budgets 10..all;
    4. evaluate on scikit-learn's real handwritten digits (test split never trained on), bootstrap 95% CIs;
    5. the bias fix (after the bias-fix study): more renders of the weakest classes, retrain, per-class before/after;
    6. gap analyze between synthetic and real digits;
    7. one self-contained report.html with the headline numbers and figures.

    \b
    Example:
      blendset demo --scale small --out runs/demo     (make demo; make demo SCALE=full)
    """
    from trainer.bench.demo import run_demo
    from trainer.commands.options import resolve_device
    from trainer.commands.progress import note_printer

    result = run_demo(out, scale=scale, seed=seed, device=resolve_device(device), progress=note_printer(quiet))
    click.echo(f"report: {result['report']} ({result['seconds'] / 60:.1f} min)")

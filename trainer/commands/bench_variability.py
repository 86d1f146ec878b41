"""`blendset bench variability`: the variability study's experiment on training-set variability, rendered and
trained end to end."""

from __future__ import annotations

import json

import click

from trainer.commands.options import device_option, out_option, overwrite_option, quiet_option, seed_option


@click.command("variability", short_help="The variability study: train on none/angle/angle_bg/all, test on all.")
@out_option
@click.option(
    "--scale",
    type=click.Choice(["toy", "small", "full"]),
    default="toy",
    show_default=True,
    help="toy: wiring check (a minute); small: about 8 minutes on 2 CPU cores; full: GPU-sized.",
)
@device_option
@seed_option
@overwrite_option
@quiet_option
def variability(out, scale, device, seed, overwrite, quiet):
    """Render four training sets with the presets none, angle, angle_bg and all and one test set with all,
    train the same regressor (the head's shape parameters) on each, evaluate all four on the test set beside the
    naive training-mean guess, and check the variability study's finding: without background variety the models
    do worse than the naive guess.

    \b
    Writes OUT/results.json, OUT/table.md, OUT/table.csv, OUT/errors_violin.png, OUT/error_vs_azimuth.png.
    A second run with the same OUT resumes (finished stages are kept); --overwrite starts over.
    """
    import os
    import shutil

    from trainer.bench.variability import run_variability
    from trainer.commands.options import resolve_device
    from trainer.commands.progress import note_printer

    if overwrite and os.path.isdir(out):
        shutil.rmtree(out)
    results = run_variability(out, scale=scale, device=resolve_device(device), seed=seed, note=note_printer(quiet))
    with open(os.path.join(out, "table.md"), encoding="utf-8") as f:
        click.echo(f.read(), err=True)
    click.echo(json.dumps({"finding": results["finding"], "seconds": results["seconds"]}, indent=2))

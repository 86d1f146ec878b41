"""`blendset refine train|apply`: sim-to-real refinement of renders (after the refinement talk) that keeps the
labels valid.

Thin wrappers over :mod:`trainer.refine`; torch is imported inside the commands so ``blendset --help`` stays fast.
A :class:`trainer.refine.RefineError` reaches the root group, which prints it as one line (exit status 2).
"""

from __future__ import annotations

import json

import click

from trainer.commands.options import (
    device_option,
    overwrite_option,
    quiet_option,
    real_option,
    resolve_device,
    seed_option,
    synthetic_option,
)
from trainer.commands.progress import TqdmProgress


@click.group()
def refine() -> None:
    """Make renders look like real photos without moving their geometry.

    \b
      blendset refine train --synthetic synth/ --real real/ --out runs/refiner
      blendset refine apply --model runs/refiner synth/ synth_refined/
    """


@refine.command("train", short_help="Train an unpaired render-to-real translator.")
@synthetic_option("Rendered dataset folder (annotations.json + images/) or a folder of images.", file_okay=False)
@real_option("Real images: a COCO dataset folder or a plain folder of images (no labels needed).", file_okay=False)
@click.option(
    "-o",
    "--out",
    required=True,
    type=click.Path(file_okay=False),
    help="Run folder: refiner.pth, checkpoint.pth (resumable), metrics.jsonl, summary.json.",
)
@click.option(
    "--model",
    type=click.Choice(["cut", "fastcut", "cyclegan"]),
    default="cut",
    show_default=True,
    help="CUT and FastCUT are one-sided (about half of CycleGAN's cost); CycleGAN trains both ways.",
)
@click.option("--steps", default=2000, show_default=True, type=click.IntRange(1), help="Training steps.")
@click.option(
    "--image-size",
    default=64,
    show_default=True,
    type=click.IntRange(8),
    help="Side of the random training crops, taken at native resolution.",
)
@click.option("--batch", default=4, show_default=True, type=click.IntRange(1), help="Images per domain and step.")
@click.option("--lr", default=5e-4, show_default=True, type=float, help="Adam learning rate.")
@click.option(
    "--lambda-edge",
    default=10.0,
    show_default=True,
    type=float,
    help="Weight of the edge-consistency constraint that keeps the geometry (0 turns it off).",
)
@click.option(
    "--blocks",
    "n_blocks",
    default=4,
    show_default=True,
    type=click.IntRange(0),
    help="Residual blocks in the generator.",
)
@device_option
@seed_option
@quiet_option
def train_cmd(synthetic, real, out, model, steps, image_size, batch, lr, lambda_edge, n_blocks, device, seed, quiet):
    """Train a refiner from SYNTHETIC renders to REAL images. A killed run resumes from OUT/checkpoint.pth
    when started again with the same options."""
    from trainer.refine import train_refiner

    device = resolve_device(device)
    with TqdmProgress(quiet=quiet) as progress:
        summary = train_refiner(
            synthetic,
            real,
            out,
            model=model,
            steps=steps,
            image_size=image_size,
            batch=batch,
            device=device,
            progress=progress,
            lr=lr,
            lambda_edge=lambda_edge,
            n_blocks=n_blocks,
            seed=seed,
        )
    click.echo(f"refiner written to {summary['refiner']} ({summary['img_per_s']} img/s on {device})", err=True)
    click.echo(json.dumps({k: v for k, v in summary.items() if k != "args"}, indent=2))


@refine.command("apply", short_help="Write a refined copy of a dataset, labels unchanged.")
@click.option(
    "--model",
    "-m",
    "model_path",
    required=True,
    type=click.Path(exists=True),
    help="A refiner run folder or its refiner.pth.",
)
@click.argument("synthetic", type=click.Path(exists=True, file_okay=False))
@click.argument("out", type=click.Path(file_okay=False))
@overwrite_option
@device_option
@click.option(
    "--min-edge-iou",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Fail (exit 1, output kept) when the mean edge IoU between input and output is below this.",
)
@quiet_option
def apply_cmd(model_path, synthetic, out, overwrite, device, min_edge_iou, quiet):
    """Refine every image of the SYNTHETIC dataset into OUT. annotations.json, masks, depth and frame records are
    copied byte for byte; OUT/refine_report.json says how well edges and mask boundaries survived."""
    from trainer.refine import apply_refiner

    device = resolve_device(device)
    with TqdmProgress(quiet=quiet) as progress:
        report = apply_refiner(model_path, synthetic, out, device=device, overwrite=overwrite, progress=progress)
    brief = {k: v for k, v in report.items() if k != "per_image"}
    click.echo(json.dumps(brief, indent=2))
    click.echo(
        f"{report['images']} images refined, edge IoU mean {report['edge_iou_mean']:.3f} "
        f"(min {report['edge_iou_min']:.3f}), annotations identical: {report['annotations_identical']}",
        err=True,
    )
    if report["edge_iou_mean"] < min_edge_iou:
        raise click.ClickException(
            f"mean edge IoU {report['edge_iou_mean']:.3f} is below --min-edge-iou "
            f"{min_edge_iou}: the refiner moved edges"
        )

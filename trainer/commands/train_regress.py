"""`blendset train regress`: learn render parameters (camera angles, light energy, ...) from images, as the
variability study does."""

from __future__ import annotations

import click

from trainer.commands.launch import nproc_option
from trainer.commands.options import device_option, quiet_option, seed_option, workers_option
from trainer.commands.train_common import run_training


@click.command("regress", short_help="Regress recorded render parameters from images.")
@click.option(
    "--train",
    "train",
    required=True,
    type=click.Path(exists=True),
    help="A Blendset dataset (annotations.json with images[*].blendset.params).",
)
@click.option(
    "--val",
    "val",
    type=click.Path(exists=True),
    default=None,
    help="Validation dataset that picks best.pth (default: the training set).",
)
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False), help="Run folder.")
@click.option(
    "--targets",
    required=True,
    metavar="NAME,NAME,...",
    help="Recorded parameters to predict, e.g. camera.elevation_deg,camera.azimuth_deg,lights.energy_w.",
)
@click.option(
    "--model",
    "model_name",
    default="resnet18",
    show_default=True,
    help="Backbone: a torchvision classifier name, or small_cnn (tiny, no BatchNorm: exact under --nproc).",
)
@click.option("--epochs", default=10, show_default=True, type=click.IntRange(1))
@click.option("--batch-size", default=16, show_default=True, type=click.IntRange(1))
@click.option("--lr", default=1e-3, show_default=True, type=float, help="AdamW learning rate (cosine decay).")
@click.option(
    "--image-size",
    default=128,
    show_default=True,
    type=click.IntRange(16),
    help="Images are squashed to this square size (no crop, no flip: both would change the targets).",
)
@click.option(
    "--weights",
    default="none",
    show_default=True,
    metavar="none|imagenet|PATH",
    help="Backbone initialisation; imagenet reads torchvision's local cache only.",
)
@click.option("--resume", is_flag=True, help="Continue the run in --out from its checkpoint.pth.")
@seed_option
@device_option
@workers_option
@quiet_option
@nproc_option
def regress(quiet, **settings):
    """Train a backbone with a linear head on normalized targets (each mapped from its training range onto
    [-1, 1], MSE loss). The naive baseline, always predicting the training mean, is reported beside the model.

    \b
      blendset train regress --train synth/ --val synth_val/ --out runs/elev \\
          --targets camera.elevation_deg --epochs 10
      blendset eval --model runs/elev --data test/

    With --nproc N (or under torchrun) each process takes --batch-size images per step: the global batch is
    N x --batch-size.
    """
    from trainer.training.regress import train_regression

    run_training(train_regression, quiet, **settings)

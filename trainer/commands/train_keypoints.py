"""`blendset train keypoints`: a Keypoint R-CNN on mixed COCO keypoint sources."""

from __future__ import annotations

import click

from trainer.commands.train_common import run_training, train_options
from trainer.training.spec import TASK_DEFAULTS, KeypointOptions

_DEFAULTS = KeypointOptions()


@click.command("keypoints", short_help="Train a keypoint detector (Keypoint R-CNN), e.g. board corners.")
@train_options("keypoints")
@click.option(
    "--trainable-backbone-layers",
    default=None,
    type=click.IntRange(0, 6),
    help="Backbone stages to train, counted from the top (default: all from random weights, else torchvision's).",
)
@click.option(
    "--min-size",
    default=_DEFAULTS.min_size,
    show_default=True,
    type=click.IntRange(16),
    help="Shorter image side the model resizes to.",
)
@click.option(
    "--max-size",
    default=_DEFAULTS.max_size,
    show_default=True,
    type=click.IntRange(16),
    help="Longest side limit of that resize.",
)
@click.option(
    "--warmup-iters",
    default=TASK_DEFAULTS["keypoints"]["warmup_iters"],
    show_default=True,
    type=click.IntRange(0),
    help="Linear learning-rate warm-up steps in the first epoch.",
)
@click.option(
    "--oks-sigma",
    default=None,
    type=click.FloatRange(min=0, min_open=True),
    help="OKS falloff per keypoint, as a share of the object scale sqrt(area), for --val's keypoint AP "
    "(default: trainer.evaluation.keypoints.BOARD_SIGMA, for chessboard corners).",
)
def keypoints(quiet, **settings):
    """Train a keypoint detector and write RUN/checkpoint.pth (every epoch), RUN/best.pth (best --val keypoint
    OKS AP, else lowest training loss), RUN/args.json and RUN/metrics.jsonl.

    \b
    Data: COCO keypoints (categories[].keypoints names, annotations[].keypoints [x, y, v] * K in continuous
    pixel coordinates). No flips: --augment keypoints (the default) crops, rotates, zooms, jitters colour,
    greys, blurs and adds noise; hflip/vflip need a keypoint_flip_map in the category.

    \b
      blendset train keypoints --train boards_synth/ --val boards_real_val/ --out runs/boards --epochs 20
      blendset eval --model runs/boards --data boards_real_test/

    Models: keypointrcnn_mobilenet_v3_large_fpn (CPU-sized, the default), keypointrcnn_resnet50_fpn.
    """
    from trainer.training.keypoints import train_keypoints

    run_training(train_keypoints, quiet, **settings)

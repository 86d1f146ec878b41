"""`blendset train classify`: a torchvision classifier on box crops or ImageFolder trees."""

from __future__ import annotations

import click

from trainer.commands.train_common import run_training, train_options


@click.command("classify", short_help="Train a classifier on COCO box crops or ImageFolder.")
@train_options("classify")
@click.option("--image-size", default=224, show_default=True, type=click.IntRange(8), help="Square input size.")
@click.option("--grayscale/--color", default=False, show_default=True, help="Feed 3-channel grey images.")
@click.option(
    "--padding",
    default=0.1,
    show_default=True,
    type=click.FloatRange(0),
    help="Grow each COCO box crop by this share of its size on every side.",
)
def classify(quiet, **settings):
    """Train a classifier (resnet18/34/50, vgg16, mobilenet_v3_small/large, efficientnet_b0) and write the run
    folder like `train detect`; best.pth is the best --val accuracy.

    \b
    Transfer learning with a frozen backbone (the bias-fix study's recipe), real data as a quarter of every batch:
      blendset train classify --train synth/ --train real/:0.25 --val real_val/ --out runs/cls \\
          --model vgg16 --weights imagenet --freeze-backbone --balanced
    """
    from trainer.training.classify import train_classifier

    run_training(train_classifier, quiet, **settings)

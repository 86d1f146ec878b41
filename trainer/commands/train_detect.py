"""`blendset train detect`: a torchvision detector on mixed COCO sources."""

from __future__ import annotations

import click

from trainer.commands.train_common import run_training, train_options


@click.command("detect", short_help="Train a detector (Faster R-CNN, Mask R-CNN, RetinaNet, FCOS).")
@train_options("detect")
@click.option(
    "--trainable-backbone-layers",
    default=None,
    type=click.IntRange(0, 6),
    help="Backbone stages to train, counted from the top (default: torchvision's).",
)
@click.option(
    "--min-size",
    default=800,
    show_default=True,
    type=click.IntRange(16),
    help="Shorter image side the model resizes to.",
)
@click.option(
    "--max-size", default=1333, show_default=True, type=click.IntRange(16), help="Longest side limit of that resize."
)
@click.option(
    "--warmup-iters",
    default=100,
    show_default=True,
    type=click.IntRange(0),
    help="Linear learning-rate warm-up steps in the first epoch.",
)
def detect(quiet, **settings):
    """Train a detector and write RUN/checkpoint.pth (every epoch), RUN/best.pth (best --val mAP),
    RUN/args.json and RUN/metrics.jsonl.

    \b
    Pretrain on synthetic, then fine-tune on real (two runs):
      blendset train detect --train synth/ --val real_val/ --out runs/synth --epochs 20
      blendset train detect --train real/ --train synth/:0.5 --val real_val/ \\
          --out runs/finetune --init-from runs/synth --epochs 10 --lr 0.005
      blendset eval --model runs/finetune --data real_test/

    Models: fasterrcnn_resnet50_fpn(_v2), fasterrcnn_mobilenet_v3_large(_320)_fpn, maskrcnn_resnet50_fpn(_v2),
    retinanet_resnet50_fpn(_v2), fcos_resnet50_fpn. Multi-GPU: torchrun --nproc_per_node=N -m trainer.cli
    train detect ...
    """
    from trainer.training.detect import train_detector

    run_training(train_detector, quiet, **settings)

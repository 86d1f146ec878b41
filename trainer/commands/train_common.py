"""Flags shared by the `blendset train` commands, and the one way they call a training function.

Every flag is a :class:`trainer.training.spec.RunSpec` field of the same name, so a command passes its flags on
unchanged (``run_training(train_detector, **flags)``) and a flag's default is the task's default from
``trainer.training.spec.TASK_DEFAULTS``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable

import click

from trainer.commands.launch import nproc_option
from trainer.commands.options import device_option, quiet_option, seed_option, workers_option


def _check_source(ctx, param, values):
    from trainer.data.mixing import parse_source

    try:
        return [parse_source(v) for v in values]
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--train") from exc


def train_options(task: str) -> Callable:
    """Decorator adding the flags `train detect`, `train keypoints` and `train classify` share, with ``task``'s
    defaults."""
    from trainer.training.spec import TASK_DEFAULTS, RunSpec

    defaults = {**{k: v.default for k, v in RunSpec.__dataclass_fields__.items()}, **TASK_DEFAULTS[task]}
    default_model, default_batch, default_lr = defaults["model"], defaults["batch_size"], defaults["lr"]
    default_augment = defaults["augment"]
    options = [
        click.option(
            "--train",
            "train",
            multiple=True,
            required=True,
            metavar="PATH[:RATIO]",
            callback=_check_source,
            help="Training source (repeatable): a COCO folder or ImageFolder root, optionally with the share "
            "of each batch it fills, e.g. --train synth/ --train real/:0.25.",
        ),
        click.option(
            "--val",
            type=click.Path(exists=True),
            default=None,
            help="Validation set (ideally real) that picks best.pth.",
        ),
        click.option("-o", "--out", required=True, type=click.Path(file_okay=False), help="Run folder."),
        click.option("--model", default=default_model, show_default=True, help="torchvision model name."),
        click.option("--epochs", default=10, show_default=True, type=click.IntRange(1)),
        click.option("--batch-size", default=default_batch, show_default=True, type=click.IntRange(1)),
        click.option("--lr", default=default_lr, show_default=True, type=float, help="Peak learning rate (cosine)."),
        click.option("--optimizer", type=click.Choice(["sgd", "adamw"]), default="sgd", show_default=True),
        click.option("--weight-decay", default=1e-4, show_default=True, type=float),
        click.option(
            "--weights",
            default="none",
            show_default=True,
            metavar="none|imagenet|coco|PATH",
            help="Initial weights; named ones come from torchvision's local cache only (no download).",
        ),
        click.option("--freeze-backbone", is_flag=True, help="Train only the heads."),
        click.option("--balanced", is_flag=True, help="Class-balanced sampling inside each source."),
        click.option(
            "--augment",
            default=default_augment,
            show_default=True,
            metavar="NAME|RECIPE",
            help="Preset (none, hflip, basic, strong, weather, keypoints), a YAML/JSON recipe file, or inline YAML.",
        ),
        click.option("--resume", is_flag=True, help="Continue the run in --out from its checkpoint.pth."),
        click.option(
            "--init-from",
            default=None,
            type=click.Path(exists=True),
            metavar="RUN_OR_CKPT",
            help="Start from another run's model weights (pretrain on synthetic, fine-tune on real).",
        ),
        click.option("--amp", is_flag=True, help="Mixed precision (float16 on CUDA, bfloat16 on CPU)."),
        click.option(
            "--accum-steps",
            default=1,
            show_default=True,
            type=click.IntRange(1),
            help="Gradient accumulation: optimizer step every K batches.",
        ),
        click.option(
            "--epoch-size",
            default=None,
            type=click.IntRange(1),
            help="Samples drawn per epoch (default: all sources' sizes added).",
        ),
        click.option(
            "--skip-bad", is_flag=True, help="Leave out bad images/annotations (listed on stderr) instead of stopping."
        ),
        click.option("--tensorboard", is_flag=True, help="Also log scalars to RUN/tb (needs tensorboard)."),
        seed_option,
        device_option,
        workers_option,
        quiet_option,
        nproc_option,
    ]

    def decorate(f):
        for option in reversed(options):
            f = option(f)
        return f

    return decorate


def run_training(train_fn: Callable, quiet: bool, **settings) -> None:
    """Call a library training function with a progress bar and notes on stderr, then print its summary as
    JSON on stdout. Domain errors reach the root group, which prints them as one line (exit status 2)."""
    from trainer.commands.progress import TqdmProgress, note_printer

    with TqdmProgress(quiet=quiet) as progress:
        summary = train_fn(progress=progress, note=note_printer(quiet), **settings)
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun, one summary, not one per process
        click.echo(json.dumps({k: v for k, v in summary.items() if k != "history"}, indent=2))

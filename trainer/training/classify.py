"""The classification recipe: a torchvision classifier on box crops of COCO sources or on ImageFolder trees
(``train_classifier``). Same run folder, mixing, balancing, resume and init-from as detection."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from shared.progress import Note, ProgressFn, silent
from trainer.data.datasets import (
    align_categories,
    check_same_categories,
    classification_dataset,
    dataset_name,
    describe_skips,
)
from trainer.data.loaders import eval_loader, open_sources
from trainer.data.transforms import classification_transforms, parse_policy
from trainer.models.build import get_classification_model
from trainer.training.checkpoint import Checkpoint, load_model_state
from trainer.training.distributed import DistInfo
from trainer.training.epoch import classification_loss
from trainer.training.loop import Metric, TaskSetup, run
from trainer.training.spec import ClassifyOptions, RunSpec


def train_classifier(
    train: Sequence, out: str, *, progress: ProgressFn | None = None, note: Note = silent, **settings: Any
) -> dict[str, Any]:
    """Train a classifier and write the run folder ``settings["out"]``; ``best.pth`` is the best validation
    accuracy. ``settings`` are the other :class:`~trainer.training.spec.RunSpec` fields plus
    :class:`~trainer.training.spec.ClassifyOptions` fields:

    :param train: ``"path"`` / ``"path:ratio"`` strings or ``(path, ratio)`` pairs; COCO folders give one crop per
        box (grown by ``padding``), ImageFolder roots one sample per file.
    :param freeze_backbone: train only the new head (the bias-fix study's VGG16 transfer recipe).
    :param grayscale: feed 3-channel grey images (digits, or to remove a colour gap).
    :returns: ``{"run_dir", "best_epoch", "best_metric", "metric_name", "history"}``.
    """
    return run(RunSpec.build("classify", train=train, out=out, **settings), setup_classification, progress, note)


def setup_classification(spec: RunSpec, dist: DistInfo, device: str, note: Note) -> TaskSetup:
    options: ClassifyOptions = spec.options
    on_problem = "skip" if spec.skip_bad else "raise"
    policy = parse_policy(spec.augment) if not isinstance(spec.augment, list) else spec.augment
    channels_last = device.startswith("cuda")
    train_tf = classification_transforms(options.image_size, policy, options.grayscale)
    datasets = open_sources(
        spec.train,
        lambda p: classification_dataset(p, train_tf, on_problem=on_problem, padding=options.padding),
        note,
    )
    categories = datasets[0].categories
    validate = None
    if spec.val is not None:
        val_tf = classification_transforms(options.image_size, [], options.grayscale)
        val_ds = classification_dataset(spec.val, val_tf, on_problem=on_problem, padding=options.padding)
        note(describe_skips(dataset_name(spec.val), val_ds.skipped))
        align_categories(categories, val_ds, spec.train[0][0], spec.val)
        check_same_categories([(spec.train[0][0], categories), (spec.val, val_ds.categories)])
        loader = eval_loader(val_ds, spec.batch_size, spec.workers)
        validate = _validator(loader, device, spec.amp, channels_last)
    model = get_classification_model(spec.model, len(categories), spec.weights, spec.freeze_backbone).to(device)
    return TaskSetup(
        datasets=datasets, ratios=[r for _, r in spec.train], categories=categories, model=model,
        loss_fn=classification_loss, metric=Metric("accuracy"), validate=validate, channels_last=channels_last,
        task_state={"image_size": options.image_size, "grayscale": options.grayscale, "padding": options.padding},
    )  # fmt: skip


def _validator(loader, device: str, amp: bool, channels_last: bool):
    from trainer.evaluation.predict import predict_classification

    def validate(model) -> dict[str, float]:
        true, pred, _ = predict_classification(model, loader, device, amp, channels_last)
        correct = sum(int(t == p) for t, p in zip(true, pred, strict=False))
        return {"accuracy": correct / max(len(true), 1)}

    return validate


def build_classifier_from_checkpoint(ckpt: Checkpoint) -> torch.nn.Module:
    model = get_classification_model(ckpt.model_name, len(ckpt.categories), "none")
    load_model_state(model, ckpt.model)
    return model.eval()

"""The detection recipe: a torchvision detector on one or more COCO sources (``train_detector``).

``setup_detection`` builds what the one loop (``trainer/training/loop.py``) needs: the datasets with their
transforms, the model, the loss and a validator that scores bbox mAP with pycocotools on ``--val``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from shared.progress import Note, ProgressFn, silent
from trainer.data.datasets import CocoDetection, check_same_categories, dataset_name, describe_skips
from trainer.data.datasets import detection_collate as collate
from trainer.data.loaders import eval_loader, open_sources
from trainer.data.transforms import detection_transforms, parse_policy
from trainer.models.build import get_detection_model, is_mask_model
from trainer.training.checkpoint import Checkpoint, load_model_state
from trainer.training.distributed import DistInfo
from trainer.training.epoch import detection_loss
from trainer.training.loop import Metric, TaskSetup, run
from trainer.training.spec import DetectOptions, RunSpec


def train_detector(
    train: Sequence, out: str, *, progress: ProgressFn | None = None, note: Note = silent, **settings: Any
) -> dict[str, Any]:
    """Train a detector and write the run folder ``settings["out"]`` (checkpoint.pth, best.pth, args.json,
    metrics.jsonl). ``settings`` are the other :class:`~trainer.training.spec.RunSpec` fields plus
    :class:`~trainer.training.spec.DetectOptions` fields:

    :param train: sources as ``"path"`` / ``"path:ratio"`` strings or ``(path, ratio)`` pairs.
    :param val: a COCO set (ideally real) whose bbox mAP picks ``best.pth``.
    :param init_from: a run folder or checkpoint whose model weights start this run (stage two of pretrain on
        synthetic, fine-tune on real); optimizer and epoch start fresh.
    :param skip_bad: leave bad images/annotations out (listed through ``note``) instead of failing.
    :param max_steps_per_epoch: cap steps per epoch (smoke tests and benchmarks).
    :returns: ``{"run_dir", "best_epoch", "best_metric", "metric_name", "history"}``.
    """
    return run(RunSpec.build("detect", train=train, out=out, **settings), setup_detection, progress, note)


def setup_detection(spec: RunSpec, dist: DistInfo, device: str, note: Note) -> TaskSetup:
    options: DetectOptions = spec.options
    on_problem = "skip" if spec.skip_bad else "raise"
    masks = is_mask_model(spec.model)
    policy = parse_policy(spec.augment) if not isinstance(spec.augment, list) else spec.augment
    transforms = detection_transforms(policy)
    datasets = open_sources(
        spec.train, lambda p: CocoDetection(p, transforms, masks=masks, on_problem=on_problem), note
    )
    categories = datasets[0].categories
    validate = None
    if spec.val is not None:
        val_ds = CocoDetection(spec.val, detection_transforms([]), on_problem=on_problem)
        note(describe_skips(dataset_name(spec.val), val_ds.skipped))
        check_same_categories([(spec.train[0][0], categories), (spec.val, val_ds.categories)])
        loader = eval_loader(val_ds, spec.batch_size, spec.workers, collate)
        validate = _validator(val_ds, loader, device, categories, spec.amp)
    model = get_detection_model(
        spec.model, len(categories), spec.weights, options.trainable_backbone_layers, spec.freeze_backbone,
        options.min_size, options.max_size,
    ).to(device)  # fmt: skip
    return TaskSetup(
        datasets=datasets, ratios=[r for _, r in spec.train], categories=categories, model=model,
        loss_fn=detection_loss, metric=Metric("mAP"), validate=validate, collate=collate,
        task_state={"min_size": options.min_size, "max_size": options.max_size, "masks": masks},
    )  # fmt: skip


def _validator(val_ds, val_loader, device: str, categories: list[dict], amp: bool):
    from trainer.evaluation.metrics import coco_evaluate
    from trainer.evaluation.predict import predict_detection

    def validate(model) -> dict[str, float]:
        results = predict_detection(model, val_loader, device, categories, amp=amp)
        summary = coco_evaluate(val_ds.coco_ground_truth(), results)["summary"]
        return {k: (v if v is not None else 0.0) for k, v in summary.items() if k in ("mAP", "AP50", "AP75")}

    return validate


def build_detector_from_checkpoint(ckpt: Checkpoint) -> torch.nn.Module:
    """The model a detection checkpoint was trained with, weights loaded, in eval mode."""
    model = get_detection_model(
        ckpt.model_name, len(ckpt.categories), "none",
        min_size=int(ckpt.get("min_size", 800)), max_size=int(ckpt.get("max_size", 1333)),
    )  # fmt: skip
    load_model_state(model, ckpt.model)
    return model.eval()

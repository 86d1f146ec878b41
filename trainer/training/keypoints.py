"""The keypoint recipe: a Keypoint R-CNN on one or more COCO keypoint sources (``train_keypoints``).

``setup_keypoints`` builds what the one loop (``trainer/training/loop.py``) needs: the datasets with their
transforms (keypoints move with the pixels, no flips unless the data says which keypoint becomes which), the
model, the loss and a validator that scores keypoint OKS AP on ``--val`` (``trainer.evaluation.keypoints``).
Without ``--val`` the lowest training loss picks ``best.pth``, as for detection.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from shared.progress import Note, ProgressFn, silent
from trainer.data.datasets import check_same_categories, dataset_name, describe_skips
from trainer.data.datasets import detection_collate as collate
from trainer.data.keypoints import CocoKeypoints, check_same_keypoints
from trainer.data.loaders import eval_loader, open_sources
from trainer.data.transforms import keypoint_transforms, parse_policy
from trainer.models.build import get_keypoint_model
from trainer.training.checkpoint import Checkpoint, CheckpointError, load_model_state
from trainer.training.distributed import DistInfo
from trainer.training.epoch import detection_loss
from trainer.training.loop import Metric, TaskSetup, run
from trainer.training.spec import KeypointOptions, RunSpec


def train_keypoints(
    train: Sequence, out: str, *, progress: ProgressFn | None = None, note: Note = silent, **settings: Any
) -> dict[str, Any]:
    """Train a keypoint detector and write the run folder ``out`` (checkpoint.pth, best.pth, args.json,
    metrics.jsonl). ``settings`` are the other :class:`~trainer.training.spec.RunSpec` fields plus
    :class:`~trainer.training.spec.KeypointOptions` fields:

    :param train: COCO keypoint sources as ``"path"`` / ``"path:ratio"`` strings or ``(path, ratio)`` pairs.
    :param val: a COCO keypoint set whose OKS AP (``kp_AP``) picks ``best.pth``.
    :param oks_sigma: OKS falloff per keypoint for ``val`` (default ``trainer.evaluation.keypoints.BOARD_SIGMA``).
    :returns: ``{"run_dir", "best_epoch", "best_metric", "metric_name", "history"}``.
    """
    return run(RunSpec.build("keypoints", train=train, out=out, **settings), setup_keypoints, progress, note)


def resolve_sigma(sigma: float | None) -> float:
    """``--oks-sigma``, or the board default when it is not given."""
    if sigma is not None:
        return float(sigma)
    from trainer.evaluation.keypoints import BOARD_SIGMA

    return float(BOARD_SIGMA)


def setup_keypoints(spec: RunSpec, dist: DistInfo, device: str, note: Note) -> TaskSetup:
    options: KeypointOptions = spec.options
    on_problem = "skip" if spec.skip_bad else "raise"
    policy = parse_policy(spec.augment) if not isinstance(spec.augment, list) else spec.augment
    sigma = resolve_sigma(options.oks_sigma)

    def make(path: str) -> CocoKeypoints:
        ds = CocoKeypoints(path, on_problem=on_problem)
        ds.transforms = keypoint_transforms(policy, ds.flip_index)  # refuses flips without a flip map
        return ds

    datasets = open_sources(spec.train, make, note)
    categories = datasets[0].categories
    names = check_same_keypoints([(p, ds.keypoint_names) for (p, _), ds in zip(spec.train, datasets, strict=True)])
    validate = None
    if spec.val is not None:
        val_ds = CocoKeypoints(spec.val, keypoint_transforms([]), on_problem=on_problem)
        note(describe_skips(dataset_name(spec.val), val_ds.skipped))
        check_same_categories([(spec.train[0][0], categories), (spec.val, val_ds.categories)])
        check_same_keypoints([(spec.train[0][0], names), (spec.val, val_ds.keypoint_names)])
        loader = eval_loader(val_ds, spec.batch_size, spec.workers, collate)
        validate = _validator(val_ds, loader, device, categories, sigma, spec.amp)
    model = get_keypoint_model(
        spec.model, len(categories), len(names), spec.weights, options.trainable_backbone_layers, options.min_size,
        options.max_size, spec.freeze_backbone,
    ).to(device)  # fmt: skip
    task_state = {
        "min_size": options.min_size, "max_size": options.max_size, "num_keypoints": len(names),
        "keypoint_names": names, "skeleton": datasets[0].skeleton, "oks_sigma": sigma,
    }  # fmt: skip

    def check_resume(ckpt: Checkpoint, path: str) -> None:
        if list(ckpt.get("keypoint_names", [])) != names:
            raise CheckpointError(f"{path} was trained on other keypoints than this data names")

    return TaskSetup(
        datasets=datasets, ratios=[r for _, r in spec.train], categories=categories, model=model,
        loss_fn=detection_loss, metric=Metric("kp_AP"), validate=validate, collate=collate, task_state=task_state,
        check_resume=check_resume,
    )  # fmt: skip


def _validator(val_ds: CocoKeypoints, val_loader, device: str, categories: list[dict], sigma: float, amp: bool):
    from trainer.evaluation.keypoints import oks_ap
    from trainer.evaluation.predict import predict_keypoints

    def validate(model) -> dict[str, float]:
        results = predict_keypoints(model, val_loader, device, categories, amp=amp)
        scores = oks_ap(val_ds.coco_ground_truth(), results, [sigma] * val_ds.num_keypoints)
        return {f"kp_{k}": (float(scores[k]) if scores.get(k) is not None else 0.0) for k in ("AP", "AP50", "AP75")}

    return validate


def build_keypoint_model_from_checkpoint(ckpt: Checkpoint) -> torch.nn.Module:
    """The model a keypoint checkpoint was trained with, weights loaded, in eval mode."""
    model = get_keypoint_model(
        ckpt.model_name, len(ckpt.categories), int(ckpt["num_keypoints"]), "none",
        min_size=int(ckpt.get("min_size", 320)), max_size=int(ckpt.get("max_size", 512)),
    )  # fmt: skip
    load_model_state(model, ckpt.model)
    return model.eval()

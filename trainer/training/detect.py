"""Train a torchvision detector on one or more COCO sources: ``train_detector``.

Reads top to bottom like torchvision's ``references/detection/train.py``: sources and mixing, model, optimizer,
resume or init-from, then the epoch loop (``trainer.training.loop.run_epochs``). The CLI command only parses.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import torch

from trainer.data.datasets import CocoDetection, dataset_name, describe_skips, detection_collate
from trainer.data.transforms import detection_transforms, parse_policy
from trainer.models.build import get_detection_model, is_mask_model
from trainer.training.distributed import init_distributed, shutdown
from trainer.training.epoch import detection_loss, predict_detection
from trainer.training.loop import (
    LoopState,
    eval_loader,
    init_from_checkpoint,
    make_optimizer,
    mixing_sampler,
    normalize_sources,
    open_sources,
    prepare_run_dir,
    resume_from,
    run_epochs,
    train_loader,
    write_json,
)


def resolve_device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} asked for, but no CUDA device is available")
    return name


def train_detector(
    train: Sequence[str | tuple[str, float | None]],
    out: str,
    *,
    val: str | None = None,
    model: str = "fasterrcnn_mobilenet_v3_large_fpn",
    epochs: int = 10,
    batch_size: int = 4,
    lr: float = 0.01,
    weights: str = "none",
    trainable_backbone_layers: int | None = None,
    freeze_backbone: bool = False,
    min_size: int = 800,
    max_size: int = 1333,
    augment: str | list = "hflip",
    balanced: bool = False,
    seed: int = 0,
    device: str = "auto",
    workers: int = 2,
    resume: bool = False,
    init_from: str | None = None,
    amp: bool = False,
    accum_steps: int = 1,
    skip_bad: bool = False,
    optimizer: str = "sgd",
    weight_decay: float = 1e-4,
    warmup_iters: int = 100,
    epoch_size: int | None = None,
    max_steps_per_epoch: int | None = None,
    tensorboard: bool = False,
    progress: Callable[[dict], None] | None = None,
    note: Callable[[str], None] = lambda s: None,
) -> dict[str, Any]:
    """Train a detector and write the run folder ``out`` (checkpoint.pth, best.pth, args.json, metrics.jsonl).

    :param train: sources as ``"path"`` / ``"path:ratio"`` strings or ``(path, ratio)`` pairs.
    :param val: a COCO set (ideally real) whose bbox mAP picks ``best.pth``.
    :param init_from: a run folder or checkpoint whose model weights start this run (stage two of pretrain on
        synthetic, fine-tune on real); optimizer and epoch start fresh.
    :param skip_bad: leave bad images/annotations out (listed through ``note``) instead of failing.
    :param max_steps_per_epoch: cap steps per epoch (smoke tests and benchmarks).
    :returns: ``{"run_dir", "best_epoch", "best_metric", "metric_name", "history"}``.
    """
    args = {k: v for k, v in locals().items() if k not in ("progress", "note")}
    args["train"] = [list(s) for s in normalize_sources(train)]
    device = resolve_device(device)
    dist, device = init_distributed(device)
    torch.manual_seed(seed + dist.rank)
    on_problem = "skip" if skip_bad else "raise"
    masks = is_mask_model(model)
    policy = parse_policy(augment) if not isinstance(augment, list) else augment
    sources = normalize_sources(train)
    resume_ckpt = prepare_run_dir(out, resume, dist)

    datasets = open_sources(
        sources, lambda p: CocoDetection(p, detection_transforms(policy), masks=masks, on_problem=on_problem), note
    )
    categories = datasets[0].categories
    sampler = mixing_sampler(datasets, [r for _, r in sources], batch_size, balanced, seed, dist, epoch_size)
    loader = train_loader(datasets, sampler, batch_size, workers, detection_collate, seed, device)
    validate = None
    if val is not None:
        val_ds = CocoDetection(val, detection_transforms([]), on_problem=on_problem)
        note(describe_skips(dataset_name(val), val_ds.skipped))
        from trainer.data.datasets import check_same_categories

        check_same_categories([(sources[0][0], categories), (val, val_ds.categories)])
        val_loader = eval_loader(val_ds, batch_size, workers, detection_collate)
        validate = _validator(val_ds, val_loader, device, categories, amp)

    net = get_detection_model(
        model, len(categories), weights, trainable_backbone_layers, freeze_backbone, min_size, max_size
    ).to(device)
    if init_from:
        init_from_checkpoint(net, init_from, "detect", categories, note)
    model_without_ddp = net
    if dist.enabled:
        net = torch.nn.parallel.DistributedDataParallel(net, device_ids=[dist.local_rank] if device != "cpu" else None)
    opt = make_optimizer(model_without_ddp, optimizer, lr, weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, epochs))
    scaler = torch.amp.GradScaler("cuda") if amp and device.startswith("cuda") else None
    state = LoopState()
    if resume_ckpt:
        state = resume_from(resume_ckpt, model_without_ddp, opt, scheduler, scaler, "detect", model, categories, note)
    if dist.is_main:
        write_json(os.path.join(out, "args.json"), args)
    try:
        return run_epochs(
            task="detect",
            model_name=model,
            categories=categories,
            model=net,
            model_without_ddp=model_without_ddp,
            optimizer=opt,
            scheduler=scheduler,
            scaler=scaler,
            loader=loader,
            sampler=sampler,
            device=device,
            epochs=epochs,
            loss_fn=detection_loss,
            validate=validate,
            metric_name="mAP",
            out=out,
            args=args,
            dist=dist,
            state=state,
            amp=amp,
            accum_steps=accum_steps,
            channels_last=False,
            warmup_iters=warmup_iters,
            progress=progress,
            note=note,
            tensorboard=tensorboard,
            max_steps_per_epoch=max_steps_per_epoch,
            extra={"min_size": min_size, "max_size": max_size, "masks": masks},
        )
    finally:
        shutdown(dist)


def _validator(val_ds, val_loader, device: str, categories: list[dict], amp: bool):
    from trainer.evaluation.metrics import coco_evaluate

    def validate(model) -> dict[str, float]:
        results = predict_detection(model, val_loader, device, categories, amp=amp)
        summary = coco_evaluate(val_ds.coco_ground_truth(), results)["summary"]
        return {k: (v if v is not None else 0.0) for k, v in summary.items() if k in ("mAP", "AP50", "AP75")}

    return validate


def build_detector_from_checkpoint(ckpt: dict) -> torch.nn.Module:
    """The model a detection checkpoint was trained with, weights loaded, in eval mode."""
    from trainer.training.checkpoint import load_model_state

    model = get_detection_model(
        ckpt["model_name"],
        len(ckpt["categories"]),
        "none",
        min_size=int(ckpt.get("min_size", 800)),
        max_size=int(ckpt.get("max_size", 1333)),
    )
    load_model_state(model, ckpt["model"])
    return model.eval()

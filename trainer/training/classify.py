"""Train a torchvision classifier on box crops of COCO sources or on ImageFolder trees: ``train_classifier``.

Same run folder, mixing, balancing, resume and init-from as ``trainer.training.detect.train_detector``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import torch

from trainer.data.datasets import check_same_categories, classification_dataset, dataset_name, describe_skips
from trainer.data.transforms import classification_transforms, parse_policy
from trainer.models.build import get_classification_model
from trainer.training.detect import resolve_device
from trainer.training.distributed import init_distributed, shutdown
from trainer.training.epoch import classification_loss, predict_classification
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


def train_classifier(
    train: Sequence[str | tuple[str, float | None]],
    out: str,
    *,
    val: str | None = None,
    model: str = "resnet18",
    epochs: int = 10,
    batch_size: int = 32,
    lr: float = 0.01,
    image_size: int = 224,
    weights: str = "none",
    freeze_backbone: bool = False,
    balanced: bool = False,
    grayscale: bool = False,
    augment: str | list = "basic",
    seed: int = 0,
    device: str = "auto",
    workers: int = 2,
    resume: bool = False,
    init_from: str | None = None,
    amp: bool = False,
    accum_steps: int = 1,
    skip_bad: bool = False,
    padding: float = 0.1,
    optimizer: str = "sgd",
    weight_decay: float = 1e-4,
    warmup_iters: int = 0,
    epoch_size: int | None = None,
    max_steps_per_epoch: int | None = None,
    tensorboard: bool = False,
    progress: Callable[[dict], None] | None = None,
    note: Callable[[str], None] = lambda s: None,
) -> dict[str, Any]:
    """Train a classifier and write the run folder ``out``; ``best.pth`` is the best validation accuracy.

    :param train: ``"path"`` / ``"path:ratio"`` strings or ``(path, ratio)`` pairs; COCO folders give one crop per
        box (grown by ``padding``), ImageFolder roots one sample per file.
    :param freeze_backbone: train only the new head (transfer learning as in seed 000's VGG16).
    :param grayscale: feed 3-channel grey images (digits, or to remove a colour gap).
    :returns: ``{"run_dir", "best_epoch", "best_metric", "metric_name", "history"}``.
    """
    args = {k: v for k, v in locals().items() if k not in ("progress", "note")}
    args["train"] = [list(s) for s in normalize_sources(train)]
    device = resolve_device(device)
    dist, device = init_distributed(device)
    torch.manual_seed(seed + dist.rank)
    on_problem = "skip" if skip_bad else "raise"
    policy = parse_policy(augment) if not isinstance(augment, list) else augment
    sources = normalize_sources(train)
    resume_ckpt = prepare_run_dir(out, resume, dist)
    channels_last = device.startswith("cuda")

    train_tf = classification_transforms(image_size, policy, grayscale)
    datasets = open_sources(
        sources, lambda p: classification_dataset(p, train_tf, on_problem=on_problem, padding=padding), note
    )
    categories = datasets[0].categories
    sampler = mixing_sampler(datasets, [r for _, r in sources], batch_size, balanced, seed, dist, epoch_size)
    loader = train_loader(datasets, sampler, batch_size, workers, None, seed, device)
    validate = None
    if val is not None:
        val_tf = classification_transforms(image_size, [], grayscale)
        val_ds = classification_dataset(val, val_tf, on_problem=on_problem, padding=padding)
        note(describe_skips(dataset_name(val), val_ds.skipped))
        from trainer.data.datasets import align_categories

        align_categories(categories, val_ds, sources[0][0], val)
        check_same_categories([(sources[0][0], categories), (val, val_ds.categories)])
        validate = _validator(eval_loader(val_ds, batch_size, workers), device, amp, channels_last)

    net = get_classification_model(model, len(categories), weights, freeze_backbone).to(device)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    if init_from:
        init_from_checkpoint(net, init_from, "classify", categories, note)
    model_without_ddp = net
    if dist.enabled:
        net = torch.nn.parallel.DistributedDataParallel(net, device_ids=[dist.local_rank] if device != "cpu" else None)
    opt = make_optimizer(model_without_ddp, optimizer, lr, weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, epochs))
    scaler = torch.amp.GradScaler("cuda") if amp and device.startswith("cuda") else None
    state = LoopState()
    if resume_ckpt:
        state = resume_from(resume_ckpt, model_without_ddp, opt, scheduler, scaler, "classify", model, categories, note)
    if dist.is_main:
        write_json(os.path.join(out, "args.json"), args)
    try:
        return run_epochs(
            task="classify",
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
            loss_fn=classification_loss,
            validate=validate,
            metric_name="accuracy",
            out=out,
            args=args,
            dist=dist,
            state=state,
            amp=amp,
            accum_steps=accum_steps,
            channels_last=channels_last,
            warmup_iters=warmup_iters,
            progress=progress,
            note=note,
            tensorboard=tensorboard,
            max_steps_per_epoch=max_steps_per_epoch,
            extra={"image_size": image_size, "grayscale": grayscale, "padding": padding},
        )
    finally:
        shutdown(dist)


def _validator(loader, device: str, amp: bool, channels_last: bool):
    def validate(model) -> dict[str, float]:
        true, pred, _ = predict_classification(model, loader, device, amp, channels_last)
        correct = sum(int(t == p) for t, p in zip(true, pred, strict=False))
        return {"accuracy": correct / max(len(true), 1)}

    return validate


def build_classifier_from_checkpoint(ckpt: dict) -> torch.nn.Module:
    from trainer.training.checkpoint import load_model_state

    model = get_classification_model(ckpt["model_name"], len(ckpt["categories"]), "none")
    load_model_state(model, ckpt["model"])
    return model.eval()

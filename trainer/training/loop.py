"""The parts of a training run that detection and classification share: sources and their mixing, the run folder,
resume and init-from, and the epoch loop that validates and saves checkpoints.

``trainer.training.detect.train_detector`` and ``trainer.training.classify.train_classifier`` read top to bottom
and call these.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Callable, Sequence
from typing import Any

import torch

from trainer import __version__
from trainer.data.datasets import (
    ImageFolderDataset,
    align_categories,
    class_balanced_weights,
    dataset_name,
    describe_skips,
    sample_labels,
)
from trainer.data.mixing import MixingSampler, parse_source
from trainer.training.checkpoint import (
    CheckpointError,
    check_compatible,
    find_checkpoint,
    load_checkpoint,
    load_model_state,
    save_checkpoint,
)
from trainer.training.distributed import DistInfo, barrier, broadcast_object
from trainer.training.epoch import MetricsLog, TensorBoardLog, train_one_epoch

Note = Callable[[str], None]


class RunError(RuntimeError):
    """A run that cannot start as asked (existing output, nothing to resume, bad source list)."""


def normalize_sources(train: Sequence[str | tuple[str, float | None]]) -> list[tuple[str, float | None]]:
    """``["synth/", "real/:0.25"]`` or ``[("synth/", None), ("real/", 0.25)]`` -> list of (path, ratio)."""
    if not train:
        raise RunError("at least one --train source is needed")
    out = []
    for item in train:
        path, ratio = parse_source(item) if isinstance(item, str) else (item[0], item[1])
        out.append((str(path), None if ratio is None else float(ratio)))
    return out


def open_sources(sources: list[tuple[str, float | None]], make: Callable[[str], Any], note: Note):
    """Open each source, print what was skipped, and check they share one class list (error if not)."""
    datasets = []
    for path, _ in sources:
        ds = make(path)
        note(describe_skips(dataset_name(path), ds.skipped))
        if len(ds) == 0:
            raise RunError(f"{path}: no usable samples")
        datasets.append(ds)
    # the class list comes from the first COCO source (its ids mean something); ImageFolders follow it by name
    ref = next((i for i, ds in enumerate(datasets) if not isinstance(ds, ImageFolderDataset)), 0)
    for i, ds in enumerate(datasets):
        if i != ref:
            align_categories(datasets[ref].categories, ds, sources[ref][0], sources[i][0])
    if ref != 0:
        align_categories(datasets[ref].categories, datasets[0], sources[ref][0], sources[0][0])
    return datasets


def mixing_sampler(
    datasets: list,
    ratios: list[float | None],
    batch_size: int,
    balanced: bool,
    seed: int,
    dist: DistInfo,
    epoch_size: int | None = None,
) -> MixingSampler:
    """Draws per epoch are rounded up to whole global batches: every batch is full and mixed as asked (a last
    batch of one sample would also break BatchNorm)."""
    weights = [class_balanced_weights(sample_labels(ds)) for ds in datasets] if balanced else None
    block = batch_size * dist.world_size
    draws = epoch_size or sum(len(ds) for ds in datasets)
    draws = math.ceil(draws / block) * block
    return MixingSampler(
        [len(ds) for ds in datasets],
        ratios,
        num_samples=draws,
        block_size=block,
        weights=weights,
        seed=seed,
        rank=dist.rank,
        world_size=dist.world_size,
    )


def train_loader(
    datasets: list, sampler: MixingSampler, batch_size: int, workers: int, collate, seed: int, device: str
) -> torch.utils.data.DataLoader:
    generator = torch.Generator()
    generator.manual_seed(seed)
    return torch.utils.data.DataLoader(
        torch.utils.data.ConcatDataset(datasets),
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        collate_fn=collate,
        pin_memory=str(device).startswith("cuda"),
        drop_last=False,
        persistent_workers=workers > 0,
        generator=generator,
    )


def eval_loader(dataset, batch_size: int, workers: int, collate=None) -> torch.utils.data.DataLoader:
    return torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=False, num_workers=workers, collate_fn=collate
    )


def make_optimizer(
    model: torch.nn.Module, name: str, lr: float, weight_decay: float, momentum: float = 0.9
) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise RunError("no trainable parameters (is everything frozen?)")
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    raise RunError(f"unknown optimizer {name!r} (sgd, adamw)")


def prepare_run_dir(out: str, resume: bool, dist: DistInfo) -> str | None:
    """Refuse to overwrite a run; with ``resume`` return its checkpoint path."""
    ckpt = os.path.join(out, "checkpoint.pth")
    if resume:
        if not os.path.isfile(ckpt):
            raise RunError(f"--resume: {out} has no checkpoint.pth to resume from")
        return ckpt
    if os.path.exists(ckpt):
        raise RunError(f"{out} already holds a run (checkpoint.pth); use --resume to continue it or another --out")
    if dist.is_main:
        os.makedirs(out, exist_ok=True)
    return None


def write_json(path: str, value: Any) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=2, sort_keys=True, default=str)
    os.replace(tmp, path)


def init_from_checkpoint(model: torch.nn.Module, source: str, task: str, categories: list[dict], note: Note) -> None:
    """Stage two of "pretrain on synthetic, fine-tune on real": take model weights only (no optimizer, epoch).

    Same classes: every tensor must fit. Other classes: the class-specific head starts fresh and we say so.
    """
    from trainer.models.build import load_weights_file

    path = find_checkpoint(source, prefer_best=True)
    ckpt = load_checkpoint(path)
    check_compatible(ckpt, task, source=path)
    same = [(c["id"], c["name"]) for c in ckpt.get("categories", [])] == [(c["id"], c["name"]) for c in categories]
    if same:
        load_model_state(model, ckpt["model"], source=path)
        note(f"initialised all weights from {path} (epoch {ckpt.get('epoch')})")
        return
    report = load_weights_file(model, path)
    note(f"initialised from {path}: classes differ, so {len(report['missing'])} tensors of the head start fresh")


@dataclasses.dataclass
class LoopState:
    start_epoch: int = 0
    best_metric: float = -math.inf
    best_epoch: int = -1
    global_step: int = 0


def resume_from(
    path: str, model, optimizer, scheduler, scaler, task: str, model_name: str, categories: list[dict], note: Note
) -> LoopState:
    ckpt = load_checkpoint(path)
    check_compatible(ckpt, task, model_name, categories, source=path)
    load_model_state(model, ckpt["model"], source=path)
    try:
        optimizer.load_state_dict(ckpt["optimizer"])
        if ckpt.get("lr_scheduler") is not None:
            scheduler.load_state_dict(ckpt["lr_scheduler"])
        if scaler is not None and ckpt.get("scaler"):
            scaler.load_state_dict(ckpt["scaler"])
    except (ValueError, KeyError, RuntimeError) as exc:
        msg = f"{path}: optimizer state does not fit this run ({exc}); were other layers frozen?"
        raise CheckpointError(msg) from exc
    state = LoopState(
        int(ckpt["epoch"]) + 1,
        float(ckpt.get("best_metric", -math.inf)),
        int(ckpt.get("best_epoch", -1)),
        int(ckpt.get("global_step", 0)),
    )
    note(f"resuming {path} after epoch {ckpt['epoch']}")
    return state


def run_epochs(
    *,
    task: str,
    model_name: str,
    categories: list[dict],
    model,
    model_without_ddp,
    optimizer,
    scheduler,
    scaler,
    loader,
    sampler,
    device: str,
    epochs: int,
    loss_fn,
    validate,
    metric_name: str,
    out: str,
    args: dict,
    dist: DistInfo,
    state: LoopState,
    amp: bool,
    accum_steps: int,
    channels_last: bool,
    warmup_iters: int,
    progress,
    note: Note,
    tensorboard: bool = False,
    max_steps_per_epoch: int | None = None,
    extra: dict | None = None,
) -> dict:
    """The epoch loop: train, validate on rank 0, save ``checkpoint.pth`` every epoch and ``best.pth`` on a new
    best validation score (without a validation set: the lowest training loss)."""
    log = MetricsLog(os.path.join(out, "metrics.jsonl") if dist.is_main else None)
    tb = TensorBoardLog(os.path.join(out, "tb")) if tensorboard and dist.is_main else None
    history = []
    for epoch in range(state.start_epoch, epochs):
        sampler.set_epoch(epoch)
        train_stats = train_one_epoch(
            model,
            optimizer,
            loader,
            device,
            epoch,
            loss_fn,
            scaler=scaler,
            amp=amp,
            accum_steps=accum_steps,
            warmup_iters=warmup_iters if epoch == 0 else 0,
            channels_last=channels_last,
            progress=progress if dist.is_main else None,
            metrics_log=log,
            global_step=state.global_step,
            max_steps=max_steps_per_epoch,
        )
        state.global_step += int(train_stats["steps"])
        scheduler.step()
        val_stats = validate(model_without_ddp) if (validate is not None and dist.is_main) else {}
        score = val_stats.get(metric_name) if val_stats else -train_stats["loss"]
        score = broadcast_object(dist, score)
        improved = score is not None and score > state.best_metric
        if improved:
            state.best_metric, state.best_epoch = float(score), epoch
        record = {
            "epoch": epoch,
            "train": train_stats,
            "val": val_stats,
            "best_epoch": state.best_epoch,
            "lr": optimizer.param_groups[0]["lr"],
        }
        history.append(record)
        log.write("epoch", **record)
        if tb is not None:
            tb.scalars("train", train_stats, epoch)
            tb.scalars("val", val_stats, epoch)
        if dist.is_main:
            ckpt = {
                "task": task,
                "model_name": model_name,
                "categories": categories,
                "model": model_without_ddp.state_dict(),
                "optimizer": optimizer.state_dict(),
                "lr_scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict() if scaler else None,
                "epoch": epoch,
                "args": args,
                "blendset_version": __version__,
                "best_metric": state.best_metric,
                "best_epoch": state.best_epoch,
                "global_step": state.global_step,
                "metric_name": metric_name,
                **(extra or {}),
            }
            save_checkpoint(os.path.join(out, "checkpoint.pth"), ckpt)
            if improved:
                save_checkpoint(os.path.join(out, "best.pth"), ckpt)
            val_text = f", val {metric_name}={val_stats[metric_name]:.4f}" if metric_name in val_stats else ""
            note(
                f"epoch {epoch}: loss={train_stats['loss']:.4f}{val_text}, {train_stats['img_s']:.1f} img/s, "
                f"data wait {100 * train_stats['data_wait']:.0f}%"
            )
        barrier(dist)
    if tb is not None:
        tb.close()
    return {
        "run_dir": out,
        "epochs": epochs,
        "best_epoch": state.best_epoch,
        "best_metric": state.best_metric,
        "metric_name": metric_name,
        "history": history,
    }

"""The one training loop of every task: ``run(spec, setup)``.

``run`` reads top to bottom like torchvision's ``references/detection/train.py``: devices and process group, run
folder, the task's data and model (from its recipe: ``trainer/training/detect.py``, ``classify.py``,
``regress.py``), sampler and loader, optimizer, schedule, resume or init-from, then the epoch loop. Each epoch
trains (``train_one_epoch``), validates on rank 0, logs to ``RUN/metrics.jsonl`` and saves
``RUN/checkpoint.pth``, plus ``RUN/best.pth`` when the run's metric improves (``trainer/training/checkpoint.py``
holds the layout).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from shared.atomic import write_json
from shared.progress import Note, ProgressFn, Step, silent
from trainer import __version__
from trainer.data.loaders import mixing_sampler, train_loader
from trainer.training.checkpoint import (
    Checkpoint,
    CheckpointError,
    check_compatible,
    find_checkpoint,
    load_checkpoint,
    load_model_state,
    save_checkpoint,
)
from trainer.training.distributed import DistInfo, barrier, broadcast_object, init_distributed, shutdown
from trainer.training.epoch import LossFn, MetricsLog, TensorBoardLog, train_one_epoch
from trainer.training.spec import RunError, RunSpec


@dataclass
class Metric:
    """The validation number that picks ``best.pth``; ``mode`` says whether higher (``max``) or lower is better."""

    name: str
    mode: str = "max"

    def better(self, value: float | None, best: float) -> bool:
        if value is None or not math.isfinite(value):
            return False
        return value > best if self.mode == "max" else value < best

    @property
    def worst(self) -> float:
        return -math.inf if self.mode == "max" else math.inf


@dataclass
class LoopState:
    start_epoch: int = 0
    best_metric: float = -math.inf
    best_epoch: int = -1
    global_step: int = 0


@dataclass
class TaskSetup:
    """What a task's recipe gives the loop: the training data, the model and how to score it.

    ``validate(model)`` returns a dict holding ``metric.name`` (rank 0 calls it after every epoch; None means no
    validation set; the lowest training loss then picks ``best.pth``). ``task_state`` is stored in every
    checkpoint. The hooks let a task add to each epoch's record and checkpoint, to the summary, and check a
    resumed run's saved settings.
    """

    datasets: list
    ratios: list[float | None]
    categories: list[dict]
    model: torch.nn.Module
    loss_fn: LossFn
    metric: Metric
    validate: Callable[[torch.nn.Module], dict[str, float]] | None = None
    collate: Callable | None = None
    channels_last: bool = False
    task_state: dict[str, Any] = field(default_factory=dict)
    epoch_record: Callable[[dict, dict, DistInfo], dict] | None = None
    summary: Callable[[dict, DistInfo], dict] | None = None
    epoch_state: Callable[[dict, LoopState], dict] | None = None
    check_resume: Callable[[Checkpoint, str], None] | None = None
    write_summary: bool = False


Recipe = Callable[[RunSpec, DistInfo, str, Note], TaskSetup]
"""A task's recipe: build its :class:`TaskSetup` for this spec, process and device."""


def resolve_device(name: str) -> str:
    """``auto`` -> ``cuda`` when there is a GPU, else ``cpu``; a CUDA device asked for on a machine without one
    is a RunError."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RunError(f"device {name!r} asked for, but no CUDA device is available")
    return name


def make_optimizer(model: torch.nn.Module, name: str, lr: float, weight_decay: float, momentum: float = 0.9):
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


def init_from_checkpoint(model: torch.nn.Module, source: str, task: str, categories: list[dict], note: Note) -> None:
    """Stage two of "pretrain on synthetic, fine-tune on real": take model weights only (no optimizer, epoch).

    Same classes: every tensor must fit. Other classes: the class-specific head starts fresh and we say so.
    """
    from trainer.models.build import load_weights_file

    path = find_checkpoint(source, prefer_best=True)
    ckpt = load_checkpoint(path)
    check_compatible(ckpt, task, source=path)
    same = [(c["id"], c["name"]) for c in ckpt.categories] == [(c["id"], c["name"]) for c in categories]
    if same:
        load_model_state(model, ckpt.model, source=path)
        note(f"initialised all weights from {path} (epoch {ckpt.epoch})")
        return
    report = load_weights_file(model, path)
    note(f"initialised from {path}: classes differ, so {len(report['missing'])} tensors of the head start fresh")


def resume_from(path: str, spec: RunSpec, setup: TaskSetup, optimizer, scheduler, scaler, note: Note) -> LoopState:
    ckpt = load_checkpoint(path)
    check_compatible(ckpt, spec.task, spec.model, setup.categories, source=path)
    if setup.check_resume is not None:
        setup.check_resume(ckpt, path)
    load_model_state(setup.model, ckpt.model, source=path)
    try:
        optimizer.load_state_dict(ckpt.optimizer)
        if ckpt.lr_scheduler is not None:
            scheduler.load_state_dict(ckpt.lr_scheduler)
        if scaler is not None and ckpt.scaler:
            scaler.load_state_dict(ckpt.scaler)
    except (ValueError, KeyError, RuntimeError, TypeError) as exc:
        msg = f"{path}: optimizer state does not fit this run ({exc}); were other layers frozen?"
        raise CheckpointError(msg) from exc
    note(f"resuming {path} after epoch {ckpt.epoch}")
    return LoopState(ckpt.epoch + 1, float(ckpt.best_metric), ckpt.best_epoch, ckpt.global_step)


class _Limited:
    """The first ``steps`` batches of a loader (``--max-steps-per-epoch``), with a length that says so."""

    def __init__(self, loader: Iterable, steps: int):
        self.loader, self.steps = loader, min(steps, len(loader))

    def __len__(self) -> int:
        return self.steps

    def __iter__(self):
        for i, batch in enumerate(self.loader):
            if i >= self.steps:
                break
            yield batch


def run(spec: RunSpec, recipe: Recipe, progress: ProgressFn | None = None, note: Note = silent) -> dict[str, Any]:
    """Train ``spec`` with the task's ``recipe`` and write the run folder; returns the summary
    (``run_dir``, ``best_epoch``, ``best_metric``, ``metric_name``, ``history`` and the task's own keys).

    Under torchrun (``RANK``/``WORLD_SIZE`` set) every process runs this; each takes ``batch_size`` samples per
    step from its share of one global sample sequence, rank 0 alone validates, logs and writes, and every rank
    returns the same summary. A run resumes on any number of processes.
    """
    dist, device = init_distributed(resolve_device(spec.device))
    try:
        if not dist.is_main:
            note, progress = silent, None
        torch.manual_seed(spec.seed + dist.rank)
        np.random.seed(spec.seed)
        resume_ckpt = prepare_run_dir(spec.out, spec.resume, dist)
        setup = recipe(spec, dist, device, note)
        return _train(spec, setup, dist, device, resume_ckpt, progress, note)
    finally:
        shutdown(dist)


def _train(spec: RunSpec, setup: TaskSetup, dist: DistInfo, device: str, resume_ckpt: str | None,
           progress: ProgressFn | None, note: Note) -> dict[str, Any]:  # fmt: skip
    sampler = mixing_sampler(
        setup.datasets, setup.ratios, spec.batch_size, spec.balanced, spec.seed, dist, spec.epoch_size
    )
    loader = train_loader(setup.datasets, sampler, spec.batch_size, spec.workers, setup.collate, spec.seed, device)
    if spec.max_steps_per_epoch is not None:
        loader = _Limited(loader, spec.max_steps_per_epoch)
    model = setup.model
    if setup.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if spec.init_from and not resume_ckpt:
        init_from_checkpoint(model, spec.init_from, spec.task, setup.categories, note)
    net = model
    if dist.enabled:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[dist.local_rank] if device != "cpu" else None
        )
    optimizer = make_optimizer(model, spec.optimizer, spec.lr, spec.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, spec.epochs))
    scaler = torch.amp.GradScaler("cuda") if spec.amp and device.startswith("cuda") else None
    state = LoopState(best_metric=setup.metric.worst)
    if resume_ckpt:
        state = resume_from(resume_ckpt, spec, setup, optimizer, scheduler, scaler, note)
    args = {**spec.to_args(), "world_size": dist.world_size}
    if dist.is_main:
        write_json(os.path.join(spec.out, "args.json"), args, sort_keys=True, default=str)

    log = MetricsLog(os.path.join(spec.out, "metrics.jsonl") if dist.is_main else None)
    tb = TensorBoardLog(os.path.join(spec.out, "tb")) if spec.tensorboard and dist.is_main else None
    metric = setup.metric
    history, images_trained, t0 = [], 0, time.perf_counter()
    for epoch in range(state.start_epoch, spec.epochs):
        sampler.set_epoch(epoch)

        def report(stats: dict, epoch_start_step: int = state.global_step) -> None:
            stats["global_step"] = epoch_start_step + stats["step"]
            log.write("step", **stats)
            if progress is not None:
                progress(Step(f"epoch {stats['epoch']}", stats["step"], stats["steps"], stats))

        train_stats = train_one_epoch(
            net, optimizer, loader, device, epoch, setup.loss_fn, scaler=scaler, amp=spec.amp,
            accum_steps=spec.accum_steps, warmup_iters=spec.warmup_iters if epoch == 0 else 0,
            channels_last=setup.channels_last, report=report,
        )  # fmt: skip
        state.global_step += int(train_stats["steps"])
        images_trained += int(train_stats["images"]) * dist.world_size
        scheduler.step()
        val_stats = setup.validate(model) if (setup.validate is not None and dist.is_main) else {}
        # without a validation set, the lowest training loss picks best.pth
        score = val_stats.get(metric.name) if setup.validate is not None else -train_stats["loss"]
        score = broadcast_object(dist, score)
        improved = metric.better(score, state.best_metric)
        if improved:
            state.best_metric, state.best_epoch = float(score), epoch
        record = {
            "epoch": epoch, "train": train_stats, "val": val_stats, "best_epoch": state.best_epoch,
            "lr": optimizer.param_groups[0]["lr"],
            **(setup.epoch_record(train_stats, val_stats, dist) if setup.epoch_record else {}),
        }  # fmt: skip
        history.append(record)
        log.write("epoch", **record)
        if tb is not None:
            tb.scalars("train", train_stats, epoch)
            tb.scalars("val", val_stats, epoch)
        if dist.is_main:
            ckpt = Checkpoint(
                task=spec.task, model_name=spec.model, categories=setup.categories, model=model.state_dict(),
                optimizer=optimizer.state_dict(), lr_scheduler=scheduler.state_dict(),
                scaler=scaler.state_dict() if scaler else None, epoch=epoch, global_step=state.global_step,
                args=args, blendset_version=__version__, metric_name=metric.name, metric_mode=metric.mode,
                best_metric=state.best_metric, best_epoch=state.best_epoch,
                task_state={**setup.task_state, **(setup.epoch_state(val_stats, state) if setup.epoch_state else {})},
            )  # fmt: skip
            save_checkpoint(os.path.join(spec.out, "checkpoint.pth"), ckpt)
            if improved:
                save_checkpoint(os.path.join(spec.out, "best.pth"), ckpt)
            val_text = f", val {metric.name}={val_stats[metric.name]:.4f}" if metric.name in val_stats else ""
            note(
                f"epoch {epoch}: loss={train_stats['loss']:.4f}{val_text}, {train_stats['img_s']:.1f} img/s, "
                f"data wait {100 * train_stats['data_wait']:.0f}%"
            )
        barrier(dist)
    if tb is not None:
        tb.close()
    seconds = time.perf_counter() - t0
    summary = {
        "run_dir": spec.out, "epochs": spec.epochs, "best_epoch": state.best_epoch, "best_metric": state.best_metric,
        "metric_name": metric.name, "history": history,
    }  # fmt: skip
    if setup.summary is not None:
        summary.update(setup.summary({**summary, "seconds": seconds, "images_trained": images_trained}, dist))
    if setup.write_summary and dist.is_main:
        write_json(os.path.join(spec.out, "summary.json"), summary, sort_keys=True, default=str, allow_nan=True)
    return summary

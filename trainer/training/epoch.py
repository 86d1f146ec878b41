"""One training epoch, with everything passed in (torchvision references style): ``train_one_epoch``.

Each step is reported to one ``report`` callback as a stats dict (losses, lr, img/s, data-wait share, ETA); the
run loop (``trainer/training/loop.py``) turns that into progress bars and ``metrics.jsonl`` lines. A loss that
is not finite stops the run with ``NonFiniteLossError`` carrying the loss dict.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.nn.functional as F

from shared.errors import BlendsetError
from trainer.training.distributed import mean_over_ranks

LossFn = Callable[[torch.nn.Module, Any, Any], dict[str, torch.Tensor]]


class NonFiniteLossError(BlendsetError, FloatingPointError):
    """The loss became NaN or infinite; ``losses`` holds each term at that step."""

    def __init__(self, epoch: int, step: int, losses: dict[str, float]):
        self.losses = losses
        terms = ", ".join(f"{k}={v:.4g}" for k, v in losses.items())
        super().__init__(
            f"loss is not finite at epoch {epoch} step {step}: {terms}. Stopping; try a lower --lr, "
            "fewer --accum-steps, or check the data for broken boxes"
        )


class MetricsLog:
    """Appends JSON lines to ``RUN/metrics.jsonl``: ``{"kind": "step"|"epoch"|..., ...}``; no-op when path is None
    (non-zero DDP ranks). Appending is the point (a resumed run continues the file), so it is not an atomic
    replace: a line is written whole with one ``write`` call."""

    def __init__(self, path: str | None):
        self.path = path

    def write(self, kind: str, **values: Any) -> None:
        if self.path is None:
            return
        record = {"kind": kind, "time": round(time.time(), 3), **values}
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record, default=float) + "\n")


class TensorBoardLog:
    """Optional TensorBoard scalars in ``RUN/tb``; asked for explicitly, so a missing package is an error."""

    def __init__(self, folder: str):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:
            from trainer.training.spec import RunError

            raise RunError("--tensorboard needs the 'tensorboard' package (pip install tensorboard)") from exc
        self.writer = SummaryWriter(folder)

    def scalars(self, prefix: str, values: dict[str, float], step: int) -> None:
        for k, v in values.items():
            if isinstance(v, (int, float)) and math.isfinite(v):
                self.writer.add_scalar(f"{prefix}/{k}", v, step)

    def close(self) -> None:
        self.writer.close()


def detection_loss(model: torch.nn.Module, images, targets) -> dict[str, torch.Tensor]:
    return model(list(images), list(targets))


def classification_loss(model: torch.nn.Module, images, targets) -> dict[str, torch.Tensor]:
    return {"loss_ce": F.cross_entropy(model(images), targets)}


def to_device(images, targets, device: str, channels_last: bool = False):
    """Move a batch; detection batches are tuples of tensors and dicts, classification batches tensors."""
    if isinstance(images, torch.Tensor):
        images = images.to(device, non_blocking=True)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return images, targets.to(device, non_blocking=True)
    images = [img.to(device, non_blocking=True) for img in images]
    targets = [
        {k: (v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v) for k, v in t.items()}
        for t in targets
    ]
    return images, targets


def batch_size_of(images) -> int:
    return images.shape[0] if isinstance(images, torch.Tensor) else len(images)


def autocast(device: str, enabled: bool):
    device_type = "cuda" if str(device).startswith("cuda") else "cpu"
    dtype = torch.float16 if device_type == "cuda" else torch.bfloat16
    return torch.autocast(device_type=device_type, dtype=dtype, enabled=enabled)


def train_one_epoch(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    data_loader: Iterable,
    device: str,
    epoch: int,
    loss_fn: LossFn,
    *,
    scaler: torch.amp.GradScaler | None = None,
    amp: bool = False,
    accum_steps: int = 1,
    warmup_iters: int = 0,
    channels_last: bool = False,
    report: Callable[[dict], None] | None = None,
) -> dict[str, float]:
    """Train for one pass over ``data_loader``; returns the epoch's mean losses, img/s and data-wait share.

    ``warmup_iters`` > 0 ramps the learning rate linearly from 0.1% during this epoch (use it in epoch 0).
    ``report`` receives each step's stats (``epoch``, ``step``, ``steps``, ``lr``, ``img_s``, ``data_wait``,
    ``eta_s`` and every loss term; under DDP the losses are the mean over ranks).
    """
    model.train()
    steps = len(data_loader)
    warmup = None
    if warmup_iters > 0:
        warmup = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=1e-3, total_iters=min(warmup_iters, steps))
    sums: dict[str, float] = {}
    images_seen, data_time, start = 0, 0.0, time.perf_counter()
    optimizer.zero_grad(set_to_none=True)
    t_prev = time.perf_counter()
    for step, (images, targets) in enumerate(data_loader):
        if step >= steps:
            break
        t_data = time.perf_counter()
        data_time += t_data - t_prev
        images, targets = to_device(images, targets, device, channels_last)
        with autocast(device, amp):
            losses = loss_fn(model, images, targets)
        loss = sum(losses.values())
        values = {k: float(v.detach()) for k, v in losses.items()}
        if not math.isfinite(float(loss.detach())):
            raise NonFiniteLossError(epoch, step, values)
        scaled = loss / accum_steps
        if scaler is not None:
            scaler.scale(scaled).backward()
        else:
            scaled.backward()
        if (step + 1) % accum_steps == 0 or step + 1 == steps:
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        if warmup is not None:
            warmup.step()
        n = batch_size_of(images)
        images_seen += n
        values["loss"] = float(loss.detach())
        values = mean_over_ranks(values, device)
        for k, v in values.items():
            sums[k] = sums.get(k, 0.0) + v * n
        t_prev = time.perf_counter()
        elapsed = t_prev - start
        if report is not None:
            report({
                "epoch": epoch, "step": step + 1, "steps": steps, "lr": optimizer.param_groups[0]["lr"],
                "img_s": images_seen / elapsed, "data_wait": data_time / elapsed,
                "eta_s": elapsed / (step + 1) * (steps - step - 1), **values,
            })  # fmt: skip
    elapsed = time.perf_counter() - start
    summary = {k: v / max(images_seen, 1) for k, v in sums.items()}
    summary.update(
        img_s=images_seen / max(elapsed, 1e-9),
        data_wait=data_time / max(elapsed, 1e-9),
        seconds=elapsed,
        images=images_seen,
        steps=steps,
    )
    return summary

"""One training epoch and one evaluation pass, with everything passed in (torchvision references style).

``train_one_epoch`` reports each step to a ``progress`` callback (loss, lr, img/s, data-wait share, ETA) and to a
``MetricsLog`` (``metrics.jsonl``); it knows nothing about terminals. ``TqdmProgress`` is the callback the
commands use. A loss that is not finite stops the run with ``NonFiniteLossError`` carrying the loss dict.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.nn.functional as F

LossFn = Callable[[torch.nn.Module, Any, Any], dict[str, torch.Tensor]]


class NonFiniteLossError(FloatingPointError):
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
    (non-zero DDP ranks)."""

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
            raise ValueError("--tensorboard needs the 'tensorboard' package (pip install tensorboard)") from exc
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


def _mean_over_ranks(values: dict[str, float], device: str) -> dict[str, float]:
    """Under DDP, the losses averaged over ranks: the logged loss is the global batch's, as one process logs it
    (torchvision's references reduce their loss dict the same way)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return values
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return dict(zip(keys, (t / dist.get_world_size()).tolist(), strict=True))


def train_one_epoch(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    data_loader: Iterable,
    device: str,
    epoch: int,
    loss_fn: LossFn,
    *,
    scaler=None,
    amp: bool = False,
    accum_steps: int = 1,
    warmup_iters: int = 0,
    channels_last: bool = False,
    progress: Callable[[dict], None] | None = None,
    metrics_log: MetricsLog | None = None,
    global_step: int = 0,
    max_steps: int | None = None,
) -> dict[str, float]:
    """Train for one pass over ``data_loader``; returns the epoch's mean losses, img/s and data-wait share.

    ``warmup_iters`` > 0 ramps the learning rate linearly from 0.1% during this epoch (use it in epoch 0).
    """
    model.train()
    steps = len(data_loader) if max_steps is None else min(max_steps, len(data_loader))
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
        values = _mean_over_ranks(values, device)
        for k, v in values.items():
            sums[k] = sums.get(k, 0.0) + v * n
        t_prev = time.perf_counter()
        elapsed = t_prev - start
        stats = {
            "epoch": epoch,
            "step": step + 1,
            "steps": steps,
            "global_step": global_step + step + 1,
            "lr": optimizer.param_groups[0]["lr"],
            "img_s": images_seen / elapsed,
            "data_wait": data_time / elapsed,
            "eta_s": elapsed / (step + 1) * (steps - step - 1),
            **values,
        }
        if metrics_log is not None:
            metrics_log.write("step", **stats)
        if progress is not None:
            progress(stats)
    elapsed = time.perf_counter() - start
    summary = {k: v / max(images_seen, 1) for k, v in sums.items()}
    summary.update(
        img_s=images_seen / max(elapsed, 1e-9),
        data_wait=data_time / max(elapsed, 1e-9),
        seconds=elapsed,
        images=images_seen,
        steps=min(steps, len(data_loader)),
    )
    return summary


@torch.inference_mode()
def predict_detection(
    model: torch.nn.Module,
    data_loader: Iterable,
    device: str,
    categories: list[dict],
    amp: bool = False,
    masks: bool = False,
) -> list[dict]:
    """COCO results (``image_id``, ``category_id``, ``bbox`` xywh, ``score`` and, with ``masks``, RLE
    ``segmentation``) for every image in ``data_loader``."""
    model.eval()
    cat_ids = [c["id"] for c in categories]
    results = []
    for images, targets in data_loader:
        images = [img.to(device) for img in images]
        with autocast(device, amp):
            outputs = model(images)
        for out, target in zip(outputs, targets, strict=False):
            results.extend(_coco_results(out, int(target["image_id"]), cat_ids, masks))
    return results


def _coco_results(out: dict, image_id: int, cat_ids: list[int], masks: bool) -> list[dict]:
    boxes = out["boxes"].float().cpu()
    boxes[:, 2:] -= boxes[:, :2]
    scores = out["scores"].float().cpu().tolist()
    labels = out["labels"].cpu().tolist()
    rles = _encode_masks(out["masks"]) if masks and "masks" in out else None
    results = []
    for i, (box, score, label) in enumerate(zip(boxes.tolist(), scores, labels, strict=False)):
        if not 1 <= label <= len(cat_ids):
            continue  # background (never emitted by torchvision heads)
        record = {
            "image_id": image_id,
            "category_id": cat_ids[label - 1],
            "bbox": [round(v, 2) for v in box],
            "score": round(float(score), 5),
        }
        if rles is not None:
            record["segmentation"] = rles[i]
        results.append(record)
    return results


def _encode_masks(masks: torch.Tensor) -> list[dict]:
    import numpy as np
    from pycocotools import mask as mask_utils

    binary = (masks[:, 0] > 0.5).cpu().numpy().astype(np.uint8)
    rles = mask_utils.encode(np.asfortranarray(binary.transpose(1, 2, 0)))
    for rle in rles:
        rle["counts"] = rle["counts"].decode("ascii")
    return rles


@torch.inference_mode()
def predict_classification(
    model: torch.nn.Module, data_loader: Iterable, device: str, amp: bool = False, channels_last: bool = False
) -> tuple[list[int], list[int], list[float]]:
    """``(true, pred, score)`` per sample, in loader order (use an unshuffled loader)."""
    model.eval()
    true, pred, score = [], [], []
    for images, targets in data_loader:
        images, _ = to_device(images, targets, device, channels_last)
        with autocast(device, amp):
            logits = model(images)
        probs = logits.float().softmax(dim=1)
        s, p = probs.max(dim=1)
        true.extend(int(t) for t in targets)
        pred.extend(p.cpu().tolist())
        score.extend(s.cpu().tolist())
    return true, pred, score


class TqdmProgress:
    """A progress callback drawing one tqdm bar per epoch on stderr: loss, lr, img/s, data-wait share, ETA."""

    def __init__(self, quiet: bool = False, file=None):
        self.quiet = quiet
        self.file = file or sys.stderr
        self.bar = None
        self.epoch = None

    def __call__(self, stats: dict) -> None:
        if self.quiet:
            return
        from tqdm import tqdm

        if self.bar is None or stats["epoch"] != self.epoch:
            self.close()
            self.epoch = stats["epoch"]
            self.bar = tqdm(
                total=stats["steps"], desc=f"epoch {stats['epoch']}", file=self.file, leave=True, dynamic_ncols=True
            )
        self.bar.set_postfix_str(
            f"loss={stats['loss']:.4f} lr={stats['lr']:.2e} {stats['img_s']:.1f} img/s "
            f"data={100 * stats['data_wait']:.0f}%",
            refresh=False,
        )
        self.bar.update(stats["step"] - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def default_num_threads() -> None:
    """Leave torch's CPU threads alone unless BLENDSET_THREADS says otherwise (shared machines)."""
    if os.environ.get("BLENDSET_THREADS"):
        torch.set_num_threads(int(os.environ["BLENDSET_THREADS"]))

"""Regress render parameters from images (seed 003): a torchvision backbone with a linear head.

The targets are any numeric values the engine recorded per image in ``images[*].blendset.params`` (dotted names
such as ``camera.elevation_deg``, see ``shared/layout.py``). Each target is mapped linearly from its range in
the training set onto [-1, 1] (seed 003 draws its targets uniformly in [-1, 1]) and the loss is the MSE there.

Every result is reported beside the naive baseline that always predicts the training mean: seed 003 found that
networks trained without background variety do *worse* than that guess on varied test data, so an error number
alone says little.

No augmentation is applied: flips and crops would change the very parameters (azimuth, position) being learned.

Multi-process training (torchrun, ``--nproc``) works as for detection and classification: the shared sampler
and loader of ``trainer.training.loop`` split one global sample sequence across the ranks, and rank 0 alone writes.

Run folder (the trainer's layout): ``RUN/checkpoint.pth`` (latest epoch), ``RUN/best.pth`` (lowest validation
MSE), ``RUN/args.json``, ``RUN/metrics.jsonl``. :func:`evaluate_regression` writes ``OUT/metrics.json``,
``OUT/errors.csv``, ``OUT/error_distribution.png``, ``OUT/error_vs_<param>.png`` and ``OUT/saliency/*.png``.
"""

from __future__ import annotations

import csv
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from trainer import __version__
from trainer.data.datasets import DataError, load_coco_source, read_image, resolve_image_path
from trainer.models.build import CLASSIFICATION_MODELS, get_classification_model
from trainer.training.checkpoint import (
    check_compatible,
    find_checkpoint,
    load_checkpoint,
    load_model_state,
    save_checkpoint,
)
from trainer.training.distributed import DistInfo, barrier, broadcast_object, init_distributed, shutdown
from trainer.training.epoch import MetricsLog, train_one_epoch
from trainer.training.loop import (
    RunError,
    eval_loader,
    make_optimizer,
    mixing_sampler,
    prepare_run_dir,
    train_loader,
    write_json,
)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

Note = Callable[[str], None]


class RegressError(ValueError):
    """Regression input that cannot be used: unknown or constant targets, a foreign checkpoint, a bad option."""


def parse_targets(text: str | Sequence[str]) -> list[str]:
    """``"camera.elevation_deg,lights.energy_w"`` (or a list) → names, in order, without duplicates."""
    items = text.split(",") if isinstance(text, str) else list(text)
    names = [t.strip() for t in items if t.strip()]
    if not names:
        raise RegressError("no targets given (e.g. --targets camera.elevation_deg,camera.azimuth_deg)")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise RegressError(f"target(s) listed twice: {', '.join(dupes)}")
    return names


# --------------------------------------------------------------------------------------------------------------
# Data


@dataclass
class ParamRecords:
    """The images of a COCO dataset and their recorded render parameters."""

    root: str
    paths: list[str]
    image_ids: list[int]
    params: list[dict]

    def values(self, names: Sequence[str]) -> np.ndarray:
        """N x T float64 array of the named parameters; RegressError naming the first image that lacks one."""
        out = np.empty((len(self.params), len(names)), dtype=np.float64)
        for i, p in enumerate(self.params):
            for j, name in enumerate(names):
                v = p.get(name)
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                    known = ", ".join(sorted(numeric_params(p))) or "none"
                    raise RegressError(
                        f"{self.root}: image {self.image_ids[i]} has no numeric parameter {name!r} "
                        f"(it records: {known})"
                    )
                out[i, j] = float(v)
        return out


def numeric_params(params: dict) -> list[str]:
    return [k for k, v in params.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]


def load_param_records(path: str) -> ParamRecords:
    """Read a Blendset COCO dataset; every image must carry ``blendset.params`` (a user's real COCO set does not,
    and is refused with a message saying so)."""
    try:
        source = load_coco_source(path, on_problem="raise")
    except DataError as exc:
        raise RegressError(str(exc)) from exc
    root = source.images_root
    paths, ids, params = [], [], []
    for img in source.data["images"]:
        record = img.get("blendset")
        if not isinstance(record, dict) or not isinstance(record.get("params"), dict):
            raise RegressError(
                f"{path}: image {img.get('id')} ({img.get('file_name')}) has no blendset.params record; "
                "regression needs a dataset rendered by Blendset"
            )
        try:
            paths.append(resolve_image_path(root, img["file_name"]))
        except DataError as exc:
            raise RegressError(str(exc)) from exc
        ids.append(int(img["id"]))
        params.append(record["params"])
    if not paths:
        raise RegressError(f"{path}: the dataset has no images")
    return ParamRecords(root, paths, ids, params)


@dataclass
class TargetScaler:
    """Linear map of each target from [lo, hi] (its training range) onto [-1, 1]."""

    names: list[str]
    lo: np.ndarray
    hi: np.ndarray

    @classmethod
    def fit(cls, names: list[str], values: np.ndarray) -> TargetScaler:
        lo, hi = values.min(axis=0), values.max(axis=0)
        constant = [n for n, a, b in zip(names, lo, hi, strict=True) if not b > a]
        if constant:
            raise RegressError(
                "target(s) constant over the training set, nothing to learn: "
                + ", ".join(f"{n}={v:g}" for n, v in zip(names, lo, strict=True) if n in constant)
            )
        return cls(list(names), lo.astype(np.float64), hi.astype(np.float64))

    def normalize(self, values: np.ndarray) -> np.ndarray:
        return 2.0 * (values - self.lo) / (self.hi - self.lo) - 1.0

    def denormalize(self, values: np.ndarray) -> np.ndarray:
        return (np.asarray(values, dtype=np.float64) + 1.0) / 2.0 * (self.hi - self.lo) + self.lo

    def to_dict(self) -> dict:
        return {n: [float(a), float(b)] for n, a, b in zip(self.names, self.lo, self.hi, strict=True)}

    @classmethod
    def from_dict(cls, names: list[str], ranges: dict) -> TargetScaler:
        return cls(list(names), np.array([ranges[n][0] for n in names]), np.array([ranges[n][1] for n in names]))


def preprocess(image: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 C x H x W → float, squashed to size x size, ImageNet-normalized (the whole frame is kept: a crop
    could cut off the evidence for position or distance)."""
    from torchvision.transforms.v2 import functional as TF

    x = TF.resize(image, [size, size], antialias=True).float().div(255.0)
    return TF.normalize(x, IMAGENET_MEAN, IMAGENET_STD)


class RegressionDataset(torch.utils.data.Dataset):
    """(image tensor, normalized target vector) pairs; images are decoded on demand."""

    def __init__(self, records: ParamRecords, targets: np.ndarray, image_size: int):
        self.records = records
        self.targets = torch.as_tensor(targets, dtype=torch.float32)
        self.image_size = image_size

    def __len__(self) -> int:
        return len(self.records.paths)

    def __getitem__(self, index: int):
        try:
            image = read_image(self.records.paths[index])
        except DataError as exc:
            raise RegressError(str(exc)) from exc
        return preprocess(image, self.image_size), self.targets[index]


# --------------------------------------------------------------------------------------------------------------
# Model


def build_regressor(model_name: str, n_targets: int, weights: str = "none") -> torch.nn.Module:
    """A torchvision classifier whose head outputs ``n_targets`` numbers (weights: none, imagenet, PATH)."""
    if model_name not in CLASSIFICATION_MODELS:
        raise RegressError(f"unknown model {model_name!r}; choose from {', '.join(CLASSIFICATION_MODELS)}")
    if weights == "coco":
        raise RegressError("--weights coco is for detectors; a regressor takes none, imagenet or a file")
    return get_classification_model(model_name, n_targets, weights=weights)


def _mse_loss(model: torch.nn.Module, images: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
    return {"loss_mse": F.mse_loss(model(images), targets)}


@torch.inference_mode()
def predict(model: torch.nn.Module, loader, device: str) -> np.ndarray:
    """Normalized predictions, N x T."""
    model.eval()
    out = [model(images.to(device)).float().cpu().numpy() for images, _ in loader]
    return np.concatenate(out) if out else np.zeros((0, 0))


def mse_per_target(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    return ((pred - true) ** 2).mean(axis=0)


# --------------------------------------------------------------------------------------------------------------
# Training


def train_regression(
    train: str,
    val: str | None,
    out: str,
    targets: str | Sequence[str],
    model_name: str = "resnet18",
    epochs: int = 10,
    batch_size: int = 16,
    lr: float = 1e-3,
    image_size: int = 128,
    weights: str = "none",
    seed: int = 0,
    device: str = "cpu",
    workers: int = 0,
    weight_decay: float = 1e-4,
    resume: bool = False,
    progress: Callable[[dict], None] | None = None,
    note: Note = lambda message: None,
) -> dict:
    """Train a render-parameter regressor; return the summary with model and naive-baseline errors.

    Validation (``val``, else the training set) picks ``best.pth`` by normalized MSE. Targets are normalized
    with the training set's ranges, which are stored in the checkpoint (``target_ranges``) together with the
    naive baseline (``target_mean``: the training mean in normalized units).

    Under torchrun (``RANK``/``WORLD_SIZE`` set, see ``trainer.training.distributed``) each of the N processes takes
    ``batch_size`` images per step from its share of one global sample sequence (global batch N x
    ``batch_size``), as ``train detect``/``train classify`` do. Rank 0 alone validates, logs, writes the run
    folder and calls ``note``; every rank returns the same summary. A run resumes on any number of processes
    with the same global batch.
    """
    names = parse_targets(targets)
    for name, value in (("epochs", epochs), ("batch_size", batch_size), ("image_size", image_size)):
        if value < 1:
            raise RegressError(f"{name} must be >= 1, got {value}")
    if not lr > 0:
        raise RegressError(f"lr must be > 0, got {lr}")
    dist, device = init_distributed(device)
    if not dist.is_main:
        note = _silent
    try:
        return _train(
            dist,
            device,
            note,
            progress,
            train=train,
            val=val,
            out=out,
            names=names,
            model_name=model_name,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            image_size=image_size,
            weights=weights,
            seed=seed,
            workers=workers,
            weight_decay=weight_decay,
            resume=resume,
        )
    finally:
        shutdown(dist)


def _silent(message: str) -> None:
    """The ``note`` of DDP ranks other than 0: one process speaks for the run."""


def _train(
    dist: DistInfo,
    device: str,
    note: Note,
    progress: Callable[[dict], None] | None,
    *,
    train: str,
    val: str | None,
    out: str,
    names: list[str],
    model_name: str,
    epochs: int,
    batch_size: int,
    lr: float,
    image_size: int,
    weights: str,
    seed: int,
    workers: int,
    weight_decay: float,
    resume: bool,
) -> dict:
    """``train_regression`` once the process group (if any) is up; ``device`` is this process's device."""
    # the same seed on every rank: the ranks build identical models (DDP also broadcasts rank 0's weights)
    torch.manual_seed(seed)
    np.random.seed(seed)

    train_records = load_param_records(train)
    train_values = train_records.values(names)
    scaler = TargetScaler.fit(names, train_values)
    train_norm = scaler.normalize(train_values)
    naive = train_norm.mean(axis=0)
    val_records = load_param_records(val) if val else train_records
    val_norm = scaler.normalize(val_records.values(names))
    note(
        f"{len(train_records.paths)} training images, {len(val_records.paths)} validation images, "
        f"targets {', '.join(names)}"
    )

    # one source at ratio 1: the mixing sampler is then a seeded shuffle, split across ranks like the other tasks
    datasets = [RegressionDataset(train_records, train_norm, image_size)]
    sampler = mixing_sampler(datasets, [None], batch_size, False, seed, dist)
    loader = train_loader(datasets, sampler, batch_size, workers, None, seed, device)
    val_loader = eval_loader(RegressionDataset(val_records, val_norm, image_size), batch_size, workers)
    model = build_regressor(model_name, len(names), weights).to(device)
    optimizer = make_optimizer(model, "adamw", lr, weight_decay)
    lr_scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)

    args = {
        "train": os.path.abspath(train),
        "val": os.path.abspath(val) if val else None,
        "targets": names,
        "model": model_name,
        "epochs": epochs,
        "batch_size": batch_size,
        "world_size": dist.world_size,
        "lr": lr,
        "image_size": image_size,
        "weights": weights,
        "seed": seed,
        "weight_decay": weight_decay,
    }
    start_epoch, best, global_step = _start(out, resume, dist, model, optimizer, lr_scheduler, model_name, args, note)
    net = model
    if dist.enabled:
        device_ids = [dist.local_rank] if device != "cpu" else None
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
    if dist.is_main:
        write_json(os.path.join(out, "args.json"), args)
    log = MetricsLog(os.path.join(out, "metrics.jsonl") if dist.is_main else None)
    naive_val_mse = float(mse_per_target(np.broadcast_to(naive, val_norm.shape), val_norm).mean())
    history = []
    t0 = time.perf_counter()
    images_trained = 0
    for epoch in range(start_epoch, epochs):
        sampler.set_epoch(epoch)
        stats = train_one_epoch(
            net, optimizer, loader, device, epoch, _mse_loss, progress=progress if dist.is_main else None,
            metrics_log=log, global_step=global_step,
        )  # fmt: skip
        global_step += int(stats["steps"])
        images_trained += int(stats["images"]) * dist.world_size
        lr_scheduler.step()
        val_mse = float(mse_per_target(predict(model, val_loader, device), val_norm).mean()) if dist.is_main else None
        val_mse = broadcast_object(dist, val_mse)
        improved = val_mse < best
        best = min(best, val_mse)
        record = {
            "epoch": epoch,
            "train_loss": stats["loss"],  # already the mean over ranks (train_one_epoch reduces it)
            "val_mse": val_mse,
            "naive_val_mse": naive_val_mse,
            "img_s": stats["img_s"] * dist.world_size,  # the ranks step together, so this is the whole run's rate
            "lr": optimizer.param_groups[0]["lr"],
        }
        history.append(record)
        if dist.is_main:
            log.write("epoch", **record)
            ckpt = {
                "task": "regress",
                "model_name": model_name,
                "categories": [],
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "lr_scheduler": lr_scheduler.state_dict(),
                "scaler": None,
                "epoch": epoch,
                "args": args,
                "blendset_version": __version__,
                "targets": names,
                "target_ranges": scaler.to_dict(),
                "target_mean": [float(v) for v in naive],
                "image_size": image_size,
                "best_val_mse": best,
                "val_mse": val_mse,
                "global_step": global_step,
            }
            save_checkpoint(os.path.join(out, "checkpoint.pth"), ckpt)
            if improved:
                save_checkpoint(os.path.join(out, "best.pth"), ckpt)
            note(
                f"epoch {epoch}: train mse {stats['loss']:.4f}, val mse {val_mse:.4f} (naive {naive_val_mse:.4f}), "
                f"{record['img_s']:.1f} img/s"
            )
        barrier(dist)
    seconds = time.perf_counter() - t0
    summary = {
        "run_dir": out,
        "targets": names,
        "epochs": epochs,
        "best_val_mse": best,
        "naive_val_mse": naive_val_mse,
        "history": history,
        "seconds": round(seconds, 3),
        "img_per_s": round(images_trained / seconds, 2) if images_trained and seconds > 0 else None,
        "device": device,
        "processes": dist.world_size,
        "target_ranges": scaler.to_dict(),
    }
    if dist.is_main:
        write_json(os.path.join(out, "summary.json"), summary)
    return summary


def _resume_settings(args: dict) -> dict:
    """What a resumed run must share with the saved one: every setting but ``epochs``, with the batch counted
    over all processes, so that a run saved by N processes resumes on M with ``--batch-size`` scaled by N/M."""
    same = {k: v for k, v in args.items() if k not in ("epochs", "batch_size", "world_size")}
    same["global_batch_size"] = int(args["batch_size"]) * int(args.get("world_size", 1))
    return same


def _start(
    out: str, resume: bool, dist: DistInfo, model, optimizer, lr_scheduler, model_name: str, args: dict, note: Note
) -> tuple[int, float, int]:
    """(first epoch, best validation MSE so far, optimizer steps so far): 0, inf and 0 for a new run, the saved
    state with ``resume``."""
    try:
        path = prepare_run_dir(out, resume, dist)
    except RunError as exc:
        raise RegressError(str(exc)) from exc
    if path is None:
        return 0, math.inf, 0
    ckpt = load_checkpoint(path)
    check_compatible(ckpt, "regress", model_name, [], source=path)
    saved, mine = _resume_settings(ckpt["args"]), _resume_settings(args)
    if saved != mine:
        diff = sorted(k for k in mine if saved.get(k) != mine[k])
        raise RegressError(f"--resume: {path} was trained with other settings ({', '.join(diff)})")
    load_model_state(model, ckpt["model"], source=path)
    optimizer.load_state_dict(ckpt["optimizer"])
    lr_scheduler.load_state_dict(ckpt["lr_scheduler"])
    note(f"resuming {path} after epoch {ckpt['epoch']}")
    return int(ckpt["epoch"]) + 1, float(ckpt.get("best_val_mse", math.inf)), int(ckpt.get("global_step", 0))


# --------------------------------------------------------------------------------------------------------------
# Evaluation


def load_regressor(run_or_file: str, device: str = "cpu") -> tuple[torch.nn.Module, dict]:
    """A trained regressor (``best.pth`` preferred) in eval mode and its checkpoint; RegressError for a checkpoint
    of another task or one whose weights do not fit."""
    path = find_checkpoint(run_or_file, prefer_best=True)
    ckpt = load_checkpoint(path)
    if ckpt.get("task") != "regress":
        raise RegressError(f"{path} is a {ckpt.get('task')!r} checkpoint, not a regressor")
    for key in ("targets", "target_ranges", "target_mean", "image_size"):
        if key not in ckpt:
            raise RegressError(f"{path}: regression checkpoint lacks {key!r}")
    model = get_classification_model(ckpt["model_name"], len(ckpt["targets"]), weights="none")
    load_model_state(model, ckpt["model"], source=path)
    return model.to(device).eval(), ckpt


def saliency_map(model: torch.nn.Module, image: torch.Tensor, target_index: int) -> np.ndarray:
    """|d output[target] / d input|, max over colour channels: which pixels move the prediction (seed 003 fig. 9)."""
    model.eval()
    x = image[None].clone().requires_grad_(True)
    model(x)[0, target_index].backward()
    return x.grad[0].abs().amax(dim=0).cpu().numpy()


def moving_average(x: np.ndarray, y: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """y smoothed over ``window`` neighbours in x order (seed 003 fig. 8)."""
    order = np.argsort(x)
    xs, ys = x[order], y[order]
    window = max(1, min(window, len(xs)))
    kernel = np.ones(window) / window
    return np.convolve(xs, kernel, "valid"), np.convolve(ys, kernel, "valid")


def _varying_params(records: ParamRecords) -> list[str]:
    keys = sorted(set().union(*(numeric_params(p) for p in records.params)))
    out = []
    for k in keys:
        vals = [p.get(k) for p in records.params if isinstance(p.get(k), (int, float))]
        if len(vals) == len(records.params) and max(vals) > min(vals):
            out.append(k)
    return out


def evaluate_regression(
    run_dir: str,
    data_path: str,
    out_dir: str,
    by_attribute: Sequence[str] | None = None,
    device: str = "cpu",
    saliency_samples: int = 4,
    batch_size: int = 16,
) -> dict:
    """Score a regressor on a dataset and write metrics.json, errors.csv and plots into ``out_dir``.

    Errors are in each target's units and in normalized units (the training range mapped to [-1, 1]).
    ``by_attribute``: recorded parameters to plot the error against, ``NAME`` or ``NAME:BINS`` (default: every
    parameter that varies in the dataset, at most 8). ``device`` may be ``auto``. Returns the metrics dict: per
    target MAE/RMSE for the model and the naive baseline, and the overall normalized MSE of both.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    model, ckpt = load_regressor(run_dir, device)
    names = list(ckpt["targets"])
    scaler = TargetScaler.from_dict(names, ckpt["target_ranges"])
    naive = np.asarray(ckpt["target_mean"], dtype=np.float64)
    records = load_param_records(data_path)
    true = records.values(names)
    true_norm = scaler.normalize(true)
    dataset = RegressionDataset(records, true_norm, int(ckpt["image_size"]))
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size)
    t0 = time.perf_counter()
    pred_norm = predict(model, loader, device)
    seconds = time.perf_counter() - t0
    pred = scaler.denormalize(pred_norm)
    naive_pred = scaler.denormalize(np.broadcast_to(naive, true_norm.shape))
    os.makedirs(out_dir, exist_ok=True)

    err_model = np.abs(pred - true)
    err_naive = np.abs(naive_pred - true)
    sq_model = (pred_norm - true_norm) ** 2
    sq_naive = (naive[None, :] - true_norm) ** 2
    per_target = {}
    for j, name in enumerate(names):
        per_target[name] = {
            "mae": float(err_model[:, j].mean()),
            "rmse": float(np.sqrt((err_model[:, j] ** 2).mean())),
            "naive_mae": float(err_naive[:, j].mean()),
            "naive_rmse": float(np.sqrt((err_naive[:, j] ** 2).mean())),
            "mse_normalized": float(sq_model[:, j].mean()),
            "naive_mse_normalized": float(sq_naive[:, j].mean()),
        }
    mse, naive_mse = float(sq_model.mean()), float(sq_naive.mean())
    metrics = {
        "task": "regress",
        "dataset": os.path.basename(os.path.normpath(data_path)),
        "out_dir": os.path.abspath(out_dir),
        "data": os.path.abspath(data_path),
        "checkpoint_epoch": ckpt.get("epoch"),
        "images": len(records.paths),
        "targets": names,
        "target_ranges": scaler.to_dict(),
        "mse_normalized": mse,
        "naive_mse_normalized": naive_mse,
        "skill": 1.0 - mse / naive_mse if naive_mse > 0 else None,
        "better_than_naive": mse < naive_mse,
        "per_target": per_target,
        "img_per_s": round(len(records.paths) / seconds, 2) if seconds > 0 else None,
        "device": device,
    }

    _write_errors_csv(os.path.join(out_dir, "errors.csv"), records, names, true, pred, naive_pred)
    plots = [_plot_distribution(plt, out_dir, names, err_model, err_naive)]
    per_sample = sq_model.mean(axis=1)
    per_sample_naive = sq_naive.mean(axis=1)
    # ``blendset eval --by-attribute`` passes ATTR[:BINS]; the curve is a moving average, so bins are not needed.
    attributes = [a.split(":", 1)[0] for a in by_attribute] if by_attribute else _varying_params(records)[:8]
    for attr in attributes:
        x = records.values([attr])[:, 0]
        plots.append(_plot_vs(plt, out_dir, attr, x, per_sample, per_sample_naive))
    plots += _saliency_images(plt, out_dir, model, dataset, records, names, saliency_samples, device)
    metrics["plots"] = [os.path.relpath(p, out_dir) for p in plots]
    metrics["by_attribute"] = attributes
    write_json(os.path.join(out_dir, "metrics.json"), metrics)
    return metrics


def _write_errors_csv(path, records, names, true, pred, naive_pred) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["image_id", "file", "target", "true", "predicted", "abs_error", "naive_abs_error"])
        for i, image_id in enumerate(records.image_ids):
            for j, name in enumerate(names):
                w.writerow(
                    [
                        image_id,
                        os.path.basename(records.paths[i]),
                        name,
                        f"{true[i, j]:.6g}",
                        f"{pred[i, j]:.6g}",
                        f"{abs(pred[i, j] - true[i, j]):.6g}",
                        f"{abs(naive_pred[i, j] - true[i, j]):.6g}",
                    ]
                )
    os.replace(tmp, path)


def _plot_distribution(plt, out_dir, names, err_model, err_naive) -> str:
    """Violin + box per target, model beside naive (seed 003 fig. 7)."""
    fig, axes = plt.subplots(1, len(names), figsize=(max(4.5, 3.2 * len(names)), 3.6), squeeze=False)
    for j, (ax, name) in enumerate(zip(axes[0], names, strict=True)):
        data = [err_model[:, j], err_naive[:, j]]
        if len(err_model) > 1:
            ax.violinplot(data, showextrema=False)
        ax.boxplot(data, widths=0.15)
        ax.set_xticks([1, 2], ["model", "naive"])
        ax.set_title(name, fontsize=9)
        ax.set_ylabel("absolute error")
    fig.suptitle("Absolute error: model vs naive (training mean)", fontsize=10)
    fig.tight_layout()
    path = os.path.join(out_dir, "error_distribution.png")
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _plot_vs(plt, out_dir, attr, x, err, err_naive) -> str:
    fig, ax = plt.subplots(figsize=(5, 3.4))
    window = max(3, len(x) // 10)
    ax.scatter(x, err, s=6, alpha=0.3, color="C0")
    for e, label, c in ((err, "model", "C0"), (err_naive, "naive", "C3")):
        mx, my = moving_average(x, e, window)
        ax.plot(mx, my, color=c, label=f"{label} (moving average, {window})")
    ax.set_xlabel(attr)
    ax.set_ylabel("squared error (normalized)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    safe = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in attr)
    path = os.path.join(out_dir, f"error_vs_{safe}.png")
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _saliency_images(plt, out_dir, model, dataset, records, names, count, device) -> list[str]:
    folder = os.path.join(out_dir, "saliency")
    os.makedirs(folder, exist_ok=True)
    paths = []
    mean = np.array(IMAGENET_MEAN)[:, None, None]
    std = np.array(IMAGENET_STD)[:, None, None]
    for i in range(min(count, len(dataset))):
        image, _ = dataset[i]
        sal = saliency_map(model, image.to(device), 0)
        rgb = np.clip(image.cpu().numpy() * std + mean, 0, 1).transpose(1, 2, 0)
        fig, axes = plt.subplots(1, 2, figsize=(5, 2.6))
        axes[0].imshow(rgb)
        axes[0].set_title(f"image {records.image_ids[i]}", fontsize=8)
        axes[1].imshow(sal / (sal.max() + 1e-12), cmap="inferno")
        axes[1].set_title(f"saliency for {names[0]}", fontsize=8)
        for ax in axes:
            ax.axis("off")
        fig.tight_layout()
        path = os.path.join(folder, f"{records.image_ids[i]:06d}.png")
        fig.savefig(path, dpi=90)
        plt.close(fig)
        paths.append(path)
    return paths

"""The regression recipe: render parameters from images (the variability study), a torchvision backbone with a
linear head (``train_regression``).

The targets are any numeric values the engine recorded per image in ``images[*].blendset.params`` (dotted names
such as ``camera.elevation_deg``, see ``shared/layout.py``). Each target is mapped linearly from its range in
the training set onto [-1, 1] (the variability study draws its targets uniformly in [-1, 1]) and the loss is the
MSE there.

Every result is reported beside the naive baseline that always predicts the training mean: the variability
study found that networks trained without background variety do *worse* than that guess on varied test data, so
an error number alone says little.

No augmentation is applied: flips and crops would change the very parameters (azimuth, position) being learned.

It trains in the one loop (``trainer/training/loop.py``) like detection and classification, multi-process
included; ``best.pth`` is the lowest validation MSE. Scoring a regressor on a dataset is
``trainer/evaluation/regress.py``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from shared.errors import BlendsetError
from shared.progress import Note, ProgressFn, silent
from trainer.data.datasets import DataError, load_coco_source, read_image, resolve_image_path
from trainer.data.loaders import eval_loader
from trainer.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from trainer.models.build import CLASSIFICATION_MODELS, get_classification_model
from trainer.training.checkpoint import Checkpoint
from trainer.training.distributed import DistInfo
from trainer.training.loop import LoopState, Metric, TaskSetup, run
from trainer.training.spec import RegressOptions, RunSpec


class RegressError(BlendsetError, ValueError):
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
    progress: ProgressFn | None = None,
    note: Note = silent,
    **settings: Any,
) -> dict:
    """Train a render-parameter regressor; return the summary with model and naive-baseline errors.

    ``settings`` are :class:`~trainer.training.spec.RunSpec` fields (``epochs``, ``batch_size``, ``lr``,
    ``weights``, ``seed``, ``device``, ``workers``, ``weight_decay``, ``resume`` ...) and ``image_size``.
    Validation (``val``, else the training set) picks ``best.pth`` by normalized MSE. Targets are normalized
    with the training set's ranges, which are stored in the checkpoint (``target_ranges``) together with the
    naive baseline (``target_mean``: the training mean in normalized units).

    Under torchrun each of the N processes takes ``batch_size`` images per step (global batch N x
    ``batch_size``); a run resumes on any number of processes with the same global batch.
    """
    names = parse_targets(targets)
    for name in ("epochs", "batch_size", "image_size"):
        if name in settings and settings[name] < 1:
            raise RegressError(f"{name} must be >= 1, got {settings[name]}")
    if "lr" in settings and not settings["lr"] > 0:
        raise RegressError(f"lr must be > 0, got {settings['lr']}")
    spec = RunSpec.build("regress", train=[(train, None)], val=val, out=out, targets=names, model=model_name,
                         **settings)  # fmt: skip
    return run(spec, setup_regression, progress, note)


def setup_regression(spec: RunSpec, dist: DistInfo, device: str, note: Note) -> TaskSetup:
    options: RegressOptions = spec.options
    names = list(options.targets)
    train_records = load_param_records(spec.train[0][0])
    train_values = train_records.values(names)
    scaler = TargetScaler.fit(names, train_values)
    train_norm = scaler.normalize(train_values)
    naive = train_norm.mean(axis=0)
    val_records = load_param_records(spec.val) if spec.val else train_records
    val_norm = scaler.normalize(val_records.values(names))
    naive_val_mse = float(mse_per_target(np.broadcast_to(naive, val_norm.shape), val_norm).mean())
    note(
        f"{len(train_records.paths)} training images, {len(val_records.paths)} validation images, "
        f"targets {', '.join(names)}"
    )
    val_loader = eval_loader(RegressionDataset(val_records, val_norm, options.image_size), spec.batch_size,
                             spec.workers)  # fmt: skip

    def validate(model: torch.nn.Module) -> dict[str, float]:
        return {"val_mse": float(mse_per_target(predict(model, val_loader, device), val_norm).mean()),
                "naive_val_mse": naive_val_mse}  # fmt: skip

    def epoch_record(train_stats: dict, val_stats: dict, dist: DistInfo) -> dict:
        return {
            "train_loss": train_stats["loss"],  # already the mean over ranks
            "val_mse": val_stats.get("val_mse"),
            "naive_val_mse": naive_val_mse,
            "img_s": train_stats["img_s"] * dist.world_size,  # the ranks step together: the whole run's rate
        }

    def epoch_state(val_stats: dict, state: LoopState) -> dict:
        return {"val_mse": val_stats.get("val_mse"), "best_val_mse": state.best_metric}

    def summary(result: dict, dist: DistInfo) -> dict:
        seconds, images = result["seconds"], result["images_trained"]
        return {
            "targets": names, "best_val_mse": result["best_metric"], "naive_val_mse": naive_val_mse,
            "seconds": round(seconds, 3), "img_per_s": round(images / seconds, 2) if images and seconds > 0 else None,
            "device": device, "processes": dist.world_size, "target_ranges": scaler.to_dict(),
        }  # fmt: skip

    def check_resume(ckpt: Checkpoint, path: str) -> None:
        saved = _resume_settings(ckpt.args)
        mine = _resume_settings({**spec.to_args(), "world_size": dist.world_size})
        if saved != mine:
            diff = sorted(k for k in mine if saved.get(k) != mine[k])
            raise RegressError(f"--resume: {path} was trained with other settings ({', '.join(diff)})")

    return TaskSetup(
        datasets=[RegressionDataset(train_records, train_norm, options.image_size)], ratios=[None], categories=[],
        model=build_regressor(spec.model, len(names), spec.weights).to(device), loss_fn=_mse_loss,
        metric=Metric("val_mse", "min"), validate=validate, epoch_record=epoch_record, epoch_state=epoch_state,
        summary=summary, check_resume=check_resume, write_summary=True,
        task_state={"targets": names, "target_ranges": scaler.to_dict(), "target_mean": [float(v) for v in naive],
                    "image_size": options.image_size},
    )  # fmt: skip


# What a resumed run must share with the saved one (the batch counted over all processes, so a run saved by N
# processes resumes on M with --batch-size scaled by N/M).
_RESUME_KEYS = ("train", "val", "targets", "model", "lr", "image_size", "weights", "seed", "weight_decay")


def _resume_settings(args: dict) -> dict:
    same = {k: args.get(k) for k in _RESUME_KEYS}
    train = same["train"]
    if isinstance(train, str):  # checkpoints before the one loop stored the one source as a path
        train = [[train, None]]
    same["train"] = [[os.path.abspath(p), r] for p, r in (train or [])]
    same["val"] = os.path.abspath(same["val"]) if same["val"] else None
    same["targets"] = list(same["targets"] or [])
    same["global_batch_size"] = int(args["batch_size"]) * int(args.get("world_size", 1))
    return same

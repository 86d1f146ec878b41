"""The one checkpoint layout of every training task, and where checkpoints are written and read.

A run folder holds ``RUN/checkpoint.pth`` (the latest epoch, for ``--resume``) and ``RUN/best.pth`` (the best
epoch by the run's metric). Each file is a plain dict of tensors and JSON-like values, read back with
``torch.load(..., weights_only=True)`` (no pickled objects), and written atomically, so an interrupted save
leaves the previous checkpoint intact. :class:`Checkpoint` is that dict's typed form:

- what was trained: ``task``, ``model_name``, ``categories`` (``[]`` for regression), ``args`` (the run's
  :class:`~trainer.training.spec.RunSpec` as saved in ``args.json``), ``blendset_version``;
- where it stands: ``model``, ``optimizer``, ``lr_scheduler``, ``scaler`` state dicts, ``epoch``,
  ``global_step``;
- how good it is: ``metric_name``, ``metric_mode`` (``max`` or ``min``), ``best_metric``, ``best_epoch``;
- ``task_state``: what the task needs to rebuild and use the model (detection ``min_size``/``max_size``/
  ``masks``; keypoints ``min_size``/``max_size``/``num_keypoints``/``keypoint_names``/``skeleton``/``oks_sigma``;
  classification ``image_size``/``grayscale``/``padding``; regression ``targets``,
  ``target_ranges``, ``target_mean``, ``image_size``, ``val_mse``, ``best_val_mse``; the refiner
  ``generator`` and ``step``). These keys are stored at
  the top level of the dict, as checkpoints of earlier versions have them, so both read the same way.

Earlier regression checkpoints had no ``metric_name``/``best_metric``; :meth:`Checkpoint.from_dict` fills
them from ``best_val_mse``.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from typing import Any

import torch

from shared.atomic import atomic_path
from shared.errors import BlendsetError
from trainer.training.spec import TASKS as TRAINING_TASKS

# Every task whose checkpoints use this layout: the training tasks and the refiner (trainer/refine/checkpoint.py).
TASKS = (*TRAINING_TASKS, "refine")

_FIELDS = (
    "task", "model_name", "categories", "model", "optimizer", "lr_scheduler", "scaler", "epoch", "global_step",
    "args", "blendset_version", "metric_name", "metric_mode", "best_metric", "best_epoch",
)  # fmt: skip


class CheckpointError(BlendsetError, RuntimeError):
    """A checkpoint that is missing, unreadable, or does not fit the run it is loaded into."""


@dataclass
class Checkpoint:
    task: str
    model_name: str
    model: dict
    categories: list[dict] = field(default_factory=list)
    optimizer: dict | None = None
    lr_scheduler: dict | None = None
    scaler: dict | None = None
    epoch: int = -1
    global_step: int = 0
    args: dict = field(default_factory=dict)
    blendset_version: str = ""
    metric_name: str = ""
    metric_mode: str = "max"
    best_metric: float = -math.inf
    best_epoch: int = -1
    task_state: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        record = {name: getattr(self, name) for name in _FIELDS}
        clash = sorted(set(self.task_state) & set(record))
        if clash:
            raise ValueError(f"task_state may not reuse checkpoint fields: {clash}")
        return {**record, **self.task_state}

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Checkpoint:
        known = {name: record[name] for name in _FIELDS if name in record}
        task_state = {k: v for k, v in record.items() if k not in _FIELDS}
        if "metric_name" not in record and "best_val_mse" in record:  # regression checkpoints before the one loop
            known.update(metric_name="val_mse", metric_mode="min", best_metric=float(record["best_val_mse"]))
        known.setdefault("categories", [])
        known.setdefault("model_name", "")
        return cls(**known, task_state=task_state)

    def __getitem__(self, key: str) -> Any:
        """Read like the stored dict (``ckpt["targets"]``), so callers need not know which block holds a key."""
        if key in _FIELDS:
            return getattr(self, key)
        return self.task_state[key]

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def __contains__(self, key: str) -> bool:
        return key in _FIELDS or key in self.task_state

    def replace(self, **changes: Any) -> Checkpoint:
        return dataclasses.replace(self, **changes)


def save_checkpoint(path: str, checkpoint: Checkpoint | dict[str, Any]) -> None:
    record = checkpoint.to_dict() if isinstance(checkpoint, Checkpoint) else checkpoint
    if record.get("task") not in TASKS:
        raise ValueError(f"checkpoint task must be one of {TASKS}")
    with atomic_path(path) as tmp:
        torch.save(record, tmp)


def find_checkpoint(run_or_file: str, prefer_best: bool = False) -> str:
    """A checkpoint file, or a run folder's ``best.pth`` / ``checkpoint.pth``."""
    if os.path.isfile(run_or_file):
        return run_or_file
    if os.path.isdir(run_or_file):
        names = ("best.pth", "checkpoint.pth") if prefer_best else ("checkpoint.pth", "best.pth")
        for name in names:
            path = os.path.join(run_or_file, name)
            if os.path.isfile(path):
                return path
        raise CheckpointError(f"{run_or_file}: run folder has no checkpoint.pth or best.pth")
    raise CheckpointError(f"{run_or_file}: no such checkpoint file or run folder")


def load_checkpoint(path: str, prefer_best: bool = False) -> Checkpoint:
    """Read a checkpoint safely (``weights_only=True``); corrupt files and foreign formats are CheckpointError."""
    path = find_checkpoint(path, prefer_best=prefer_best)
    try:
        record = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path}: cannot read checkpoint ({type(exc).__name__}: {str(exc)[:300]})") from exc
    if not isinstance(record, dict) or "model" not in record or record.get("task") not in TASKS:
        raise CheckpointError(f"{path}: not a Blendset checkpoint (needs 'task' in {TASKS} and 'model')")
    return Checkpoint.from_dict(record)


def check_compatible(
    ckpt: Checkpoint,
    task: str,
    model_name: str | None = None,
    categories: list[dict] | None = None,
    source: str = "checkpoint",
) -> None:
    """Refuse to resume or fine-tune from a checkpoint made for another task, model or class list."""
    if ckpt.task != task:
        raise CheckpointError(f"{source} is for task {ckpt.task!r}, this run is {task!r}")
    if model_name is not None and ckpt.model_name != model_name:
        raise CheckpointError(f"{source} holds model {ckpt.model_name!r}, this run uses {model_name!r}")
    if categories is not None:
        theirs = [(int(c["id"]), str(c["name"])) for c in ckpt.categories]
        ours = [(int(c["id"]), str(c["name"])) for c in categories]
        if theirs != ours:
            raise CheckpointError(f"{source} was trained on classes {theirs}, this data has {ours}")


def load_model_state(model: torch.nn.Module, state: dict, source: str = "checkpoint", strict: bool = True):
    """``load_state_dict`` with a readable error instead of a page of key names."""
    state = {k.removeprefix("module."): v for k, v in state.items()}
    try:
        return model.load_state_dict(state, strict=strict)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0:3]
        raise CheckpointError(f"{source} does not fit this model: {' '.join(first)[:500]}") from exc

"""Checkpoints as plain dicts of tensors and JSON-like values, read back with ``weights_only=True``.

Layout (see the team brief): ``{"task", "model_name", "categories", "model", "optimizer", "lr_scheduler",
"scaler", "epoch", "args", "blendset_version", ...}``. ``RUN/checkpoint.pth`` is the latest epoch,
``RUN/best.pth`` the best on the validation set. Writes are atomic (temp file + ``os.replace``), so an interrupted
save leaves the previous checkpoint intact.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import torch

TASKS = ("detect", "classify", "regress")


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, unreadable, or does not fit the run it is loaded into."""


def save_checkpoint(path: str, checkpoint: dict[str, Any]) -> None:
    if checkpoint.get("task") not in TASKS:
        raise ValueError(f"checkpoint task must be one of {TASKS}")
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".pth")
    os.close(fd)
    try:
        torch.save(checkpoint, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


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


def load_checkpoint(path: str) -> dict[str, Any]:
    """Read a checkpoint safely; corrupt files and foreign formats are CheckpointError."""
    path = find_checkpoint(path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path}: cannot read checkpoint ({type(exc).__name__}: {str(exc)[:300]})") from exc
    if not isinstance(ckpt, dict) or "model" not in ckpt or ckpt.get("task") not in TASKS:
        raise CheckpointError(f"{path}: not a Blendset checkpoint (needs 'task' in {TASKS} and 'model')")
    return ckpt


def check_compatible(
    ckpt: dict,
    task: str,
    model_name: str | None = None,
    categories: list[dict] | None = None,
    source: str = "checkpoint",
) -> None:
    """Refuse to resume or fine-tune from a checkpoint made for another task, model or class list."""
    if ckpt.get("task") != task:
        raise CheckpointError(f"{source} is for task {ckpt.get('task')!r}, this run is {task!r}")
    if model_name is not None and ckpt.get("model_name") != model_name:
        raise CheckpointError(f"{source} holds model {ckpt.get('model_name')!r}, this run uses {model_name!r}")
    if categories is not None:
        theirs = [(int(c["id"]), str(c["name"])) for c in ckpt.get("categories", [])]
        ours = [(int(c["id"]), str(c["name"])) for c in categories]
        if theirs != ours:
            raise CheckpointError(f"{source} was trained on classes {theirs}, this data has {ours}")


def load_model_state(model: torch.nn.Module, state: dict, source: str = "checkpoint", strict: bool = True) -> None:
    """``load_state_dict`` with a readable error instead of a page of key names."""
    state = {k.removeprefix("module."): v for k, v in state.items()}
    try:
        result = model.load_state_dict(state, strict=strict)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0:3]
        raise CheckpointError(f"{source} does not fit this model: {' '.join(first)[:500]}") from exc
    return result

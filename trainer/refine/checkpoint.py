"""The refiner's file format: what ``refiner.pth`` and ``checkpoint.pth`` hold, how they are written and read.

Both are the trainer's one checkpoint layout (:class:`trainer.training.checkpoint.Checkpoint`), saved
atomically with ``torch.save`` and read back with ``weights_only=True``:

- ``task`` (``"refine"``), ``model_name`` (cut, fastcut or cyclegan), ``categories`` (empty: a refiner has none);
- ``model``: the generator's state dict; ``global_step``, ``args`` (every training choice, a plain dict) and
  ``blendset_version``;
- the task state: ``generator`` (what builds it, :func:`generator_spec`) and ``step``;
- ``checkpoint.pth`` only: ``train_state`` (every network and optimizer) and ``rng_state``, to resume from.

Training (``train.py``) writes these files, ``apply.py`` and a resumed training read them; both import this
module and neither imports the other for it.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from shared.atomic import atomic_path
from trainer import __version__
from trainer.refine.data import RefineError
from trainer.refine.networks import ResnetGenerator
from trainer.training.checkpoint import Checkpoint

REFINER_FILE = "refiner.pth"
CHECKPOINT_FILE = "checkpoint.pth"


def generator_spec(ngf: int, n_down: int, n_blocks: int, channels: int = 3) -> dict[str, int]:
    """The generator description stored beside its weights."""
    return {"channels": channels, "ngf": ngf, "n_down": n_down, "n_blocks": n_blocks}


def build_generator(spec: dict[str, Any]) -> ResnetGenerator:
    """A fresh generator from its description (KeyError, TypeError or ValueError for a bad one)."""
    return ResnetGenerator(int(spec["channels"]), int(spec["ngf"]), int(spec["n_down"]), int(spec["n_blocks"]))


def refiner_record(
    model_name: str, generator: torch.nn.Module, spec: dict[str, int], step: int, args: dict[str, Any]
) -> dict[str, Any]:
    """What ``refiner.pth`` holds (``checkpoint.pth`` adds ``train_state`` and ``rng_state``)."""
    return Checkpoint(
        task="refine", model_name=model_name, model=generator.state_dict(), global_step=step, args=args,
        blendset_version=__version__, task_state={"generator": spec, "step": step},
    ).to_dict()  # fmt: skip


def save_refiner_file(record: dict[str, Any], path: str) -> None:
    """``torch.save`` to ``path`` atomically: a killed run leaves the previous file whole."""
    with atomic_path(path) as tmp:
        torch.save(record, tmp)


def load_refiner_file(path: str) -> dict[str, Any]:
    """Read a refiner checkpoint (a run folder means its ``refiner.pth``) with ``weights_only=True``;
    RefineError for a missing, corrupt or foreign file."""
    if os.path.isdir(path):
        path = os.path.join(path, REFINER_FILE)
    if not os.path.exists(path):
        raise RefineError(f"no refiner at {path!r} (train one with `blendset refine train`)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # the unpickler raises many types for a corrupt file (IndexError, EOFError, ...)
        raise RefineError(
            f"{path} is not a readable refiner checkpoint (corrupt or not a torch file): {type(e).__name__}: {e}"
        ) from None
    if not isinstance(ckpt, dict) or "task" not in ckpt:
        raise RefineError(f"{path} is not a Blendset checkpoint (no 'task' entry)")
    if ckpt["task"] != "refine":
        raise RefineError(f"{path} is a {ckpt['task']!r} checkpoint, not a refiner")
    for key in ("model", "generator", "args"):
        if key not in ckpt:
            raise RefineError(f"{path} is an incomplete refiner checkpoint: no {key!r} entry")
    return ckpt


def load_generator(path: str, device: str = "cpu") -> tuple[ResnetGenerator, dict[str, Any]]:
    """The refiner's generator in eval mode, and its checkpoint dict."""
    ckpt = load_refiner_file(path)
    spec = ckpt["generator"]
    try:
        net = build_generator(spec)
    except (KeyError, TypeError, ValueError) as e:
        raise RefineError(f"{path}: bad generator description {spec!r}: {e}") from None
    own = net.state_dict()
    missing = sorted(set(own) - set(ckpt["model"]))
    unexpected = sorted(set(ckpt["model"]) - set(own))
    shapes = sorted(k for k in own if k in ckpt["model"] and tuple(own[k].shape) != tuple(ckpt["model"][k].shape))
    if missing or unexpected or shapes:
        raise RefineError(
            f"{path}: weights do not match the generator it describes "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]}, wrong shape {shapes[:3]})"
        )
    net.load_state_dict(ckpt["model"])
    return net.to(device).eval(), ckpt

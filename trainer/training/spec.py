"""The one run specification of every training task: ``RunSpec``.

A run is described by one dataclass: the settings every task shares (sources, run folder, optimisation,
resume) plus one typed block of task settings (:class:`DetectOptions`, :class:`KeypointOptions`,
:class:`ClassifyOptions`, :class:`RegressOptions`). The commands build it from their flags
(``RunSpec.build(task, **flags)``), the library functions (``train_detector`` ...) from their keywords, and it
is saved flat as ``RUN/args.json`` and as ``args`` in every checkpoint. Unknown settings are refused by name,
before anything is written.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from shared.errors import BlendsetError

TASKS = ("detect", "keypoints", "classify", "regress")


class RunError(BlendsetError, RuntimeError):
    """A run that cannot start as asked (existing output, nothing to resume, bad source list or setting)."""


@dataclass
class DetectOptions:
    trainable_backbone_layers: int | None = None
    min_size: int = 800
    max_size: int = 1333


@dataclass
class KeypointOptions:
    """Keypoint R-CNN settings. ``oks_sigma`` is the OKS falloff per keypoint as a share of the object scale
    (``sqrt(area)``) for ``--val``; None means ``trainer.evaluation.keypoints.BOARD_SIGMA``."""

    trainable_backbone_layers: int | None = None
    min_size: int = 320
    max_size: int = 512
    oks_sigma: float | None = None


@dataclass
class ClassifyOptions:
    image_size: int = 224
    grayscale: bool = False
    padding: float = 0.1


@dataclass
class RegressOptions:
    targets: list[str] = field(default_factory=list)
    image_size: int = 128


TaskOptions = DetectOptions | KeypointOptions | ClassifyOptions | RegressOptions
OPTIONS = {
    "detect": DetectOptions, "keypoints": KeypointOptions, "classify": ClassifyOptions, "regress": RegressOptions,
}  # fmt: skip

# Where a task's defaults differ from RunSpec's (these are what `blendset train TASK --help` shows).
TASK_DEFAULTS: dict[str, dict[str, Any]] = {
    "detect": {"model": "fasterrcnn_mobilenet_v3_large_fpn", "batch_size": 4, "augment": "hflip", "warmup_iters": 100},
    "keypoints": {"model": "keypointrcnn_mobilenet_v3_large_fpn", "batch_size": 2, "lr": 0.01, "augment": "keypoints",
                  "warmup_iters": 100},
    "classify": {"model": "resnet18", "batch_size": 32, "augment": "basic"},
    "regress": {"model": "resnet18", "batch_size": 16, "lr": 1e-3, "optimizer": "adamw", "augment": "none",
                "device": "cpu", "workers": 0},
}  # fmt: skip


def parse_source(spec: str) -> tuple[str, float | None]:
    """``"synth/"`` -> ``("synth/", None)``; ``"real/:0.25"`` -> ``("real/", 0.25)`` (ratio in (0, 1])."""
    from trainer.data.mixing import parse_source as parse

    try:
        return parse(spec)
    except ValueError as exc:
        raise RunError(str(exc)) from exc


def normalize_sources(train: Sequence[str | Sequence]) -> list[tuple[str, float | None]]:
    """``["synth/", "real/:0.25"]`` or ``[("synth/", None), ("real/", 0.25)]`` -> list of (path, ratio)."""
    if isinstance(train, str):
        train = [train]
    if not train:
        raise RunError("at least one --train source is needed")
    out = []
    for item in train:
        path, ratio = parse_source(item) if isinstance(item, str) else (item[0], item[1])
        out.append((str(path), None if ratio is None else float(ratio)))
    return out


@dataclass
class RunSpec:
    """Everything that defines a training run. ``options`` holds the task's own settings."""

    task: str
    train: list[tuple[str, float | None]]
    out: str
    val: str | None = None
    model: str = "resnet18"
    epochs: int = 10
    batch_size: int = 4
    lr: float = 0.01
    optimizer: str = "sgd"
    weight_decay: float = 1e-4
    warmup_iters: int = 0
    weights: str = "none"
    freeze_backbone: bool = False
    augment: str | list = "none"
    balanced: bool = False
    seed: int = 0
    device: str = "auto"
    workers: int = 2
    resume: bool = False
    init_from: str | None = None
    amp: bool = False
    accum_steps: int = 1
    skip_bad: bool = False
    epoch_size: int | None = None
    max_steps_per_epoch: int | None = None
    tensorboard: bool = False
    options: TaskOptions = field(default_factory=DetectOptions)

    @classmethod
    def build(cls, task: str, **settings: Any) -> RunSpec:
        """A spec from flat settings (CLI flags or library keywords): shared fields and the task's own fields
        in one namespace, task defaults filled in, unknown names refused."""
        if task not in TASKS:
            raise RunError(f"unknown task {task!r}; choose from {', '.join(TASKS)}")
        option_cls = OPTIONS[task]
        common = {f.name for f in dataclasses.fields(cls)} - {"task", "options"}
        own = {f.name for f in dataclasses.fields(option_cls)}
        unknown = sorted(set(settings) - common - own)
        if unknown:
            raise RunError(f"train {task}: unknown setting(s) {', '.join(unknown)}")
        merged = {**TASK_DEFAULTS[task], **{k: v for k, v in settings.items() if k in common}}
        if "train" not in merged or "out" not in merged:
            raise RunError(f"train {task}: 'train' and 'out' are required")
        merged["train"] = normalize_sources(merged["train"])
        spec = cls(task=task, options=option_cls(**{k: v for k, v in settings.items() if k in own}), **merged)
        spec.check()
        return spec

    def check(self) -> None:
        """Ranges a run needs before it touches the disk."""
        for name in ("epochs", "batch_size", "accum_steps"):
            if getattr(self, name) < 1:
                raise RunError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise RunError(f"lr must be > 0, got {self.lr}")
        if self.optimizer not in ("sgd", "adamw"):
            raise RunError(f"unknown optimizer {self.optimizer!r} (sgd, adamw)")

    def to_args(self) -> dict[str, Any]:
        """The flat JSON form saved as ``RUN/args.json`` and as the checkpoint's ``args``."""
        args = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("options",)}
        args["train"] = [list(s) for s in self.train]
        args.update(dataclasses.asdict(self.options))
        return args

    @property
    def train_paths(self) -> list[str]:
        return [os.path.abspath(p) for p, _ in self.train]

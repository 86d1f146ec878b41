"""The one shape of progress reports and notes, for every long job: rendering, training, gap analysis, refining.

Library code takes ``progress: ProgressFn | None`` and ``note: Note`` and never draws anything itself, so the
same function runs under the CLI (``trainer/commands/progress.py`` draws tqdm bars on stderr), inside Blender
(the add-on feeds ``WindowManager.progress_update``), in a notebook or in a test that records the calls.

Standard library only: Blender's Python imports this too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Note", "ProgressFn", "Step", "silent"]


@dataclass(frozen=True)
class Step:
    """Where a long job stands: ``done`` of ``total`` units of ``stage`` (``total`` None when unknown).

    ``values`` carries what a person watching wants next to the bar (``loss``, ``lr``, ``img_s``,
    ``data_wait``, ``frame`` ...); a stage starts a new bar when its name changes.
    """

    stage: str
    done: int
    total: int | None = None
    values: Mapping[str, Any] = field(default_factory=dict)


ProgressFn = Callable[[Step], None]
"""Called after each unit of work with the job's :class:`Step`."""

Note = Callable[[str], None]
"""Called with one line for a person: what was skipped, resumed, written."""


def silent(message: str) -> None:
    """A :data:`Note` that says nothing (quiet runs, DDP ranks other than 0)."""

"""Launch the headless engine in a Blender process and follow its progress lines.

The engine runs in Blender: the binary (``--blender PATH``, env ``BLENDER``, or ``blender`` on PATH) or, when
there is none (or on request), the ``bpy`` module in a subprocess of this Python. Either way it is a separate
process, so torch in the CLI and Blender never share an interpreter. The child prints ``BLENDSET_PROGRESS
{json}`` lines (see ``blender_addon/headless.py``); this module parses them and hands them to a callback.
"""

from __future__ import annotations

import collections
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shared.errors import BlendsetError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HEADLESS = os.path.join(ROOT, "blender_addon", "headless.py")
PREFIX = "BLENDSET_"


class RenderError(BlendsetError, RuntimeError):
    """The Blender process failed; the message is the engine's own (or the tail of Blender's output)."""


@dataclass(frozen=True)
class RenderJob:
    config: str
    out: str
    scene: str | None = None
    scene_script: str | None = None
    count: int | None = None
    seed: int | None = None
    shard: str = "0/1"
    scene_args: str | None = None  # JSON object: keyword arguments of the scene script's build()


def find_blender(explicit: str | None = None) -> str | None:
    """``--blender``, else env ``BLENDER``, else ``blender`` on PATH, else None (use the bpy module)."""
    if explicit:
        return explicit
    return os.environ.get("BLENDER") or shutil.which("blender")


def have_bpy_module() -> bool:
    import importlib.util

    return importlib.util.find_spec("bpy") is not None


def build_command(job: RenderJob, blender: str | None) -> list[str]:
    """The command line: the binary with ``-b [scene] -P headless.py -- ...`` or this Python with headless.py."""
    args = ["--config", os.path.abspath(job.config), "--out", os.path.abspath(job.out), "--shard", job.shard]
    if job.count is not None:
        args += ["--count", str(job.count)]
    if job.seed is not None:
        args += ["--seed", str(job.seed)]
    if job.scene_script:
        args += ["--scene-script", os.path.abspath(job.scene_script)]
    if job.scene_args:
        args += ["--scene-args", job.scene_args]
    if blender is None:
        if job.scene:
            args += ["--scene", os.path.abspath(job.scene)]
        return [sys.executable, HEADLESS, *args]
    cmd = [blender, "-b"]
    if job.scene:
        cmd.append(os.path.abspath(job.scene))
    else:
        cmd.append("--factory-startup")
    return [*cmd, "--python-exit-code", "2", "-P", HEADLESS, "--", *args]


def parse_line(line: str) -> tuple[str, Any] | None:
    """``BLENDSET_KIND payload`` -> (kind, payload as JSON when it parses, else text); None for other lines."""
    if not line.startswith(PREFIX):
        return None
    kind, _, rest = line[len(PREFIX) :].rstrip("\n").partition(" ")
    try:
        return kind, json.loads(rest)
    except json.JSONDecodeError:
        return kind, rest


def run_render(
    job: RenderJob,
    blender: str | None = None,
    on_event: Callable[[str, Any], None] | None = None,
) -> dict[str, Any]:
    """Run one render process to the end. ``on_event(kind, payload)`` gets START, PROGRESS, NOTE and DONE.
    Returns the DONE payload; raises :class:`RenderError` with the engine's message when the process fails."""
    cmd = build_command(job, blender)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, bufsize=1)
    errors: list[str] = []
    tail: collections.deque[str] = collections.deque(maxlen=30)

    def read_stderr() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            parsed = parse_line(line)
            if parsed and parsed[0] == "ERROR":
                errors.append(str(parsed[1]))
            else:
                tail.append(line.rstrip())

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    done: dict[str, Any] = {}
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            parsed = parse_line(line)
            if parsed is None:
                tail.append(line.rstrip())
                continue
            kind, payload = parsed
            if kind == "DONE":
                done = payload
            if on_event is not None:
                on_event(kind, payload)
        code = proc.wait()
    except BaseException:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        raise
    reader.join(timeout=5)
    if code != 0:
        if errors:
            raise RenderError(errors[-1])
        raise RenderError(f"Blender exited with status {code}:\n" + "\n".join(tail))
    return done

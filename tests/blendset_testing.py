"""Helpers for running Blender from tests (imported by tests/conftest.py and the engine tests).

Blender work always runs in a subprocess (the bpy module through this interpreter, or the binary), never in the
pytest process: torch may be loaded there, and a crash or leak in Blender must not take the test run with it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEADLESS = os.path.join(ROOT, "blender_addon", "headless.py")
BASIC_SCENE = os.path.join(ROOT, "scenes", "basic", "build.py")
BLENDER_KINDS = ("bpy", "binary")


def find_blender_binary() -> str | None:
    """env BLENDER, else ``blender`` on PATH, else None."""
    env = os.environ.get("BLENDER")
    if env:
        return env
    return shutil.which("blender")


def have_bpy_module() -> bool:
    return importlib.util.find_spec("bpy") is not None


def blender_command(kind: str, script: str, args: list[str]) -> list[str]:
    """The command line that runs ``script`` with ``args`` in the Blender of ``kind`` (skips when absent)."""
    if kind == "bpy":
        if not have_bpy_module():
            pytest.skip("the bpy module is not installed in this Python")
        return [sys.executable, script, *args]
    binary = find_blender_binary()
    if binary is None:
        pytest.skip("no Blender binary (set BLENDER or put blender on PATH)")
    return [binary, "-b", "--factory-startup", "-P", script, "--", *args]


def run_blender(kind: str, script: str, args: list[str], timeout: float = 300, check: bool = True):
    """Run a script in Blender; returns the CompletedProcess. With ``check``, a non-zero exit fails the test
    showing the tail of the output."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.run(
        blender_command(kind, script, args), capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT
    )
    if check and proc.returncode != 0:
        pytest.fail(f"Blender ({kind}) exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def write_config(path: str, overrides: dict | None = None, base: str | None = None) -> str:
    """A config file: scenes/basic's default config (or ``base``) with top-level ``overrides`` replaced."""
    with open(base or os.path.join(ROOT, "scenes", "basic", "default_config.json"), encoding="utf-8") as f:
        cfg = json.load(f)
    cfg.update(overrides or {})
    with open(path, "w", encoding="utf-8") as f:
        json.dump(cfg, f, indent=2)
    return path


TINY = {"render": {"resolution": [96, 72], "samples": 2}, "count": 6}


def render_basic(kind: str, out: str, cfg_path: str, extra: list[str] | None = None, check: bool = True):
    args = ["--config", cfg_path, "--out", out, "--scene-script", BASIC_SCENE, *(extra or [])]
    return run_blender(kind, HEADLESS, args, check=check)

"""Fixtures shared by every test folder: finding Blender and a small engine-rendered dataset.

Blender work always runs in a subprocess (the bpy module through this interpreter, or the binary), never in the
pytest process: torch may be loaded here, and a crash or leak in Blender must not take the test run with it.

``blender_kind`` parametrizes a test over both Blenders: ``"bpy"`` (the bpy 4.5 module of this venv) and
``"binary"`` (env ``BLENDER`` or ``blender`` on PATH, 5.2 in CI); each is skipped when absent.
"""

from __future__ import annotations

import os
import sys

import pytest

sys.path.append(os.path.dirname(os.path.abspath(__file__)))  # blendset_testing; appended: never shadows packages
from blendset_testing import TINY, find_blender_binary, have_bpy_module, render_basic, write_config  # noqa: E402


@pytest.fixture(scope="session")
def blender_binary() -> str:
    """Path of a real Blender binary (env BLENDER or ``blender`` on PATH); skips the test when there is none."""
    path = find_blender_binary()
    if path is None:
        pytest.skip("no Blender binary (set BLENDER or put blender on PATH)")
    return path


@pytest.fixture(scope="session")
def basic_dataset(tmp_path_factory) -> str:
    """scenes/basic rendered by the engine: 6 frames at 96x72, 2 samples, seed 0, in a subprocess (the bpy
    module when installed, else the binary). Returns the dataset folder (annotations.json, images/, ...).
    Read-only for tests: copy it before changing anything."""
    root = tmp_path_factory.mktemp("basic_dataset")
    cfg = write_config(str(root / "config.json"), TINY)
    kind = "bpy" if have_bpy_module() else "binary"
    out = str(root / "data")
    render_basic(kind, out, cfg)
    return out

"""The real Blender binary with its UI under Xvfb: demo scene, add-on installed from the built zip, Blendset tab
open with every panel expanded, one Preview click. Saves test-artifacts/blendset_panel.png (the sidebar),
test-artifacts/blendset_window.png and test-artifacts/blendset_preview.png for the README.

Regenerate by hand (the command docs/artists.md gives)::

    python scripts/build_addon.py --out dist
    BLENDER_USER_RESOURCES=$(mktemp -d) BLENDSET_CHROOT_CMD="bash $PWD/tests/ui/run_ui_blender.sh" \\
        ~/.cache/blendset/blender 1100x3900 -P tests/ui/panel_screenshot.py -- $PWD/dist/blendset-0.1.0.zip OUT
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from blendset_testing import ROOT

HERE = os.path.dirname(os.path.abspath(__file__))
ARTIFACTS = os.path.join(ROOT, "test-artifacts")
SIZE = "1100x3900"


def _ui_command(binary: str, script_args: list[str]) -> tuple[list[str], dict[str, str]]:
    """The provisioned chroot wrapper runs any command given in BLENDSET_CHROOT_CMD; a plain binary needs
    xvfb-run on this machine."""
    env = dict(os.environ)
    runner = os.path.join(HERE, "run_ui_blender.sh")
    with open(binary, "rb") as f:
        is_wrapper = b"BLENDSET_CHROOT_CMD" in f.read(4096)
    if is_wrapper:
        env["BLENDSET_CHROOT_CMD"] = f"bash {runner}"
        return [binary, SIZE, *script_args], env
    if shutil.which("xvfb-run") is None:
        pytest.skip("no xvfb-run for the Blender UI")
    bindir = os.path.join(os.path.dirname(binary))
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    return ["bash", runner, SIZE, *script_args], env


def _columns(image, n: int):
    """The tall sidebar cut into ``n`` side-by-side columns (easier to read in a README)."""
    from PIL import Image

    w, h = image.size
    step = -(-h // n)
    sheet = Image.new("RGB", (w * n + 8 * (n - 1), step), (40, 40, 40))
    for i in range(n):
        sheet.paste(image.crop((0, i * step, w, min(h, (i + 1) * step))), (i * (w + 8), 0))
    return sheet


@pytest.mark.blender
def test_panel_screenshot(blender_binary: str, tmp_path) -> None:
    from PIL import Image

    dist = tmp_path / "dist"
    zip_path = subprocess.run(
        [sys.executable, os.path.join(ROOT, "scripts", "build_addon.py"), "--out", str(dist)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    out = tmp_path / "shots"
    cmd, env = _ui_command(blender_binary, ["-P", os.path.join(HERE, "panel_screenshot.py"), "--", zip_path, str(out)])
    env["BLENDER_USER_RESOURCES"] = str(tmp_path / "user")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
    assert proc.returncode == 0 and (out / "window.png").exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    ours = [line for line in (proc.stdout + proc.stderr).splitlines() if "File" in line and "blendset" in line]
    assert not ours, "\n".join(ours)  # a traceback through the add-on: a panel that failed to draw

    region = json.loads((out / "regions.json").read_text())
    window = Image.open(out / "window.png").convert("RGB")
    assert window.size == (region["window_width"], region["window_height"])
    top = region["window_height"] - (region["y"] + region["height"])  # Blender counts from the bottom
    panel = window.crop((region["x"], top, region["x"] + region["width"], top + region["height"]))
    pixels = np.asarray(panel, dtype=np.float32)
    assert region["width"] > 200 and pixels.std() > 10, "the sidebar is blank"
    # the tab is long: its lowest panel (Preview & Generate) must be on screen, i.e. content reaches far down
    rows_with_content = np.nonzero(pixels.std(axis=(1, 2)) > 5)[0]
    assert rows_with_content.max() > 0.6 * region["height"]

    preview = np.asarray(Image.open(out / "preview.png").convert("RGB"), dtype=np.int16)
    assert preview.shape == (120, 160, 3)
    cube = np.array([0.9, 0.3, 0.1]) * 255  # the class colour boxes and names are drawn in
    assert (np.abs(preview - cube).max(axis=2) <= 2).sum() > 20
    visible = np.array([0.2, 1.0, 0.3]) * 255  # the cube's keypoints (overlay.KEYPOINT_VISIBLE / _HIDDEN)
    hidden = np.array([1.0, 0.85, 0.1]) * 255
    assert sum((np.abs(preview - c).max(axis=2) <= 2).sum() for c in (visible, hidden)) >= 8

    # Generate ran as a modal operator from a click, and Esc after two frames cancelled it cleanly
    run = json.loads((out / "generate.json").read_text())
    assert run["esc_sent"] and run["message"].startswith("Cancelled"), run
    assert 2 <= run["done"] < run["total"] == 4, run
    dataset = out / "dataset"
    coco = json.loads((dataset / "annotations.json").read_text())
    assert len(coco["images"]) == len(os.listdir(dataset / "frames")) == run["done"]

    os.makedirs(ARTIFACTS, exist_ok=True)
    generating = Image.open(out / "generating.png").convert("RGB")
    generating.crop((region["x"], top, region["x"] + region["width"], top + region["height"])).save(
        os.path.join(ARTIFACTS, "blendset_generating.png")
    )
    panel.save(os.path.join(ARTIFACTS, "blendset_panel.png"))
    window.save(os.path.join(ARTIFACTS, "blendset_window.png"))
    _columns(panel, 3).save(os.path.join(ARTIFACTS, "blendset_panel_columns.png"))
    shutil.copy(out / "preview.png", os.path.join(ARTIFACTS, "blendset_preview.png"))

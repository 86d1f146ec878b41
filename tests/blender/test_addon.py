"""The add-on as an artist gets it: the zip from `make addon`, installed with Blender's extension installer into
a throw-away user folder, enabled, driven through every operator (tests/blender/addon_driver.py), on the bpy 4.5
module and on the real Blender binary (5.2 in CI). Blender runs in a subprocess, never in the pytest process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from blendset_testing import BLENDER_KINDS, HEADLESS, ROOT, blender_command, find_blender_binary, run_blender

DRIVER = os.path.join(ROOT, "tests", "blender", "addon_driver.py")


@pytest.fixture(scope="module")
def addon_zip(tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "scripts", "build_addon.py"), "--out", str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    return proc.stdout.strip()


def test_zip_holds_manifest_addon_and_a_real_copy_of_shared(addon_zip: str) -> None:
    with zipfile.ZipFile(addon_zip) as zf:
        names = zf.namelist()
        shared_config = zf.read("blendset/shared/config.py")
    with open(os.path.join(ROOT, "shared", "config.py"), "rb") as f:
        assert shared_config == f.read()  # the file itself, not a link
    for required in (
        "blendset/blender_manifest.toml",
        "blendset/__init__.py",
        "blendset/ui.py",
        "blendset/props_config.py",
        "blendset/engine/runner.py",
        "blendset/headless.py",
        "blendset/operators/__init__.py",
        "blendset/engine/randomize/__init__.py",
        "blendset/shared/errors.py",
        "blendset/shared/atomic.py",
        "blendset/shared/progress.py",
    ):
        assert required in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc") or "/tests/" in n]
    assert all(n.startswith("blendset/") for n in names)


@pytest.mark.blender
@pytest.mark.parametrize("kind", BLENDER_KINDS)
def test_every_operator_on_the_installed_addon(kind: str, addon_zip: str, tmp_path, monkeypatch) -> None:
    from pycocotools import mask as mask_utils

    monkeypatch.setenv("BLENDER_USER_RESOURCES", str(tmp_path / "user"))  # install into a throw-away profile
    work = tmp_path / "work"
    proc = run_blender(kind, DRIVER, [addon_zip, str(work)], timeout=400)
    assert "ADDON_DRIVER_OK" in proc.stdout, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads((work / "result.json").read_text())
    assert result["legacy_install"]

    # export -> import -> export gives the same file, and it is a config the engine accepts
    exported = open(result["exported"], "rb").read()
    assert exported == open(result["exported_again"], "rb").read()
    cfg = json.loads(exported)
    assert cfg["preset"] == "angle" and cfg["camera"]["azimuth_deg"] == {
        "min": -90.0,
        "max": 90.0,
        "distribution": "uniform",
    }
    assert [c["name"] for c in cfg["classes"]] == ["thing", "ball"] and cfg["classes"][0]["id"] == 0

    # the generated dataset (1 frame, cancel, resume 2 more) is one valid COCO file with 3 images
    out = result["dataset"]
    coco = json.load(open(os.path.join(out, "annotations.json")))
    assert [im["id"] for im in coco["images"]] == [1, 2, 3]
    assert {c["name"]: c["id"] for c in coco["categories"]} == {"thing": 0, "ball": 1}
    assert coco["annotations"], "no object annotated in 3 frames"
    ids = [a["id"] for a in coco["annotations"]]
    assert len(ids) == len(set(ids))
    for ann in coco["annotations"]:
        m = mask_utils.decode(ann["segmentation"])
        assert m.sum() == ann["area"] == ann["attributes"]["visible_pixels"]
        ys, xs = np.nonzero(m)
        assert ann["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
    for im in coco["images"]:
        assert os.path.exists(os.path.join(out, "images", im["file_name"]))

    # headless hand-off: the exported file renders unchanged from the saved .blend
    headless_out = str(tmp_path / "headless")
    cfg_args = ["--config", result["exported"], "--out", headless_out, "--count", "1"]
    if kind == "bpy":
        cmd = blender_command(kind, HEADLESS, [*cfg_args, "--scene", result["blend"]])
    else:
        cmd = [find_blender_binary(), "-b", result["blend"], "--factory-startup", "-P", HEADLESS, "--", *cfg_args]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    headless = json.load(open(os.path.join(headless_out, "annotations.json")))
    assert len(headless["images"]) == 1
    assert {c["name"] for c in headless["categories"]} == {"thing", "ball"}


@pytest.mark.blender
def test_blender_validates_the_extension_zip(blender_binary: str, addon_zip: str) -> None:
    proc = subprocess.run(
        [blender_binary, "--factory-startup", "--command", "extension", "validate", addon_zip],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert proc.returncode == 0 and "Success parsing TOML" in proc.stdout, proc.stdout[-2000:] + proc.stderr[-2000:]

"""Whole-dataset guarantees on both Blenders: same seed -> same bytes, shards merged == one run, and a run
killed with SIGKILL resumes to exactly the uninterrupted result."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

sys.path.append(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from blendset_testing import (  # noqa: E402
    BASIC_SCENE,
    BLENDER_KINDS,
    HEADLESS,
    TINY,
    blender_command,
    have_bpy_module,
    render_basic,
    write_config,
)

pytestmark = pytest.mark.blender


def _files(folder: str) -> dict[str, bytes]:
    """Every dataset file (relative path -> bytes), engine scratch excluded."""
    out = {}
    for dirpath, _, names in os.walk(folder):
        for n in names:
            rel = os.path.relpath(os.path.join(dirpath, n), folder)
            if not rel.startswith(".tmp") and "/.tmp" not in rel:
                with open(os.path.join(dirpath, n), "rb") as f:
                    out[rel] = f.read()
    return out


@pytest.fixture(scope="module", params=BLENDER_KINDS)
def runs(request, tmp_path_factory):
    """A reference run of scenes/basic (6 frames); the bpy kind reuses the session's basic_dataset."""
    kind = request.param
    root = tmp_path_factory.mktemp(f"dataset-{kind}")
    cfg = write_config(str(root / "config.json"), TINY)
    if kind == "bpy" and have_bpy_module():
        reference = request.getfixturevalue("basic_dataset")
    else:
        reference = str(root / "reference")
        render_basic(kind, reference, cfg)
    return {"kind": kind, "root": root, "cfg": cfg, "reference": reference, "files": _files(reference)}


def test_reference_is_a_valid_coco(runs):
    from pycocotools.coco import COCO

    coco = COCO(os.path.join(runs["reference"], "annotations.json"))
    assert len(coco.getImgIds()) == TINY["count"]
    assert len(coco.getAnnIds()) > 0
    assert sorted(coco.getCatIds()) == [0, 1, 2]


def test_same_seed_gives_identical_bytes(runs):
    again = str(runs["root"] / "again")
    render_basic(runs["kind"], again, runs["cfg"])
    files = _files(again)
    assert sorted(files) == sorted(runs["files"])
    differing = [k for k in files if files[k] != runs["files"][k]]
    assert differing == []


def test_shards_merged_equal_one_run(runs):
    from shared.merge import merge_datasets

    shard_dirs = []
    for i in range(2):
        d = str(runs["root"] / f"shard{i}")
        render_basic(runs["kind"], d, runs["cfg"], ["--shard", f"{i}/2"])
        shard_dirs.append(d)
    with open(os.path.join(shard_dirs[0], "annotations.json")) as f:
        assert len(json.load(f)["images"]) == 3  # frames 0-2 only
    merged = str(runs["root"] / "merged")
    merge_datasets(shard_dirs, merged)
    files = _files(merged)
    assert sorted(files) == sorted(runs["files"])
    assert [k for k in files if files[k] != runs["files"][k]] == []


def test_sigkill_then_rerun_resumes_exactly(runs):
    out = str(runs["root"] / "killed")
    args = ["--config", runs["cfg"], "--out", out, "--scene-script", BASIC_SCENE]
    proc = subprocess.Popen(
        blender_command(runs["kind"], HEADLESS, args),
        stdout=subprocess.PIPE,
        text=True,
        stderr=subprocess.DEVNULL,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    done = 0
    for line in proc.stdout:
        if line.startswith("BLENDSET_PROGRESS"):
            done = json.loads(line.split(" ", 1)[1])["done"]
            if done >= 2:
                os.kill(proc.pid, signal.SIGKILL)
                break
    proc.wait(timeout=60)
    assert done >= 2 and proc.returncode == -signal.SIGKILL
    records = os.listdir(os.path.join(out, "frames"))
    assert 2 <= len([r for r in records if r.endswith(".json") and not r.startswith(".")]) < TINY["count"]
    assert not os.path.exists(os.path.join(out, "annotations.json"))
    rerun = render_basic(runs["kind"], out, runs["cfg"])
    start = next(
        json.loads(line.split(" ", 1)[1]) for line in rerun.stdout.splitlines() if line.startswith("BLENDSET_START")
    )
    assert start["pending"] == TINY["count"] - len(records)
    files = _files(out)
    assert sorted(files) == sorted(runs["files"])
    assert [k for k in files if files[k] != runs["files"][k]] == []

"""Merging shard folders (shared.merge and ``blendset merge``/``render``), on the engine-rendered basic dataset.

The shards here are cut from one real render, so the expected merge result is that render, byte for byte.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest
from click.testing import CliRunner

from shared import layout
from shared.merge import MergeError, frame_ranges, frames_of_shard, merge_datasets, parse_shard

pytestmark = pytest.mark.blender


def _shard(src: str, dst: str, frames: list[int]) -> str:
    """A shard folder holding ``frames`` of ``src`` (files copied as the engine wrote them)."""
    os.makedirs(dst)
    shutil.copy(os.path.join(src, "config.json"), dst)
    for sub in layout.SUBDIRS:
        if not os.path.isdir(os.path.join(src, sub)):
            continue
        os.makedirs(os.path.join(dst, sub))
        for name in os.listdir(os.path.join(src, sub)):
            if int(name.split(".")[0]) in frames:
                shutil.copy(os.path.join(src, sub, name), os.path.join(dst, sub, name))
    return dst


def _bytes(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def test_shard_plan_covers_every_frame_once():
    for count in (0, 1, 5, 6, 17):
        for n in (1, 2, 3, 7):
            frames = [f for i in range(n) for f in frames_of_shard(count, i, n)]
            assert frames == list(range(count))
    assert parse_shard("1/4") == (1, 4)
    with pytest.raises(ValueError, match="i/n"):
        parse_shard("4")
    with pytest.raises(ValueError, match="0 <= i < n"):
        parse_shard("4/4")
    assert frame_ranges([0, 1, 2, 5, 7, 8]) == "0-2, 5, 7-8"


def test_merge_of_cut_shards_is_byte_identical(basic_dataset, tmp_path):
    a = _shard(basic_dataset, str(tmp_path / "a"), [0, 1, 2, 3])
    b = _shard(basic_dataset, str(tmp_path / "b"), [3, 4, 5])  # frame 3 in both, identical: taken once
    out = str(tmp_path / "merged")
    coco = merge_datasets([a, b], out)
    assert len(coco["images"]) == 6
    assert _bytes(os.path.join(out, "annotations.json")) == _bytes(os.path.join(basic_dataset, "annotations.json"))
    assert _bytes(os.path.join(out, "config.json")) == _bytes(os.path.join(basic_dataset, "config.json"))
    for name in os.listdir(os.path.join(basic_dataset, "images")):
        assert _bytes(os.path.join(out, "images", name)) == _bytes(os.path.join(basic_dataset, "images", name))


def test_merge_names_missing_frames(basic_dataset, tmp_path):
    a = _shard(basic_dataset, str(tmp_path / "a"), [0, 1, 2])
    with pytest.raises(MergeError, match=r"frames 3-5 of 0-5"):
        merge_datasets([a], str(tmp_path / "out"))
    coco = merge_datasets([a], str(tmp_path / "partial"), allow_missing=True)
    assert len(coco["images"]) == 3


def test_merge_refuses_other_config(basic_dataset, tmp_path):
    a = _shard(basic_dataset, str(tmp_path / "a"), [0, 1, 2])
    b = _shard(basic_dataset, str(tmp_path / "b"), [3, 4, 5])
    cfg_path = os.path.join(b, "config.json")
    cfg = json.loads(_bytes(cfg_path))
    cfg["seed"] = 99
    with open(cfg_path, "w") as f:
        json.dump(cfg, f)
    with pytest.raises(MergeError, match="config hash"):
        merge_datasets([a, b], str(tmp_path / "out"))


def test_merge_refuses_same_frame_with_different_content(basic_dataset, tmp_path):
    a = _shard(basic_dataset, str(tmp_path / "a"), [0, 1, 2, 3])
    b = _shard(basic_dataset, str(tmp_path / "b"), [3, 4, 5])
    rec_path = layout.frame_record_path(b, 3)
    rec = json.loads(_bytes(rec_path))
    rec["annotations"][0]["bbox"][0] += 1
    with open(rec_path, "w") as f:
        json.dump(rec, f)
    with pytest.raises(MergeError, match="frame 3 is in .* with different content"):
        merge_datasets([a, b], str(tmp_path / "out"))


def test_merge_refuses_different_categories(basic_dataset, tmp_path):
    a = _shard(basic_dataset, str(tmp_path / "a"), [0, 1, 2])
    b = _shard(basic_dataset, str(tmp_path / "b"), [3, 4, 5])
    rec_path = layout.frame_record_path(b, 4)
    rec = json.loads(_bytes(rec_path))
    rec["categories"][0]["name"] = "box"
    with open(rec_path, "w") as f:
        json.dump(rec, f)
    with pytest.raises(MergeError, match="categories"):
        merge_datasets([a, b], str(tmp_path / "out"))


def test_merge_command(basic_dataset, tmp_path):
    from trainer.cli import cli

    a = _shard(basic_dataset, str(tmp_path / "a"), [0, 1, 2])
    b = _shard(basic_dataset, str(tmp_path / "b"), [3, 4, 5])
    out = str(tmp_path / "merged")
    result = CliRunner().invoke(cli, ["merge", a, b, "--out", out, "-q"])
    assert result.exit_code == 0, result.output
    assert _bytes(os.path.join(out, "annotations.json")) == _bytes(os.path.join(basic_dataset, "annotations.json"))
    result = CliRunner().invoke(cli, ["merge", a, "--out", str(tmp_path / "m2"), "-q"])
    assert result.exit_code == 2 and "frames 3-5" in result.output  # a BlendsetError (MergeError): status 2


def test_render_command_bad_config_and_ray_wiring(tmp_path, monkeypatch):
    from trainer.cli import cli
    from trainer.rendering import ray_cluster as ray_render

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"render": {"samples": -1}}))
    result = CliRunner().invoke(cli, ["render", "--config", str(bad), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "render.samples" in result.output

    calls = []
    monkeypatch.setattr(ray_render, "render_with_ray", lambda *a: calls.append(a))
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"count": 7, "seed": 3}))
    args = ["render", "--config", str(good), "--out", str(tmp_path / "o"), "--ray", "auto", "--shards", "3", "-q"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    config_path, out, count, seed, shards, address = calls[0][:6]
    assert (count, seed, shards, address) == (7, 3, 3, "auto")


def test_render_command_checks_scene_args(tmp_path):
    from trainer.cli import cli

    good = tmp_path / "good.json"
    good.write_text(json.dumps({"count": 1}))
    base = ["render", "--config", str(good), "--out", str(tmp_path / "o"), "-q"]
    script = os.path.join(os.path.dirname(__file__), "..", "..", "scenes", "basic", "build.py")
    result = CliRunner().invoke(cli, [*base, "--scene-args", "{}"])
    assert result.exit_code == 2 and "--scene-args needs --scene-script" in result.output
    result = CliRunner().invoke(cli, [*base, "--scene-script", script, "--scene-args", "{nope"])
    assert result.exit_code == 2 and "not valid JSON" in result.output
    result = CliRunner().invoke(cli, [*base, "--scene-script", script, "--scene-args", "[1]"])
    assert result.exit_code == 2 and "must be a JSON object" in result.output

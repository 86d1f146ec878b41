"""The pure parts of scale-out: which frames a shard renders, where it goes, how a gap is named, and the
torchrun command line that ``--nproc`` runs. No Ray, no Blender, no torch."""

from __future__ import annotations

import json
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trainer.commands import launch
from trainer.rendering import ray_cluster as ray_render


@settings(deadline=None, max_examples=200)
@given(st.integers(0, 5000), st.integers(1, 64))
def test_shards_partition_the_frames_in_order(count, n):
    frames = [f for i in range(n) for f in ray_render.shard_frames(count, i, n)]
    assert frames == list(range(count))
    sizes = [len(ray_render.shard_frames(count, i, n)) for i in range(n)]
    assert max(sizes) - min(sizes) <= 1


def test_shard_frames_agree_with_the_engine():
    from shared.merge import frames_of_shard

    for count, n in [(10, 3), (7, 7), (3, 5), (50_000, 64)]:
        for i in range(n):
            assert list(ray_render.shard_frames(count, i, n)) == frames_of_shard(count, i, n)
    with pytest.raises(ValueError, match="0 <= index < num_shards"):
        ray_render.shard_frames(10, 4, 4)


def test_shard_locations_sort_and_stay_under_out(tmp_path):
    names = [ray_render.shard_name(i, 12) for i in range(12)]
    assert names == sorted(names) and names[3] == "shard-00003-of-00012"
    assert ray_render.shard_location(str(tmp_path), 3, 12) == os.path.join(str(tmp_path), "shards", names[3])
    assert ray_render.shard_location("s3://b/ds/", 3, 12) == "s3://b/ds/shards/" + names[3]


def _fake_shard(folder, frames):
    os.makedirs(os.path.join(folder, "frames"))
    for f in frames:
        with open(os.path.join(folder, "frames", f"{f:06d}.json"), "w") as fh:
            json.dump({"frame": f}, fh)


def test_check_shards_names_the_incomplete_shard(tmp_path):
    dirs = [str(tmp_path / f"s{i}") for i in range(3)]
    _fake_shard(dirs[0], [0, 1, 2])
    _fake_shard(dirs[1], [3, 5])
    _fake_shard(dirs[2], [6, 7, 8, 9])
    with pytest.raises(ray_render.RenderClusterError) as info:
        ray_render.check_shards(dirs, 10)
    assert "shard 1/3" in str(info.value) and "lacks frames 4" in str(info.value)
    assert "shard 0/3" not in str(info.value) and "shard 2/3" not in str(info.value)
    _fake_shard(str(tmp_path / "s1b"), [3, 4, 5])
    ray_render.check_shards([dirs[0], str(tmp_path / "s1b"), dirs[2]], 10)  # complete: no error


def test_render_with_ray_rejects_bad_arguments_before_starting(tmp_path):
    cfg = tmp_path / "c.json"
    cfg.write_text("{}")
    with pytest.raises(ValueError, match="num_shards"):
        ray_render.render_with_ray(str(cfg), str(tmp_path / "o"), 4, 0, 0)
    with pytest.raises(FileNotFoundError, match="scene"):
        ray_render.render_with_ray(str(cfg), str(tmp_path / "o"), 4, 0, 2, scene=str(tmp_path / "no.blend"))


def test_nproc_is_stripped_and_torchrun_gets_the_rest():
    args = ["train", "classify", "--train", "d/", "--nproc", "4", "--out", "r", "--nproc=4"]
    assert launch.strip_nproc(args) == ["train", "classify", "--train", "d/", "--out", "r"]
    cmd = launch.torchrun_command(4, args)
    assert cmd[1:6] == ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node=4", "-m"]
    assert cmd[6:] == ["trainer", "train", "classify", "--train", "d/", "--out", "r"]

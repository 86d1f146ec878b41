"""Rendering on a local Ray cluster: 4 shards, two of them killed mid-way, equal to one uninterrupted render.

One real cluster (``ray.init(num_cpus=2)``, no dashboard, 100 MB object store) is shared by the module. The
renders are real (scenes/basic through the bpy module in child processes, 64x48, 1 sample). The kills are real
SIGKILLs sent from a watcher thread once a shard has written its first frame record:

- shard 1: its Blender process (the task sees a signal exit and raises ShardPreempted, which Ray retries);
- shard 2: its Ray worker process (Ray sees a dead worker and re-runs the task; the Blender child must die with
  it, or the retry would race a zombie writer).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from trainer.rendering import ray_cluster as ray_render
from trainer.rendering import storage

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from blendset_testing import BASIC_SCENE, ROOT, have_bpy_module, write_config  # noqa: E402

pytestmark = [
    pytest.mark.blender,
    pytest.mark.slow,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the kill watcher reads /proc"),
]

COUNT = 12  # 3 frames per shard: the kill after the first record leaves two frames to render
SEED = 5
NUM_SHARDS = 4
SMALL = {"render": {"resolution": [64, 48], "samples": 1}, "count": COUNT}


@pytest.fixture(scope="module")
def ray_cluster():
    if not have_bpy_module():
        pytest.skip("the bpy module is not installed in this Python")
    ray = pytest.importorskip("ray")
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=100 * 1024 * 1024,
        log_to_driver=False,
        configure_logging=False,
    )
    yield ray
    ray.shutdown()


def _files(folder: str) -> dict[str, bytes]:
    """Every dataset file (relative path -> bytes); shard folders, logs and engine scratch left out."""
    out = {}
    for dirpath, dirnames, names in os.walk(folder):
        dirnames[:] = [d for d in dirnames if d != "shards" and not d.startswith(".")]
        for name in names:
            if name.startswith("."):
                continue
            full = os.path.join(dirpath, name)
            with open(full, "rb") as f:
                out[os.path.relpath(full, folder)] = f.read()
    return out


def _cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def _ppid(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def _blender_of(shard_dir: str) -> int | None:
    """The live Blender (headless.py) process rendering into ``shard_dir``."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            args = _cmdline(int(entry))
            if any(a.endswith("headless.py") for a in args) and shard_dir in args:
                return int(entry)
    return None


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class Killer(threading.Thread):
    """SIGKILLs shard 1's Blender and shard 2's Ray worker once each has written its first frame record."""

    def __init__(self, out: str):
        super().__init__(daemon=True)
        self.dirs = {i: ray_render.shard_location(out, i, NUM_SHARDS) for i in (1, 2)}
        self.killed: dict[int, dict] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set() and len(self.killed) < 2:
            for i, d in self.dirs.items():
                if i in self.killed or ray_render.count_frame_records(d) < 1:
                    continue
                pid = _blender_of(d)
                if pid is None:
                    continue
                done = ray_render.count_frame_records(d)
                if i == 1:
                    os.kill(pid, signal.SIGKILL)
                    self.killed[i] = {"pid": pid, "frames_done": done}
                else:
                    worker = _ppid(pid)
                    assert any("default_worker" in a or "ray" in a for a in _cmdline(worker)), _cmdline(worker)
                    os.kill(worker, signal.SIGKILL)
                    deadline = time.time() + 10
                    while _alive(pid) and time.time() < deadline:
                        time.sleep(0.05)
                    self.killed[i] = {"pid": pid, "worker": worker, "frames_done": done, "child_alive": _alive(pid)}
            time.sleep(0.02)


@pytest.fixture(scope="module")
def renders(ray_cluster, tmp_path_factory):
    root = tmp_path_factory.mktemp("ray_render")
    cfg = write_config(str(root / "config.json"), SMALL)
    single = str(root / "single")
    proc = subprocess.run(
        [sys.executable, "-m", "trainer", "render", "--config", cfg, "--out", single, "--count", str(COUNT),
         "--seed", str(SEED), "--scene-script", BASIC_SCENE, "--in-process", "-q"],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = str(root / "cluster")
    killer = Killer(out)
    killer.start()
    calls: list[tuple[int, int]] = []
    try:
        summary = ray_render.render_with_ray(
            cfg, out, COUNT, SEED, NUM_SHARDS, scene_script=BASIC_SCENE, progress=lambda d, t: calls.append((d, t))
        )
    finally:
        killer.stop.set()
        killer.join(timeout=5)
    return {"root": root, "cfg": cfg, "single": single, "out": out, "summary": summary, "killer": killer,
            "progress": calls}  # fmt: skip


def test_killed_shards_are_retried_and_the_result_equals_one_process(renders):
    killer, summary = renders["killer"], renders["summary"]
    assert set(killer.killed) == {1, 2}, f"the watcher did not get to kill both shards: {killer.killed}"
    assert all(0 < k["frames_done"] < COUNT // NUM_SHARDS for k in killer.killed.values()), killer.killed
    assert killer.killed[2]["child_alive"] is False  # Blender died with its Ray worker
    attempts = {s["index"]: len(s["attempts"]) for s in summary["shards"]}
    assert attempts[1] >= 2 and attempts[2] >= 2, attempts
    assert sorted(summary["retried"]) == sorted(i for i, n in attempts.items() if n > 1)
    assert [s["frames"] for s in summary["shards"]] == [[0, 3], [3, 6], [6, 9], [9, 12]]
    assert summary["merge"]["images"] == COUNT

    single, merged = _files(renders["single"]), _files(renders["out"])
    assert sorted(merged) == sorted(single)
    with open(os.path.join(renders["single"], "annotations.json")) as f:
        want = json.load(f)
    with open(os.path.join(renders["out"], "annotations.json")) as f:
        got = json.load(f)
    assert got == want
    assert [k for k in single if single[k] != merged[k]] == []  # byte-identical images, masks, depth, records


def _last_attempt_start(log_path: str) -> dict:
    """The engine's START line of the last attempt in a shard log (``pending`` = frames it still had to render)."""
    with open(log_path, encoding="utf-8", errors="replace") as f:
        last = f.read().rsplit("=== attempt", 1)[1]
    line = next(x for x in last.splitlines() if x.startswith("BLENDSET_START "))
    return json.loads(line.split(" ", 1)[1])


def test_retries_resume_instead_of_starting_over(renders):
    """The retried attempts rendered only what the killed ones left: frame records are kept across attempts."""
    per_shard = COUNT // NUM_SHARDS
    for i, killed in renders["killer"].killed.items():
        log = os.path.join(renders["out"], "shards", ray_render.shard_name(i, NUM_SHARDS) + ".log")
        start = _last_attempt_start(log)
        assert start["total"] == per_shard
        assert start["pending"] <= per_shard - killed["frames_done"] < per_shard, (i, start, killed)


def test_progress_covers_the_cluster(renders):
    calls = renders["progress"]
    assert calls[-1] == (COUNT, COUNT)
    assert all(t == COUNT for _, t in calls)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)  # never goes back, even across a retry
    assert any(0 < d < COUNT for d, _ in calls)  # counts came in while shards rendered, not only at the end


def test_missing_shard_is_named(renders, tmp_path):
    shards = [ray_render.shard_location(renders["out"], i, NUM_SHARDS) for i in range(NUM_SHARDS)]
    partial = [shards[0], shards[1], shards[3]]
    with pytest.raises(ray_render.RenderClusterError, match=r"shard 2/4 .* lacks frames 6-8"):
        ray_render.check_shards([shards[0], shards[1], str(tmp_path / "never-rendered"), shards[3]], COUNT)
    proc = subprocess.run(
        [sys.executable, "-m", "trainer", "merge", *partial, "--out", str(tmp_path / "merged"), "-q"],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "frames 6-8 of 0-11" in proc.stderr


def test_shards_of_another_config_refuse_to_merge(renders, tmp_path):
    other_cfg = write_config(str(tmp_path / "other.json"), {**SMALL, "render": {"resolution": [48, 48], "samples": 1}})
    other = str(tmp_path / "other-shard-3")
    proc = subprocess.run(
        [sys.executable, "-m", "trainer", "render", "--config", other_cfg, "--out", other, "--count", str(COUNT),
         "--seed", str(SEED), "--shard", "3/4", "--scene-script", BASIC_SCENE, "--in-process", "-q"],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    shards = [ray_render.shard_location(renders["out"], i, NUM_SHARDS) for i in range(3)]
    proc = subprocess.run(
        [sys.executable, "-m", "trainer", "merge", *shards, other, "--out", str(tmp_path / "merged"), "-q"],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "rendered with another config" in proc.stderr and other in proc.stderr
    assert not os.path.exists(tmp_path / "merged" / "annotations.json")


def test_url_output_publishes_shards_and_merged_dataset(ray_cluster, renders, tmp_path):
    """With a URL as ``out`` every shard is uploaded with its completion marker and the merge reads them back;
    the result equals the first 4 frames of the one-process render (same frames, same bytes)."""
    url = "file://" + str(tmp_path / "bucket" / "ds")
    summary = ray_render.render_with_ray(renders["cfg"], url, 4, SEED, 2, scene_script=BASIC_SCENE)
    assert summary["merge"]["images"] == 4
    for i in range(2):
        marker = storage.read_marker(ray_render.shard_location(url, i, 2))
        assert f"frames/{2 * i:06d}.json" in marker["files"]
    merged = storage.localize(url)
    got = _files(merged)
    single = _files(renders["single"])
    for frame in range(4):
        for sub in ("images", "instance", "semantic", "depth", "frames"):
            name = os.path.join(sub, f"{frame:06d}." + ("json" if sub == "frames" else "png"))
            assert got[name] == single[name], name
    # A shard whose upload lost a file is refused by name instead of merged.
    os.remove(os.path.join(ray_render.shard_location(url, 1, 2)[len("file://") :], "images", "000003.png"))
    with pytest.raises(storage.IncompleteUpload, match="images/000003.png"):
        storage.localize(ray_render.shard_location(url, 1, 2))


def test_engine_error_is_not_retried_and_names_the_shard(ray_cluster, renders, tmp_path):
    script = tmp_path / "broken_scene.py"
    script.write_text("def build():\n    raise ValueError('asset teapot.obj not found')\n")
    out = str(tmp_path / "broken")
    pattern = r"shard \d/2 failed \(.*broken.*\): asset teapot.obj not found \(Blender exited 2"
    with pytest.raises(ray_render.RenderClusterError, match=pattern) as info:
        ray_render.render_with_ray(renders["cfg"], out, 2, SEED, 2, scene_script=str(script))
    shard = int(str(info.value).split("shard ", 1)[1][0])
    log = os.path.join(out, "shards", ray_render.shard_name(shard, 2) + ".log")
    with open(log) as f:
        assert f.read().count("=== attempt") == 1  # a deterministic failure is not retried


def test_bad_config_fails_before_the_cluster_starts(tmp_path):
    from shared.config import ConfigError

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"render": {"samples": "many"}}))
    with pytest.raises(ConfigError, match="render.samples"):
        ray_render.render_with_ray(str(bad), str(tmp_path / "out"), 4, 0, 2)
    assert not os.path.exists(tmp_path / "out")


def test_job_array_commands_from_the_docs(renders, tmp_path):
    """docs/scale-out.md's SLURM array (same command for Kubernetes' JOB_COMPLETION_INDEX), run as a shell loop:
    two array tasks with ``--shard $SLURM_ARRAY_TASK_ID/$N``, then ``blendset merge`` over the shard glob."""
    script = f"""
set -e
N=2
OUT={tmp_path}/ds
for SLURM_ARRAY_TASK_ID in 0 1; do
  "{sys.executable}" -m trainer render --config {renders["cfg"]} --count 4 --seed {SEED} \\
      --scene-script {BASIC_SCENE} --in-process --shard "$SLURM_ARRAY_TASK_ID/$N" \\
      --out "$OUT/shards/shard-$(printf %05d "$SLURM_ARRAY_TASK_ID")-of-$(printf %05d "$N")" -q
done
"{sys.executable}" -m trainer merge "$OUT"/shards/shard-*-of-00002 --out "$OUT/merged" -q
"""
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got, single = _files(str(tmp_path / "ds" / "merged")), _files(renders["single"])
    assert sorted(k for k in got if k.startswith("images")) == [f"images/{f:06d}.png" for f in range(4)]
    for name in got:
        if name.split(os.sep)[0] in ("images", "instance", "semantic", "depth", "frames"):
            assert got[name] == single[name], name

"""Frames per second with 1 and 2 Ray workers on this machine, and the parallel efficiency, in one run.

Both settings render the same frames of the same config and seed through
``trainer.rendering.ray_cluster.render_with_ray``
on one local Ray cluster (started once; its start-up is reported apart). "1 worker" is one shard (one Blender
process, one CPU); "2 workers" is two shards at the same time, one CPU each. Every Blender process renders with
one thread (``render.threads = 1``), so a worker is a core and the ratio measures process-level scaling, which is
what adding nodes adds. The settings alternate (1, 2, 1, 2, ...) and the best of ``--repeats`` is kept, so a
load change on a shared machine does not favour one side.

Two efficiencies are printed:

- end to end: frames/s with 2 workers / (2 x frames/s with 1 worker), Blender start-up included;
- per frame: seconds per frame with 1 worker / with 2 workers (from the engine's own per-frame timings in the
  shard logs): how much two concurrent renders slow each other (1.0 = not at all).

It also splits a shard's time into start-up and per-frame cost and projects to N workers with
T(N) = start-up + frames x t_frame / N + merge (the merge, and a download of all shards to one machine, stay
serial).

    .venv/bin/python benchmarks/render_scaling.py --count 16 --repeats 2
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
BASIC_SCRIPT = os.path.join(ROOT, "scenes", "basic", "build.py")
BASIC_CONFIG = os.path.join(ROOT, "scenes", "basic", "default_config.json")


def tiny_config(resolution: tuple[int, int], samples: int) -> dict:
    """scenes/basic's default config (every randomizer on) with small renders and one render thread."""
    from shared.config import DatasetConfig, load_config

    d = load_config(BASIC_CONFIG).to_dict()
    d["render"].update({"resolution": list(resolution), "samples": samples, "threads": 1})
    return DatasetConfig.from_dict(d).to_dict()


def frame_seconds(log_path: str) -> list[float]:
    """The engine's per-frame render times from a shard log (``BLENDSET_PROGRESS`` lines, last attempt)."""
    from trainer.rendering.launcher import parse_line

    seconds: list[float] = []
    with open(log_path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("=== attempt"):
                seconds = []
            parsed = parse_line(line)
            if parsed and parsed[0] == "PROGRESS" and isinstance(parsed[1], dict):
                seconds.append(float(parsed[1]["seconds"]))
    return seconds


def run(config_path: str, out: str, count: int, workers: int, scene_script: str, blender: str | None) -> dict:
    from trainer.rendering.ray_cluster import render_with_ray, shard_name

    summary = render_with_ray(
        config_path, out, count, 0, workers, scene_script=scene_script, blender=blender, num_cpus=1.0
    )
    per_frame, startup = [], []
    for shard in summary["shards"]:
        secs = frame_seconds(os.path.join(out, "shards", shard_name(shard["index"], workers) + ".log"))
        per_frame += secs
        startup.append(shard["seconds"] - sum(secs))
    return {
        "workers": workers,
        "render_s": summary["render_seconds"],
        "merge_s": summary["merge_seconds"],
        "fps": count / summary["render_seconds"],
        "s_per_frame": sum(per_frame) / len(per_frame),
        "startup_s": sum(startup) / len(startup),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=16, help="frames per run")
    parser.add_argument("--repeats", type=int, default=2, help="runs per setting; the best is kept")
    parser.add_argument("--resolution", default="160x120", help="WxH")
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--scene-script", default=BASIC_SCRIPT, help="scene build script (default: scenes/basic)")
    parser.add_argument("--blender", default=None, help="Blender binary (default: the bpy module)")
    parser.add_argument("--json", dest="json_out", default=None, help="also write the numbers to this file")
    args = parser.parse_args()
    width, height = (int(v) for v in args.resolution.lower().split("x"))

    import ray

    load_before = os.getloadavg()[0]
    root = tempfile.mkdtemp(prefix="blendset-scaling-")
    runs: dict[int, list[dict]] = {1: [], 2: []}
    try:
        config_path = os.path.join(root, "config.json")
        with open(config_path, "w", encoding="utf-8") as f:
            json.dump(tiny_config((width, height), args.samples), f)
        t0 = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, object_store_memory=100 * 1024 * 1024, log_to_driver=False)
        ray_start = time.perf_counter() - t0
        for r in range(args.repeats):
            for workers in (1, 2):
                out = os.path.join(root, f"w{workers}-r{r}")
                runs[workers].append(run(config_path, out, args.count, workers, args.scene_script, args.blender))
                shutil.rmtree(out, ignore_errors=True)
        ray.shutdown()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    load_after = os.getloadavg()[0]

    one = max(runs[1], key=lambda x: x["fps"])
    two = max(runs[2], key=lambda x: x["fps"])
    speedup = two["fps"] / one["fps"]
    frame_eff = one["s_per_frame"] / two["s_per_frame"]
    print(f"render scaling: {args.count} frames of scenes/basic at {width}x{height}, {args.samples} samples, "
          f"1 render thread per worker, best of {args.repeats}")  # fmt: skip
    print(f"machine: {os.cpu_count()} cores, load average {load_before:.1f} before / {load_after:.1f} after "
          f"(other jobs share it); ray start-up (once): {ray_start:.1f} s")  # fmt: skip
    print(f"{'workers':>7} {'render s':>9} {'frames/s':>9} {'speed-up':>9} {'efficiency':>10} {'s/frame':>8} "
          f"{'start-up s':>10} {'merge s':>8}")  # fmt: skip
    for r in (one, two):
        s = r["fps"] / one["fps"]
        print(f"{r['workers']:>7} {r['render_s']:>9.2f} {r['fps']:>9.3f} {s:>9.2f} {s / r['workers']:>10.2f} "
              f"{r['s_per_frame']:>8.3f} {r['startup_s']:>10.2f} {r['merge_s']:>8.3f}")  # fmt: skip
    print(f"parallel efficiency with 2 workers: end to end {speedup / 2:.2f} (speed-up {speedup:.2f}x), "
          f"per frame {frame_eff:.2f}")  # fmt: skip

    t_frame, start = one["s_per_frame"], one["startup_s"]
    merge_per_frame = one["merge_s"] / max(1, args.count)
    frames = 50_000
    print(f"projection for {frames} frames at {t_frame:.3f} s/frame, {start:.1f} s start-up per shard, "
          f"{1000 * merge_per_frame:.1f} ms/frame serial merge (shard upload/download not included):")  # fmt: skip

    def total(n: int) -> float:
        return start + frames * t_frame / n + frames * merge_per_frame

    for n in (1, 4, 16, 64, 256):
        print(f"  {n:>4} workers: {total(n) / 3600:7.3f} h, speed-up {total(1) / total(n):7.1f}x")
    if args.json_out:
        with open(args.json_out, "w", encoding="utf-8") as f:
            json.dump({"runs": runs, "speedup": speedup, "efficiency": speedup / 2, "frame_efficiency": frame_eff,
                       "load": [load_before, load_after]}, f, indent=2)  # fmt: skip


if __name__ == "__main__":
    main()

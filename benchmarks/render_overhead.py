"""How much the engine adds to Blender's own render time, its annotation cost, and whether memory stays flat.

Runs inside Blender, all numbers from the same run::

    .venv/bin/python benchmarks/render_overhead.py --frames 500
    blender -b --factory-startup -P benchmarks/render_overhead.py -- --frames 500

Prints: seconds per frame through the pipeline (scenes/basic with its default config), the raw
``bpy.ops.render.render()`` time of the same scene and settings, the overhead ratio (target <= 1.10), the time
of each pipeline step, annotation encoding time at 640x480 with 20 instances (target <= 5 ms), and the
process RSS after frame 10 and after the last frame (target growth < 10%). ``--frames`` runs it shorter; the
output says what ran. The last line is the summary as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

import bpy
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from blender_addon.engine import DatasetRenderer  # noqa: E402
from blender_addon.shared.annotate import InstanceInfo, annotate_frame  # noqa: E402
from blender_addon.shared.coco import encode_instance_map  # noqa: E402
from blender_addon.shared.config import DatasetConfig, Filters  # noqa: E402


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def build_scene() -> None:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    sys.path.insert(0, os.path.join(ROOT, "scenes", "basic"))
    import build

    build.build()


def make_config(width: int, height: int, samples: int) -> DatasetConfig:
    with open(os.path.join(ROOT, "scenes", "basic", "default_config.json")) as f:
        data = json.load(f)
    data["render"] = {"resolution": [width, height], "samples": samples}
    return DatasetConfig.from_dict(data)


def run(config: DatasetConfig, frames: int, raw_frames: int, out: str) -> dict:
    """Render ``frames`` frames through the engine. For the first ``raw_frames`` of them the same randomized
    scene (``apply_frame``: same settings and passes) is also rendered by ``bpy.ops.render.render()`` alone,
    right after the pipeline frame, so both see the same scene and the same machine load."""
    seconds, steps, raw, rss = [], [], [], {}
    with DatasetRenderer(bpy.context.scene, config, out, count=frames) as job:
        for frame in job.pending_frames():
            t0 = time.perf_counter()
            job.render_frame(frame)
            seconds.append(time.perf_counter() - t0)
            steps.append(dict(job.last_timings))
            if frame < raw_frames:
                with job.apply_frame(frame):
                    t0 = time.perf_counter()
                    bpy.ops.render.render()
                    raw.append(time.perf_counter() - t0)
            if frame + 1 in (10, 500) or frame + 1 == frames:
                rss[frame + 1] = rss_mb()
            if (frame + 1) % 50 == 0:
                print(f"  frame {frame + 1}/{frames}: {seconds[-1]:.3f} s, RSS {rss_mb():.0f} MB", flush=True)
    return {"seconds": seconds, "steps": steps, "raw": raw, "rss": rss}


def annotation_cost(repeats: int = 50) -> dict[str, float]:
    """Median milliseconds at 640x480 with 20 instances: RLE encoding of all instances, annotate_frame without
    the image-based attributes (boxes, RLE, areas, occlusion), and the full annotate_frame (plus depth median
    and background similarity)."""
    rng = np.random.default_rng(0)
    h, w = 480, 640
    yy, xx = np.mgrid[0:h, 0:w]
    inst = np.zeros((h, w), np.uint16)
    infos = []
    for k in range(1, 21):
        cy, cx, ry, rx = rng.uniform(40, h - 40), rng.uniform(40, w - 40), rng.uniform(15, 60), rng.uniform(15, 60)
        blob = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
        inst[blob] = k
        n = int(blob.sum())
        infos.append(InstanceInfo(k, k % 3, f"c{k % 3}", f"obj{k}", n, n, 5.0))
    depth = rng.uniform(1, 10, (h, w)).astype(np.float32)
    rgb = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    filters = Filters(min_visible_pixels=1)
    calls = {
        "rle": lambda: encode_instance_map(inst, range(1, 21)),
        "annotate_no_image_attributes": lambda: annotate_frame(inst, infos, None, None, filters, 0),
        "annotate_full": lambda: annotate_frame(inst, infos, depth, rgb, filters, 0),
    }
    out = {}
    for name, call in calls.items():
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            call()
            times.append(time.perf_counter() - t0)
        out[name] = 1000 * statistics.median(times)
    return out


def main() -> None:
    argv = sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else sys.argv[1:]
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--frames", type=int, default=500)
    p.add_argument("--raw-frames", type=int, default=20, help="frames also rendered raw (the first ones)")
    p.add_argument("--resolution", default="320x240")
    p.add_argument("--samples", type=int, default=16)
    args = p.parse_args(argv)
    w, h = (int(v) for v in args.resolution.split("x"))
    config = make_config(w, h, args.samples)
    print(
        f"Blender {bpy.app.version_string}; scenes/basic, {w}x{h}, {args.samples} samples, "
        f"{args.frames} pipeline frames, raw render of the first {min(args.raw_frames, args.frames)}",
        flush=True,
    )
    build_scene()
    with tempfile.TemporaryDirectory(prefix="blendset-bench-") as out:
        result = run(config, args.frames, args.raw_frames, out)
    n_raw = len(result["raw"])
    # Frame 0 builds Cycles' persistent data; compare steady-state frames that have both timings.
    pipe = result["seconds"][1:n_raw] or result["seconds"][:n_raw]
    raw = result["raw"][1:] or result["raw"]
    per_frame_all = statistics.median(result["seconds"][1:] or result["seconds"])
    ratio = statistics.median([a / b for a, b in zip(pipe, raw, strict=True)])
    steps = result["steps"][1:] or result["steps"]
    step_names = sorted({k for s in steps for k in s})
    step_median = {k: statistics.median([s.get(k, 0.0) for s in steps]) for k in step_names}
    ann = annotation_cost()
    rss = result["rss"]
    first_frame = 10 if 10 in rss else min(rss)
    last_frame = max(rss)
    growth = rss[last_frame] / rss[first_frame] - 1.0
    print(f"pipeline:            {per_frame_all:.3f} s/frame (median over frames 2..{args.frames})")
    print(f"raw render():        {statistics.median(raw):.3f} s/frame (same randomized scenes, median of {len(raw)})")
    print(f"overhead ratio:      {ratio:.3f}  (median of per-frame pipeline/raw; target <= 1.10)")
    for k in step_names:
        print(f"  step {k:<12s} {1000 * step_median[k]:8.1f} ms")
    print(
        f"annotation at 640x480 with 20 instances (target <= 5 ms): RLE {ann['rle']:.2f} ms; boxes+RLE+occlusion "
        f"{ann['annotate_no_image_attributes']:.2f} ms; plus depth median and background similarity "
        f"{ann['annotate_full']:.2f} ms"
    )
    print(
        f"RSS after frame {first_frame}: {rss[first_frame]:.0f} MB; after frame {last_frame}: "
        f"{rss[last_frame]:.0f} MB; growth {100 * growth:+.1f}% (target < 10%)"
    )
    summary = {
        "blender": bpy.app.version_string,
        "resolution": [w, h],
        "samples": args.samples,
        "frames": args.frames,
        "raw_frames": len(raw),
        "seconds_per_frame": per_frame_all,
        "raw_seconds_per_frame": statistics.median(raw),
        "overhead_ratio": ratio,
        "steps_ms": {k: 1000 * v for k, v in step_median.items()},
        "annotation_ms_640x480_20": ann,
        "rss_mb": rss,
        "rss_growth": growth,
    }
    print("BENCH " + json.dumps(summary), flush=True)


main()

"""Annotation cost per frame: ``shared.annotate.annotate_frame`` against pycocotools' encoder, same run.

A synthetic 640x480 frame with 20 overlapping instances (ellipses and boxes, drawn in random order so they
occlude each other) plus depth and RGB. Prints milliseconds per frame for

- ``annotate_frame`` (boxes, areas, RLE, occlusion, depth median, background similarity): the issue's
  target is <= 5 ms;
- our RLE of all 20 masks (``encode_instance_map``);
- pycocotools: 20 boolean masks cut from the map, each ``mask.encode``-d (the baseline).

Usage: ``python benchmarks/annotation_encoding.py [--frames 50] [--instances 20] [--size 640x480]``
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from shared.annotate import InstanceInfo, annotate_frame  # noqa: E402
from shared.coco import encode_instance_map  # noqa: E402
from shared.config import Filters  # noqa: E402


def make_frame(rng: np.random.Generator, w: int, h: int, count: int):
    im = np.zeros((h, w), np.uint16)
    yy, xx = np.mgrid[0:h, 0:w]
    full = {}
    for i in range(1, count + 1):
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        rx, ry = rng.uniform(15, 90), rng.uniform(15, 90)
        m = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1 if i % 2 else (abs(xx - cx) < rx) & (abs(yy - cy) < ry)
        full[i] = int(m.sum())
        im[m] = i
    depth = rng.uniform(2, 8, (h, w)).astype(np.float32)
    rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    infos = [InstanceInfo(i, i % 5, f"c{i % 5}", f"obj{i}", full[i] + 10, full[i], 5.0) for i in full]
    return im, depth, rgb, infos


def timed(fn, repeats: int) -> tuple[float, float]:
    """(wall, CPU) seconds per call. CPU time (this process only) is the fairer number on a shared machine."""
    fn()
    t, c = time.perf_counter(), time.process_time()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t) / repeats, (time.process_time() - c) / repeats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=50)
    ap.add_argument("--instances", type=int, default=20)
    ap.add_argument("--size", default="640x480")
    args = ap.parse_args()
    w, h = (int(v) for v in args.size.split("x"))
    rng = np.random.default_rng(0)
    frames = [make_frame(rng, w, h, args.instances) for _ in range(5)]
    filters = Filters(min_visible_pixels=0)

    def ours_full():
        for im, depth, rgb, infos in frames:
            annotate_frame(im, infos, depth, rgb, filters, 0)

    def ours_rle():
        for im, _, _, infos in frames:
            encode_instance_map(im, [i.instance_id for i in infos])

    from pycocotools import mask as mask_utils

    def baseline():
        for im, _, _, infos in frames:
            for info in infos:
                mask_utils.encode(np.asfortranarray((im == info.instance_id).astype(np.uint8)))

    def encoding_only():
        for im, _, _, infos in frames:
            annotate_frame(im, infos, None, None, filters, 0)

    reps = max(1, args.frames // len(frames))
    n = len(frames)
    rows = [
        ("annotate_frame, everything (RLE, boxes, occlusion, depth median, bg similarity)", ours_full),
        ("annotate_frame without depth/rgb (RLE, boxes, areas, occlusion, truncation)", encoding_only),
        ("encode_instance_map (RLE only)", ours_rle),
        ("pycocotools mask.encode, one mask per instance (baseline)", baseline),
    ]
    results = [(label, *(v / n for v in timed(fn, reps))) for label, fn in rows]
    print(f"frame {w}x{h}, {args.instances} instances, {reps * n} frames timed per variant; ms per frame")
    print(f"{'':84s} {'wall':>7s} {'cpu':>7s}")
    for label, wall, cpu in results:
        print(f"{label:84s} {wall * 1e3:7.2f} {cpu * 1e3:7.2f}")
    base_cpu = results[-1][2]
    for label, _wall, cpu in results[:-1]:
        print(f"ratio to pycocotools (cpu): {cpu / base_cpu:5.2f}  {label}")
    print("target: <= 5 ms per frame for the annotation encoding")


if __name__ == "__main__":
    main()

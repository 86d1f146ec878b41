"""`make demo`: the whole loop on the built-in digits scene, ending in one HTML report.

render the digits scene -> preprocess into the real form -> train on synthetic / real / real + synthetic ->
evaluate on scikit-learn's real digits -> the bias fix -> ``gap analyze`` -> ``OUT/report.html``.
"""

from __future__ import annotations

import os
import time
from typing import Any

from shared.atomic import write_text
from shared.progress import Note, silent
from trainer.bench import digits_data as dd
from trainer.bench.digits import run_digits_benchmark
from trainer.bench.errors import BenchError

GAP_SAMPLES = 300  # images per side for the gap analysis (enough for stable histograms, quick on CPU)


def run_gap_analysis(bench_dir: str, out: str, seed: int, device: str, progress: Note) -> dict[str, Any]:
    """``gap analyze`` between the synthetic digits (in the real form) and the real train pool, both written as
    COCO (32x32, one box per digit around its ink). Returns gap.json's content."""
    from trainer.gap import GapError
    from trainer.gap.analyze import analyze

    syn = dd.digit_folder_to_coco(
        os.path.join(bench_dir, "synthetic"), os.path.join(out, "synthetic_coco"), limit=GAP_SAMPLES, seed=seed
    )
    real = dd.digit_folder_to_coco(
        os.path.join(bench_dir, "real", "pool_all"), os.path.join(out, "real_coco"), limit=GAP_SAMPLES, seed=seed
    )
    progress("gap analyze: synthetic digits vs the real pool")
    try:
        return analyze(syn, real, os.path.join(out, "analyze"), size=32, device=device, overwrite=True, seed=seed)
    except GapError as e:
        raise BenchError(f"gap analyze failed: {e}") from e


def run_demo(
    out: str, scale: str = "small", seed: int = 0, device: str = "cpu", progress: Note | None = None
) -> dict[str, Any]:
    """Run the demo into ``out``; returns ``{"report", "results", "gap", "seconds"}``. Resumable: finished
    renders and training runs under ``out/bench`` are reused."""
    from trainer.bench.report import build_report

    progress = progress or silent
    t0 = time.time()
    out = os.path.abspath(out)
    bench_dir = os.path.join(out, "bench")
    results = run_digits_benchmark(bench_dir, scale=scale, seed=seed, device=device, progress=progress)
    gap_dir = os.path.join(out, "gap")
    gap = run_gap_analysis(bench_dir, gap_dir, seed, device, progress)
    gap_report = os.path.relpath(os.path.join(gap_dir, "analyze", "report.html"), out)
    seconds = time.time() - t0
    command = f"blendset demo --scale {scale} --seed {seed} --out {out}"
    text = build_report(results, bench_dir, gap, gap_report, command, seconds)
    report = os.path.join(out, "report.html")
    write_text(report, text)
    progress(f"report: {report}")
    return {"report": report, "results": results, "gap": gap, "seconds": seconds}

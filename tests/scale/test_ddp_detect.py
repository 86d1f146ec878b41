"""torchrun DDP for `train detect` on CPU (gloo): a 2-process run on the engine's renders trains, rank 0 alone
writes the run folder, and the checkpoint evaluates.

Unlike classify and regress (tests/scale/test_ddp.py), the losses are not compared with a 1-process run:
torchvision's detection backbones built without pretrained weights use ordinary BatchNorm, which normalizes over
each rank's half of the batch, so the two trajectories legitimately differ (docs/scale-out.md).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_detect_trains_under_torchrun_and_rank_zero_alone_writes(basic_dataset, tmp_path):
    run = str(tmp_path / "detect_ddp")
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "trainer"]
    args = ["train", "detect", "--train", basic_dataset, "--model", "fasterrcnn_mobilenet_v3_large_320_fpn",
            "--weights", "none", "--min-size", "96", "--max-size", "128", "--batch-size", "2", "--epochs", "1",
            "--epoch-size", "8", "--augment", "none", "--device", "cpu", "--workers", "0", "--seed", "1", "-q",
            "--out", run]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([*torchrun, *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert proc.stdout.count('"run_dir"') == 1  # one summary: rank 0 only

    with open(os.path.join(run, "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f]
    steps = [r for r in records if r["kind"] == "step"]
    # 8 samples per epoch at a global batch of 2 x 2 = 4: two steps, each logged once (4 if every rank wrote).
    assert len(steps) == 2 and all(math.isfinite(r["loss"]) for r in steps)
    assert os.path.exists(os.path.join(run, "checkpoint.pth"))

    eval_cmd = [sys.executable, "-m", "trainer", "eval", "--model", run, "--data", basic_dataset, "--device", "cpu"]
    ev = subprocess.run(eval_cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert ev.returncode == 0, ev.stdout[-2000:] + ev.stderr[-3000:]
    eval_dirs = os.listdir(os.path.join(run, "eval"))
    assert len(eval_dirs) == 1 and os.path.exists(os.path.join(run, "eval", eval_dirs[0], "metrics.json"))

"""torchrun DDP on CPU (gloo): 2 processes follow the 1-process loss trajectory, rank 0 alone writes, and a
2-process checkpoint resumes on 1 process as if the run had never been split.

Runs (real torch, real digits from sklearn as an ImageFolder, ``small_cnn``, 32x32, 8 steps of global batch 8):

- A: ``python -m trainer train classify --batch-size 8`` (1 process, 2 epochs);
- B: ``torchrun --nproc-per-node 2 -m trainer train classify --batch-size 4`` (2 processes, same global batch);
  a watcher copies B's ``checkpoint.pth`` as soon as epoch 0 has written it;
- B2: that epoch-0 checkpoint resumed with ``--resume`` on 1 process (``--batch-size 8``) for epoch 1;
- C: ``blendset train classify --nproc 2`` for one epoch (the torchrun relaunch).

Tolerance: step losses agree to ``rtol=1e-4, atol=1e-5``. With no BatchNorm or Dropout in the model the two runs
compute the same gradients; what differs is only floating-point summation order (gloo's all-reduce of two
half-batch gradients against one full-batch reduction), which measured ~1e-6 here. The negative control shows
the check is not loose: the losses of neighbouring steps (other batches) differ by far more than the tolerance.
A model with BatchNorm cannot match like this on CPU: each rank normalizes over its half of the batch, and
SyncBatchNorm needs CUDA (docs/scale-out.md).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RTOL, ATOL = 1e-4, 1e-5
STEPS_PER_EPOCH = 4  # --epoch-size 32 / global batch 8


def _digits_imagefolder(root: str, per_class: int = 16) -> str:
    """Three classes of real handwritten digits (sklearn's bundled set), 8x8 upscaled to 32x32 RGB PNGs."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    for c in range(3):
        os.makedirs(os.path.join(root, str(c)), exist_ok=True)
        for k, i in enumerate(np.flatnonzero(digits.target == c)[:per_class]):
            img = np.kron((digits.images[i] / 16 * 255).astype(np.uint8), np.ones((4, 4), np.uint8))
            Image.fromarray(np.stack([img] * 3, -1)).save(os.path.join(root, str(c), f"{k:02d}.png"))
    return root


def _common(data: str) -> list[str]:
    return ["train", "classify", "--train", data, "--model", "small_cnn", "--image-size", "32", "--augment", "none",
            "--device", "cpu", "--workers", "0", "--epoch-size", "32", "--lr", "0.2", "--seed", "3", "-q"]  # fmt: skip


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc


def _metrics(run: str) -> list[dict]:
    with open(os.path.join(run, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def _step_losses(run: str, epoch: int | None = None) -> list[float]:
    return [r["loss"] for r in _metrics(run) if r["kind"] == "step" and epoch in (None, r["epoch"])]


def _summaries(stdout: str) -> int:
    """How many summary JSON objects a run printed (one per process would mean every rank talks)."""
    return stdout.count('"run_dir"')


class CheckpointCopier(threading.Thread):
    """Copies ``RUN/checkpoint.pth`` the moment it first appears (after epoch 0), before epoch 1 replaces it."""

    def __init__(self, run: str, dest: str):
        super().__init__(daemon=True)
        self.src, self.dest = os.path.join(run, "checkpoint.pth"), dest
        self.stop = threading.Event()
        self.copied = False

    def run(self) -> None:
        while not self.stop.is_set():
            if os.path.exists(self.src):
                os.makedirs(self.dest, exist_ok=True)
                shutil.copyfile(self.src, os.path.join(self.dest, "checkpoint.pth"))
                self.copied = True
                return
            time.sleep(0.002)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    data = _digits_imagefolder(str(root / "digits"))
    a, b, b0, c = (str(root / n) for n in ("A", "B", "B-epoch0", "C"))
    py = [sys.executable, "-m", "trainer"]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "trainer"]
    out = {"A": _run([*py, *_common(data), "--epochs", "2", "--batch-size", "8", "--out", a])}
    copier = CheckpointCopier(b, b0)
    copier.start()
    try:
        out["B"] = _run([*torchrun, *_common(data), "--epochs", "2", "--batch-size", "4", "--out", b])
    finally:
        copier.stop.set()
        copier.join(timeout=5)
    assert copier.copied
    out["B2"] = _run([*py, *_common(data), "--epochs", "2", "--batch-size", "8", "--out", b0, "--resume"])
    out["C"] = _run([*py, *_common(data), "--epochs", "1", "--batch-size", "4", "--nproc", "2", "--out", c])
    return {"A": a, "B": b, "B2": b0, "C": c, "procs": out}


def test_two_processes_follow_the_single_process_loss_trajectory(runs):
    single, ddp = _step_losses(runs["A"]), _step_losses(runs["B"])
    assert len(single) == len(ddp) == 2 * STEPS_PER_EPOCH
    np.testing.assert_allclose(ddp, single, rtol=RTOL, atol=ATOL)
    assert max(single) - min(single) > 0.05  # the model really trained: the trajectory is not flat
    # Negative control: another batch's loss is far outside the tolerance, so a wrong split would be caught.
    gaps = np.abs(np.diff(single)) / np.abs(single[1:])
    assert gaps.min() > 100 * RTOL


def test_rank_zero_alone_writes(runs):
    b = runs["B"]
    assert sorted(os.listdir(b)) == ["args.json", "best.pth", "checkpoint.pth", "metrics.jsonl"]
    records = _metrics(b)
    steps = [(r["epoch"], r["step"]) for r in records if r["kind"] == "step"]
    assert steps == [(e, s) for e in (0, 1) for s in range(1, STEPS_PER_EPOCH + 1)]  # each step once
    assert [r["epoch"] for r in records if r["kind"] == "epoch"] == [0, 1]
    assert _summaries(runs["procs"]["B"].stdout) == 1
    assert _summaries(runs["procs"]["A"].stdout) == 1


def test_two_process_checkpoint_resumes_on_one_process(runs):
    import torch

    ckpt = torch.load(os.path.join(runs["B2"], "checkpoint.pth"), map_location="cpu", weights_only=True)
    assert ckpt["epoch"] == 1 and ckpt["global_step"] == 2 * STEPS_PER_EPOCH
    assert not any(k.startswith("module.") for k in ckpt["model"])  # plain state dict, loadable anywhere
    resumed = _step_losses(runs["B2"])
    assert [r["epoch"] for r in _metrics(runs["B2"]) if r["kind"] == "epoch"] == [1]  # epoch 0 not redone
    np.testing.assert_allclose(resumed, _step_losses(runs["A"], epoch=1), rtol=RTOL, atol=ATOL)
    final_a = torch.load(os.path.join(runs["A"], "checkpoint.pth"), map_location="cpu", weights_only=True)
    for name, tensor in final_a["model"].items():
        torch.testing.assert_close(ckpt["model"][name], tensor, rtol=1e-4, atol=1e-5, msg=name)


def test_nproc_flag_runs_under_torchrun(runs):
    np.testing.assert_allclose(
        _step_losses(runs["C"]), _step_losses(runs["A"], epoch=0), rtol=RTOL, atol=ATOL
    )  # epoch 0: same learning rate whatever --epochs is
    assert "starting 2 processes with torchrun" in runs["procs"]["C"].stderr
    assert _summaries(runs["procs"]["C"].stdout) == 1


# ---------------------------------------------------------------------------------------------------------------
# `train regress` under torchrun: the same four runs as above, on a regression dataset.
#
# The dataset is drawn with numpy (no Blender): a bright square on a noisy background, its brightness set by the
# image's recorded ``camera.elevation_deg`` (``images[*].blendset.params``, shared/layout.py). 32 images, global
# batch 8: 4 steps per epoch. ``--model small_cnn`` for the reason given at the top (no BatchNorm or Dropout); the
# tolerance is the same ``rtol=1e-4, atol=1e-5``. Without ``--val`` rank 0 validates on the training set.

REGRESS_IMAGES = 32
REGRESS_STEPS = REGRESS_IMAGES // 8


def _brightness_dataset(root: str, n: int = REGRESS_IMAGES) -> str:
    from PIL import Image

    rng = np.random.default_rng(7)
    os.makedirs(os.path.join(root, "images"))
    images = []
    for i in range(n):
        elevation = float(rng.uniform(0, 60))
        pixels = rng.integers(0, 60, size=(16, 16, 3)).astype(np.uint8)
        pixels[4:12, 4:12] = int(80 + 2.5 * elevation)
        name = f"{i:06d}.png"
        Image.fromarray(pixels).save(os.path.join(root, "images", name))
        images.append(
            {
                "id": i + 1,
                "file_name": name,
                "width": 16,
                "height": 16,
                "blendset": {"frame": i, "params": {"camera.elevation_deg": elevation}},
            }
        )
    with open(os.path.join(root, "annotations.json"), "w") as f:
        json.dump({"images": images, "annotations": [], "categories": [{"id": 1, "name": "square"}]}, f)
    return root


def _regress_common(data: str) -> list[str]:
    return ["train", "regress", "--train", data, "--targets", "camera.elevation_deg", "--model", "small_cnn",
            "--image-size", "16", "--device", "cpu", "--workers", "0", "--lr", "0.01", "--seed", "5", "-q"]  # fmt: skip


@pytest.fixture(scope="module")
def regress_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp-regress")
    data = _brightness_dataset(str(root / "squares"))
    a, b, b0, c = (str(root / n) for n in ("A", "B", "B-epoch0", "C"))
    py = [sys.executable, "-m", "trainer"]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "trainer"]
    out = {"A": _run([*py, *_regress_common(data), "--epochs", "2", "--batch-size", "8", "--out", a])}
    copier = CheckpointCopier(b, b0)
    copier.start()
    try:
        out["B"] = _run([*torchrun, *_regress_common(data), "--epochs", "2", "--batch-size", "4", "--out", b])
    finally:
        copier.stop.set()
        copier.join(timeout=5)
    assert copier.copied
    out["B2"] = _run([*py, *_regress_common(data), "--epochs", "2", "--batch-size", "8", "--out", b0, "--resume"])
    out["C"] = _run([*py, *_regress_common(data), "--epochs", "1", "--batch-size", "4", "--nproc", "2", "--out", c])
    return {"data": data, "A": a, "B": b, "B2": b0, "C": c, "procs": out}


def test_regress_two_processes_follow_the_single_process_loss_trajectory(regress_runs):
    single, ddp = _step_losses(regress_runs["A"]), _step_losses(regress_runs["B"])
    assert len(single) == len(ddp) == 2 * REGRESS_STEPS
    np.testing.assert_allclose(ddp, single, rtol=RTOL, atol=ATOL)
    assert max(single) - min(single) > 0.05  # the model really trained: the trajectory is not flat
    gaps = np.abs(np.diff(single)) / np.abs(single[1:])
    assert gaps.min() > 100 * RTOL  # negative control: a neighbouring batch's loss is far outside the tolerance
    # the per-epoch validation (rank 0 alone, on the unwrapped model) agrees too
    val = [[r["val_mse"] for r in _metrics(regress_runs[k]) if r["kind"] == "epoch"] for k in ("A", "B")]
    np.testing.assert_allclose(val[1], val[0], rtol=RTOL, atol=ATOL)


def test_regress_rank_zero_alone_writes(regress_runs):
    b = regress_runs["B"]
    assert sorted(os.listdir(b)) == ["args.json", "best.pth", "checkpoint.pth", "metrics.jsonl", "summary.json"]
    records = _metrics(b)
    steps = [(r["epoch"], r["step"]) for r in records if r["kind"] == "step"]
    assert steps == [(e, s) for e in (0, 1) for s in range(1, REGRESS_STEPS + 1)]  # each step once
    assert [r["epoch"] for r in records if r["kind"] == "epoch"] == [0, 1]
    assert _summaries(regress_runs["procs"]["B"].stdout) == 1
    with open(os.path.join(b, "args.json")) as f:
        assert json.load(f)["world_size"] == 2
    with open(os.path.join(b, "summary.json")) as f:
        assert json.load(f)["processes"] == 2


def test_regress_two_process_checkpoint_resumes_on_one_process(regress_runs):
    import torch

    from trainer.training.regress import RegressError, train_regression

    ckpt = torch.load(os.path.join(regress_runs["B2"], "checkpoint.pth"), map_location="cpu", weights_only=True)
    assert ckpt["epoch"] == 1 and ckpt["global_step"] == 2 * REGRESS_STEPS
    assert not any(k.startswith("module.") for k in ckpt["model"])
    assert [r["epoch"] for r in _metrics(regress_runs["B2"]) if r["kind"] == "epoch"] == [1]  # epoch 0 not redone
    resumed = _step_losses(regress_runs["B2"])
    np.testing.assert_allclose(resumed, _step_losses(regress_runs["A"], epoch=1), rtol=RTOL, atol=ATOL)
    final_a = torch.load(os.path.join(regress_runs["A"], "checkpoint.pth"), map_location="cpu", weights_only=True)
    for name, tensor in final_a["model"].items():
        torch.testing.assert_close(ckpt["model"][name], tensor, rtol=1e-4, atol=1e-5, msg=name)
    # another global batch is another run: refused, naming the setting (world size x --batch-size)
    with pytest.raises(RegressError, match="global_batch_size"):
        train_regression(
            regress_runs["data"],
            None,
            regress_runs["B2"],
            "camera.elevation_deg",
            model_name="small_cnn",
            epochs=3,
            batch_size=4,
            lr=0.01,
            image_size=16,
            seed=5,
            resume=True,
        )


def test_regress_nproc_flag_runs_under_torchrun(regress_runs):
    np.testing.assert_allclose(
        _step_losses(regress_runs["C"]), _step_losses(regress_runs["A"], epoch=0), rtol=RTOL, atol=ATOL
    )
    assert "starting 2 processes with torchrun" in regress_runs["procs"]["C"].stderr
    assert _summaries(regress_runs["procs"]["C"].stdout) == 1

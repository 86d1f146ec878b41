"""The engine's contract: non-finite losses stop with the loss dict, accumulation, AMP, DDP with torchrun."""

import json
import os
import subprocess
import sys

import pytest
import torch

from trainer.training.epoch import NonFiniteLossError, classification_loss, train_one_epoch


def _loader(x, y, batch):
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=batch)


def _tiny():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 2))


def test_non_finite_loss_stops_with_the_loss_dict():
    x = torch.rand(8, 3, 2, 2)
    x[5] = float("nan")
    model = _tiny()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(NonFiniteLossError) as info:
        train_one_epoch(model, opt, _loader(x, torch.zeros(8, dtype=torch.long), 2), "cpu", 0, classification_loss)
    assert "loss_ce" in info.value.losses and "step 2" in str(info.value)


def test_accumulation_matches_one_big_batch_and_amp_runs():
    x, y = torch.rand(8, 3, 2, 2), torch.randint(0, 2, (8,))
    big, acc = _tiny(), _tiny()
    train_one_epoch(big, torch.optim.SGD(big.parameters(), lr=0.5), _loader(x, y, 8), "cpu", 0, classification_loss)
    stats = train_one_epoch(
        acc, torch.optim.SGD(acc.parameters(), lr=0.5), _loader(x, y, 2), "cpu", 0, classification_loss, accum_steps=4
    )
    for a, b in zip(big.parameters(), acc.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)
    assert stats["images"] == 8 and 0 <= stats["data_wait"] <= 1
    amp = _tiny()
    out = train_one_epoch(
        amp, torch.optim.SGD(amp.parameters(), lr=0.5), _loader(x, y, 4), "cpu", 0, classification_loss, amp=True
    )
    assert out["loss"] > 0


def test_ddp_with_torchrun_then_resume_on_one_process(shapes_dataset, tmp_path):
    run = str(tmp_path / "ddp")
    common = [
        "train",
        "classify",
        "--train",
        shapes_dataset,
        "--val",
        shapes_dataset,
        "--out",
        run,
        "--model",
        "resnet18",
        "--image-size",
        "32",
        "--batch-size",
        "4",
        "--workers",
        "0",
        "--augment",
        "none",
        "--device",
        "cpu",
        "-q",
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    proc = subprocess.run(
        [torchrun, "--standalone", "--nproc_per_node=2", "-m", "trainer.cli", *common, "--epochs", "1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = subprocess.run(
        [sys.executable, "-m", "trainer.cli", *common, "--epochs", "2", "--resume"],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(os.path.join(run, "metrics.jsonl")) as f:
        lines = [json.loads(line) for line in f]
    epochs = [r for r in lines if r["kind"] == "epoch"]
    assert [e["epoch"] for e in epochs] == [0, 1]  # rank 0 alone wrote, nothing repeated
    steps = [r for r in lines if r["kind"] == "step"]
    # 12 images x ~2.1 crops: with 2 ranks each does half the steps of the single-process epoch
    first = [s for s in steps if s["epoch"] == 0]
    second = [s for s in steps if s["epoch"] == 1]
    assert abs(len(first) * 2 - len(second)) <= 1

"""One run specification and one checkpoint layout for every task; one way every command fails."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest
import torch

from shared.errors import BlendsetError
from trainer.training.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from trainer.training.spec import ClassifyOptions, DetectOptions, RegressOptions, RunError, RunSpec

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_spec_takes_task_defaults_and_refuses_unknown_settings():
    detect = RunSpec.build("detect", train=["synth/", "real/:0.25"], out="runs/x", min_size=320)
    assert detect.batch_size == 4 and detect.warmup_iters == 100 and detect.augment == "hflip"
    assert detect.train == [("synth/", None), ("real/", 0.25)]
    assert detect.options == DetectOptions(min_size=320)
    classify = RunSpec.build("classify", train=["crops/"], out="runs/c", grayscale=True)
    assert classify.batch_size == 32 and classify.options == ClassifyOptions(grayscale=True)
    regress = RunSpec.build("regress", train=["synth/"], out="runs/r", targets=["camera.elevation_deg"])
    assert regress.optimizer == "adamw" and regress.lr == 1e-3 and isinstance(regress.options, RegressOptions)
    args = regress.to_args()
    assert args["targets"] == ["camera.elevation_deg"] and args["train"] == [["synth/", None]]
    with pytest.raises(RunError, match="unknown setting.*min_size"):
        RunSpec.build("classify", train=["crops/"], out="runs/c", min_size=320)  # a detect option
    with pytest.raises(RunError, match="epochs must be >= 1"):
        RunSpec.build("detect", train=["s/"], out="o", epochs=0)
    with pytest.raises(RunError, match="ratio"):
        RunSpec.build("detect", train=["s/:1.5"], out="o")
    assert issubclass(RunError, BlendsetError)


def _legacy_regress_checkpoint() -> dict:
    """A regression checkpoint as versions before the one loop wrote it (no metric fields, train as a path)."""
    return {
        "task": "regress", "model_name": "small_cnn", "categories": [], "model": {"w": torch.zeros(2)},
        "optimizer": {}, "lr_scheduler": {}, "scaler": None, "epoch": 3, "blendset_version": "0.1.0",
        "args": {"train": "/data/synth", "batch_size": 8, "world_size": 1}, "targets": ["camera.elevation_deg"],
        "target_ranges": {"camera.elevation_deg": [10.0, 60.0]}, "target_mean": [0.1], "image_size": 32,
        "best_val_mse": 0.25, "val_mse": 0.3, "global_step": 40,
    }  # fmt: skip


def test_checkpoint_layout_round_trips_and_reads_the_earlier_layout(tmp_path):
    path = str(tmp_path / "legacy.pth")
    torch.save(_legacy_regress_checkpoint(), path)
    ckpt = load_checkpoint(path)
    assert isinstance(ckpt, Checkpoint)
    assert (ckpt.metric_name, ckpt.metric_mode, ckpt.best_metric) == ("val_mse", "min", 0.25)
    assert ckpt["targets"] == ["camera.elevation_deg"] and ckpt.get("image_size") == 32 and ckpt.epoch == 3
    again = str(tmp_path / "again.pth")
    save_checkpoint(again, ckpt)
    record = torch.load(again, map_location="cpu", weights_only=True)  # plain dict, top-level task keys
    assert record["target_ranges"] == {"camera.elevation_deg": [10.0, 60.0]} and record["metric_mode"] == "min"
    back = load_checkpoint(again)
    assert back.replace(model={}) == ckpt.replace(model={}) and torch.equal(back.model["w"], ckpt.model["w"])
    fresh = Checkpoint(task="detect", model_name="m", model={}, task_state={"min_size": 320})
    assert fresh.best_metric == -math.inf and fresh.to_dict()["min_size"] == 320
    with pytest.raises(ValueError, match="may not reuse"):
        Checkpoint(task="detect", model_name="m", model={}, task_state={"epoch": 1}).to_dict()


def test_a_legacy_regression_checkpoint_still_evaluates(tmp_path):
    from trainer.evaluation.regress import load_regressor
    from trainer.models.build import get_classification_model

    record = _legacy_regress_checkpoint()
    record["model"] = get_classification_model("small_cnn", 1, weights="none").state_dict()
    path = str(tmp_path / "run")
    os.makedirs(path)
    torch.save(record, os.path.join(path, "best.pth"))
    model, ckpt = load_regressor(path)
    assert ckpt["targets"] == ["camera.elevation_deg"]
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 1)


def _blendset(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "trainer", *args], capture_output=True, text=True, cwd=ROOT, timeout=300
    )


def test_a_domain_error_is_one_line_and_exit_status_2(tmp_path):
    empty_run, data = tmp_path / "run", tmp_path / "data"
    empty_run.mkdir()
    data.mkdir()
    proc = _blendset("eval", "--model", str(empty_run), "--data", str(data))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines == [f"Error: {empty_run}: run folder has no checkpoint.pth or best.pth"]
    debug = _blendset("-vv", "eval", "--model", str(empty_run), "--data", str(data))
    assert debug.returncode != 0 and "Traceback" in debug.stderr and "CheckpointError" in debug.stderr


def test_root_quiet_and_command_quiet_mean_the_same(tmp_path):
    from click.testing import CliRunner

    from trainer.cli import cli

    run = tmp_path / "run"
    run.mkdir()
    for argv in (["-q", "eval", "--model", str(run), "--data", str(run)], ["eval", "-q", "--model", str(run),
                                                                           "--data", str(run)]):  # fmt: skip
        result = CliRunner().invoke(cli, argv)
        assert result.exit_code == 2 and "no checkpoint.pth" in result.output

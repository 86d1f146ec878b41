"""Render-parameter regression (the variability study): real engine renders with a known camera elevation, a
real (tiny) ResNet, the naive baseline beside it, evaluation outputs, checkpoint safety and clear errors."""

from __future__ import annotations

import dataclasses
import json
import os
import sys

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from shared.config import DatasetConfig, OutputSettings, Range, RenderSettings, apply_preset, save_config
from trainer.evaluation.regress import evaluate_regression, load_regressor, moving_average
from trainer.training.checkpoint import CheckpointError
from trainer.training.regress import RegressError, TargetScaler, parse_targets, train_regression

torch.set_num_threads(1)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HEADLESS = os.path.join(ROOT, "blender_addon", "headless.py")
HEAD_SCENE = os.path.join(ROOT, "scenes", "variability", "build.py")


def _drawn(root, n: int, seed: int, params=True) -> str:
    """A bar whose height in the image follows ``camera.elevation_deg`` (no Blender: for the fast checks)."""
    rng = np.random.default_rng(seed)
    os.makedirs(os.path.join(root, "images"))
    images = []
    for i in range(n):
        elev = float(rng.uniform(0, 60))
        arr = np.full((32, 32, 3), 120, np.uint8)
        y = int(26 - elev / 60 * 20)
        arr[y : y + 4, 8:24] = (200, 50, 50)
        Image.fromarray(arr).save(os.path.join(root, "images", f"{i:06d}.png"))
        image = {"id": i + 1, "file_name": f"{i:06d}.png", "width": 32, "height": 32}
        if params:
            image["blendset"] = {"params": {"camera.elevation_deg": elev, "lights.energy_w": 3.0}}
        images.append(image)
    with open(os.path.join(root, "annotations.json"), "w") as f:
        json.dump({"images": images, "annotations": [], "categories": [{"id": 0, "name": "bar"}]}, f)
    return str(root)


def test_targets_and_scaler_contracts():
    assert parse_targets("camera.elevation_deg, lights.energy_w") == ["camera.elevation_deg", "lights.energy_w"]
    with pytest.raises(RegressError, match="listed twice"):
        parse_targets("a,a")
    with pytest.raises(RegressError, match="no targets"):
        parse_targets(" , ")
    values = np.array([[0.0, 10.0], [60.0, 30.0], [30.0, 20.0]])
    scaler = TargetScaler.fit(["e", "x"], values)
    norm = scaler.normalize(values)
    assert norm.min() == -1.0 and norm.max() == 1.0
    np.testing.assert_allclose(scaler.denormalize(norm), values)
    with pytest.raises(RegressError, match="constant over the training set.*x=5"):
        TargetScaler.fit(["e", "x"], np.array([[0.0, 5.0], [1.0, 5.0]]))
    x, y = moving_average(np.array([3.0, 1.0, 2.0, 4.0]), np.array([30.0, 10.0, 20.0, 40.0]), 2)
    np.testing.assert_allclose(x, [1.5, 2.5, 3.5])
    np.testing.assert_allclose(y, [15.0, 25.0, 35.0])


def test_bad_datasets_and_checkpoints_give_clear_errors(tmp_path):
    train = _drawn(tmp_path / "train", 8, 0)
    with pytest.raises(RegressError, match="image 1 has no numeric parameter 'camera.azimuth_deg'.*records"):
        train_regression(train, None, str(tmp_path / "r0"), "camera.azimuth_deg", epochs=1)
    with pytest.raises(RegressError, match="constant over the training set.*lights.energy_w=3"):
        train_regression(train, None, str(tmp_path / "r1"), "lights.energy_w", epochs=1)
    no_params = _drawn(tmp_path / "plain", 4, 0, params=False)
    with pytest.raises(RegressError, match="no blendset.params record"):
        train_regression(no_params, None, str(tmp_path / "r2"), "camera.elevation_deg", epochs=1)

    from trainer.cli import cli

    run = str(tmp_path / "run")
    args = [
        "train",
        "regress",
        "--train",
        train,
        "--out",
        run,
        "--targets",
        "camera.elevation_deg",
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--image-size",
        "32",
        "--device",
        "cpu",
        "--workers",
        "0",
        "-q",
    ]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    ckpt = torch.load(os.path.join(run, "checkpoint.pth"), weights_only=True)
    assert ckpt["task"] == "regress" and ckpt["targets"] == ["camera.elevation_deg"]
    result = CliRunner().invoke(cli, args)  # the run exists: refuse, do not overwrite
    assert result.exit_code == 2 and "--resume" in result.output
    resumed = CliRunner().invoke(cli, [*args[:9], "2", *args[10:], "--resume"])
    assert resumed.exit_code == 0, resumed.output
    with open(os.path.join(run, "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f]
    epochs = [r["epoch"] for r in records if r["kind"] == "epoch"]
    assert epochs == [0, 1]  # epoch 0 not repeated

    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"\x80\x02garbage")
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        load_regressor(str(corrupt))
    torch.save({"task": "refine", "model": {}}, tmp_path / "refiner.pth")
    with pytest.raises(CheckpointError):
        load_regressor(str(tmp_path / "refiner.pth"))
    mismatched = tmp_path / "mismatched.pth"
    torch.save(dict(ckpt, targets=["a", "b", "c"]), mismatched)  # three outputs asked, one-output weights
    with pytest.raises(CheckpointError, match="does not fit"):
        load_regressor(str(mismatched))


def _render(tmp_path, name: str, count: int, seed: int) -> str:
    """The head scene, camera orbiting at azimuth 0 with elevation uniform in 0..60 degrees, grey background."""
    import subprocess

    pytest.importorskip("bpy")
    config = apply_preset(
        DatasetConfig(
            name=name,
            count=count,
            render=RenderSettings(resolution=(64, 64), samples=1),
            output=OutputSettings(depth_png=False),
        ),
        "none",
    )
    camera = dataclasses.replace(config.camera, elevation_deg=Range(0.0, 60.0), azimuth_deg=Range.const(0.0))
    cfg_path = str(tmp_path / f"{name}.json")
    save_config(dataclasses.replace(config, camera=camera), cfg_path)
    out = str(tmp_path / name)
    cmd = [
        sys.executable,
        HEADLESS,
        "--config",
        cfg_path,
        "--out",
        out,
        "--scene-script",
        HEAD_SCENE,
        "--count",
        str(count),
        "--seed",
        str(seed),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out


@pytest.mark.blender
def test_learns_camera_elevation_far_better_than_naive(tmp_path):
    train = _render(tmp_path, "train", 48, seed=0)
    val = _render(tmp_path, "val", 16, seed=1)
    with open(os.path.join(train, "annotations.json")) as f:
        elevations = [im["blendset"]["params"]["camera.elevation_deg"] for im in json.load(f)["images"]]
    assert 0.0 <= min(elevations) < 10.0 and 50.0 < max(elevations) <= 60.0  # the renders span the range

    run = str(tmp_path / "run")
    summary = train_regression(
        train,
        val,
        run,
        "camera.elevation_deg",
        model_name="resnet18",
        epochs=8,
        batch_size=8,
        lr=1e-3,
        image_size=64,
        seed=0,
    )
    assert summary["best_val_mse"] < 0.5 * summary["naive_val_mse"], summary["history"]

    out = str(tmp_path / "eval")
    metrics = evaluate_regression(run, val, out, by_attribute=["camera.elevation_deg"], saliency_samples=2)
    assert metrics["better_than_naive"] and metrics["mse_normalized"] < 0.5 * metrics["naive_mse_normalized"]
    t = metrics["per_target"]["camera.elevation_deg"]
    assert t["mae"] < 0.75 * t["naive_mae"]  # in degrees
    for name in ("metrics.json", "errors.csv", "error_distribution.png", "error_vs_camera.elevation_deg.png"):
        assert os.path.getsize(os.path.join(out, name)) > 0, name
    saliency = sorted(os.listdir(os.path.join(out, "saliency")))
    assert len(saliency) == 2 and all(s.endswith(".png") for s in saliency)
    best = torch.load(os.path.join(run, "best.pth"), weights_only=True)
    assert best["target_ranges"]["camera.elevation_deg"][1] == pytest.approx(max(elevations))

"""`blendset bench variability` end to end at toy scale: five engine-rendered datasets, four regressors, one
table. Toy numbers mean nothing (16 frames, 2 epochs); the test checks the wiring, the scenarios' settings as
rendered, and that a rerun resumes instead of redoing the work."""

from __future__ import annotations

import json
import math
import os

import pytest
import torch
from click.testing import CliRunner

from trainer.bench.variability import PRESETS, SCALES, TARGETS, check_finding

torch.set_num_threads(1)


def test_check_finding_reads_the_rows():
    rows = [
        {"train": "none", "mse": 0.9, "naive_mse": 0.33},
        {"train": "angle", "mse": 0.5, "naive_mse": 0.33},
        {"train": "angle_bg", "mse": 0.3, "naive_mse": 0.33},
        {"train": "all", "mse": 0.1, "naive_mse": 0.33},
    ]
    assert check_finding(rows)["reproduced"]
    rows[2]["mse"] = 0.4
    finding = check_finding(rows)
    assert not finding["angle_bg_better_than_naive"] and not finding["reproduced"]


def _params(dataset: str) -> list[dict]:
    with open(os.path.join(dataset, "annotations.json")) as f:
        return [im["blendset"]["params"] for im in json.load(f)["images"]]


@pytest.mark.blender
def test_variability_bench_runs_end_to_end_at_toy_scale(tmp_path):
    pytest.importorskip("bpy")
    from trainer.cli import cli

    out = str(tmp_path / "bench")
    args = ["bench", "variability", "--out", out, "--scale", "toy", "--device", "cpu", "-q"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    with open(os.path.join(out, "results.json")) as f:
        results = json.load(f)
    assert [r["train"] for r in results["rows"]] == list(PRESETS)
    for row in results["rows"]:
        assert math.isfinite(row["mse"]) and row["naive_mse"] > 0
        assert all(math.isfinite(row[f"mae[{t}]"]) for t in TARGETS)
    assert set(results["finding"]) >= {"none_worse_than_naive", "angle_worse_than_naive", "reproduced"}
    for name in ("table.md", "table.csv", "errors_violin.png", "error_vs_azimuth.png"):
        assert os.path.getsize(os.path.join(out, name)) > 0, name
    for preset in PRESETS:
        assert os.path.exists(os.path.join(out, "runs", preset, "eval", "test_all", "metrics.json"))

    # The scenarios as rendered: none keeps one camera angle and a flat background, angle varies the azimuth,
    # angle_bg and all put photographs behind the head; the targets vary everywhere.
    toy = SCALES["toy"]
    none, angle = _params(os.path.join(out, "data", "none")), _params(os.path.join(out, "data", "angle"))
    bg, test = _params(os.path.join(out, "data", "angle_bg")), _params(os.path.join(out, "data", "test_all"))
    assert len(none) == toy.train_count and len(test) == toy.test_count
    assert len({p["camera.azimuth_deg"] for p in none}) == 1 and len({p["camera.azimuth_deg"] for p in angle}) > 1
    assert "background.value" in none[0] and "background.image_scale" in bg[0]
    assert "background.image_scale" in test[0] and len({p["camera.focal_length_mm"] for p in test}) > 1
    for params in (none, angle, bg, test):
        for t in TARGETS:
            assert all(-1.0 <= p[t] <= 1.0 for p in params) and len({p[t] for p in params}) == len(params)

    # A second run finds every dataset and model in place and gives the same table.
    again = CliRunner().invoke(cli, args[:-1])
    assert again.exit_code == 0, again.output
    assert "already rendered" in again.output and "already trained" in again.output
    with open(os.path.join(out, "results.json")) as f:
        assert json.load(f)["rows"] == results["rows"]

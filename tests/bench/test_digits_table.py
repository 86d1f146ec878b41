"""The benchmark's bookkeeping on hand-made cells: the target check, the table and the plot."""

from __future__ import annotations

import csv

from trainer.bench.digits_results import Cell, check_target, plot_error_vs_budget, write_table
from trainer.bench.digits_steps import TrainingSet
from trainer.bench.stats import Estimate


def _cell(ts: str, budget, mean: float, half: float = 0.03, n_real: int | None = None) -> Cell:
    n = n_real if n_real is not None else (budget or 0)
    return Cell(ts, ts, budget, n, 0 if ts == "real" else 400, Estimate(mean, mean - half, mean + half, 900), "/r")


def _cells(mixed10: float, mixed30: float, mixed100: float = 0.9) -> list[Cell]:
    return [
        _cell("synthetic", 0, 0.6, n_real=0),
        _cell("real", 10, 0.45),
        _cell("real", 30, 0.7),
        _cell("real", 100, 0.85),
        _cell("real", None, 0.95, n_real=746),
        _cell("real+synthetic", 10, mixed10),
        _cell("real+synthetic", 30, mixed30),
        _cell("real+synthetic", 100, mixed100),
        _cell("real+synthetic", None, 0.95, n_real=746),
    ]


def test_target_met_needs_every_budget_and_separated_cis_at_the_smallest():
    met = check_target(_cells(0.60, 0.75))
    assert met["met"] is True and met["smallest_budget"] == 10 and met["non_overlapping_at_smallest"]
    overlapping = check_target(_cells(0.50, 0.75))  # better, but CIs [0.42,0.48] and [0.47,0.53] overlap
    assert overlapping["met"] is False and overlapping["beats_real_only"]["10"]
    assert not overlapping["non_overlapping_at_smallest"]
    worse_at_30 = check_target(_cells(0.60, 0.65))
    assert worse_at_30["met"] is False and worse_at_30["beats_real_only"] == {"10": True, "30": False, "100": True}
    assert check_target([_cell("synthetic", 0, 0.6, n_real=0)])["met"] is None


def test_table_and_plot(tmp_path):
    cells = _cells(0.60, 0.75)
    csv_path, md_path = write_table(cells, str(tmp_path))
    rows = list(csv.DictReader(open(csv_path)))
    assert [r["budget"] for r in rows] == ["0", "10", "30", "100", "all", "10", "30", "100", "all"]
    assert rows[1]["error"] == "0.55" and rows[1]["ci_lo"] == "0.42"
    md = open(md_path).read()
    assert md.count("\n") == len(cells) + 2 and "| real+synthetic | all | 746 | 400 | 0.950 |" in md
    png = plot_error_vs_budget(cells, 746, str(tmp_path / "plot.png"))
    assert open(png, "rb").read(4) == b"\x89PNG"


def test_training_sets_are_an_extension_point():
    from trainer.bench import digits as D

    keys = [t.key for t in D.TRAINING_SETS]
    assert keys == ["synthetic", "real", "real+synthetic"]
    assert set(D.SYNTHETIC_BUILDERS) == {"synthetic"}
    extra = TrainingSet("real+refined", "(d) real + refined", real=True, synthetic="refined")
    assert extra.budgets_apply and not D.TRAINING_SETS[0].budgets_apply

"""What the digits benchmark reports: one :class:`Cell` per trained model, the table (CSV + Markdown), the plot of
error against the real budget, and the check of the stated target."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from typing import Any

from shared.atomic import atomic_path, atomic_write, write_text
from trainer.bench.digits_data import budget_label
from trainer.bench.stats import Estimate


@dataclass
class Cell:
    """One trained model: a training set at one real budget, scored on the real test set."""

    training_set: str
    label: str
    budget: int | None
    n_real: int
    n_synthetic: int
    accuracy: Estimate
    run: str

    def row(self) -> dict[str, Any]:
        a = self.accuracy
        return {
            "training_set": self.training_set,
            "budget": budget_label(self.budget),
            "n_real": self.n_real,
            "n_synthetic": self.n_synthetic,
            "accuracy": round(a.mean, 4),
            "ci_lo": round(a.lo, 4),
            "ci_hi": round(a.hi, 4),
            "error": round(1.0 - a.mean, 4),
            "n_test": a.n,
            "run": os.path.relpath(self.run),
        }


# ---------------------------------------------------------------------------------------------------------------
# Table and plot


def write_table(cells: list[Cell], out: str) -> tuple[str, str]:
    rows = [c.row() for c in cells]
    csv_path, md_path = os.path.join(out, "table.csv"), os.path.join(out, "table.md")
    with atomic_write(csv_path, newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    lines = [
        "| training set | real budget | real imgs | synthetic imgs | test accuracy | 95% CI | n test |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in cells:
        a = c.accuracy
        b = budget_label(c.budget) if c.n_real else "0"
        lines.append(
            f"| {c.label} | {b} | {c.n_real} | {c.n_synthetic} | {a.mean:.3f} | [{a.lo:.3f}, {a.hi:.3f}] | {a.n} |"
        )
    write_text(md_path, "\n".join(lines) + "\n")
    return csv_path, md_path


# Lines without real images are horizontal bands; each gets its own colour and dash, in plot order, so (a) synthetic
# only and (e) refined only stay apart. Curves take matplotlib's colour cycle; refined ones a square marker.
FLAT_STYLES: list[tuple[str, str]] = [("grey", "--"), ("tab:purple", ":"), ("tab:brown", "-.")]
CURVE_MARKERS: dict[str, str] = {"real+refined": "s"}


def plot_error_vs_budget(cells: list[Cell], pool_size: int, path: str) -> str:
    """The refinement talk's figure: test error vs number of real training images, one line per training set. A training
    set without real images is a horizontal dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=110)
    by_set: dict[str, list[Cell]] = {}
    for c in cells:
        by_set.setdefault(c.label, []).append(c)
    xs_all = sorted({c.n_real for c in cells if c.n_real})
    flat = 0
    for label, group in by_set.items():
        if all(c.n_real == 0 for c in group):
            c = group[0]
            color, ls = FLAT_STYLES[flat % len(FLAT_STYLES)]
            flat += 1
            ax.axhline(1 - c.accuracy.mean, ls=ls, color=color, label=f"{label} ({c.n_synthetic} renders)")
            ax.axhspan(1 - c.accuracy.hi, 1 - c.accuracy.lo, color=color, alpha=0.12)
            continue
        group = sorted(group, key=lambda c: c.n_real)
        x = [c.n_real for c in group]
        y = [1 - c.accuracy.mean for c in group]
        yerr = [[c.accuracy.hi - c.accuracy.mean for c in group], [c.accuracy.mean - c.accuracy.lo for c in group]]
        ax.errorbar(x, y, yerr=yerr, marker=CURVE_MARKERS.get(group[0].training_set, "o"), capsize=3, label=label)
    ax.set_xscale("log")
    if xs_all:
        ax.set_xticks(xs_all)
        ax.set_xticklabels([str(x) for x in xs_all])
    ax.set_xlabel(f"real training images (pool of {pool_size})")
    ax.set_ylabel("test error on real digits")
    ax.set_ylim(0, max(0.05, min(1.0, ax.get_ylim()[1])))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("Error vs real budget (95% bootstrap CI)", fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp)
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------------------------------------------
# The target


def check_target(cells: list[Cell]) -> dict[str, Any]:
    """The stated target: real + synthetic beats real only at every budget <= 100, with non-overlapping 95% CIs
    at the smallest budget."""
    real = {c.budget: c for c in cells if c.training_set == "real"}
    mixed = {c.budget: c for c in cells if c.training_set == "real+synthetic"}
    budgets = sorted(b for b in real if b is not None and b in mixed and b <= 100)
    if not budgets:
        return {"met": None, "reason": "no budget <= 100 run for both real and real+synthetic"}
    beats = {str(b): mixed[b].accuracy.mean > real[b].accuracy.mean for b in budgets}
    smallest = budgets[0]
    separated = mixed[smallest].accuracy.lo > real[smallest].accuracy.hi
    return {
        "met": all(beats.values()) and separated,
        "beats_real_only": beats,
        "non_overlapping_at_smallest": separated,
        "smallest_budget": smallest,
    }

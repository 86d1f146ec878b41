"""Bootstrap confidence intervals for accuracies, as the bias-fix study reports them (percentile intervals)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Estimate:
    """A mean with its 95% percentile-bootstrap interval and the number of test items behind it."""

    mean: float
    lo: float
    hi: float
    n: int

    def overlaps(self, other: Estimate) -> bool:
        return not (self.hi < other.lo or other.hi < self.lo)

    def to_dict(self) -> dict:
        return {"mean": self.mean, "lo": self.lo, "hi": self.hi, "n": self.n}


def bootstrap_mean(values: np.ndarray, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> Estimate:
    """Mean of ``values`` (e.g. 0/1 correctness) with a percentile bootstrap interval over ``n_boot`` resamples."""
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), 0)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, values.size, size=(n_boot, values.size))
    means = values[idx].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return Estimate(float(values.mean()), float(lo), float(hi), int(values.size))


def per_class_accuracy(
    labels: np.ndarray, preds: np.ndarray, n_classes: int, n_boot: int = 1000, seed: int = 0
) -> list[Estimate]:
    """Per-class accuracy (recall), each with its own bootstrap over that class's test items."""
    labels, preds = np.asarray(labels), np.asarray(preds)
    return [bootstrap_mean(preds[labels == c] == c, n_boot=n_boot, seed=seed + c) for c in range(n_classes)]


def per_class_mean(
    labels: np.ndarray, values: np.ndarray, n_classes: int, n_boot: int = 1000, seed: int = 0
) -> list[Estimate]:
    """Per-class mean of per-item ``values`` (e.g. correctness averaged over several training seeds), each with
    a bootstrap over that class's test items."""
    labels, values = np.asarray(labels), np.asarray(values, dtype=np.float64)
    return [bootstrap_mean(values[labels == c], n_boot=n_boot, seed=seed + c) for c in range(n_classes)]

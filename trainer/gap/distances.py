"""Distances between two samples: 1-D metadata histograms and high-dimensional feature clouds.

Pure numpy/scipy/sklearn. Every function takes plain arrays so the tests can feed distributions whose answer is
known in closed form (two Gaussians, planted outliers, a planted knee).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from trainer.gap import GapError

# A Bhattacharyya coefficient below this counts as "no overlap": the distance is capped instead of infinite,
# so JSON stays valid and rankings stay defined. -ln(1e-6) = 13.8.
MIN_COEFFICIENT = 1e-6
MAX_DISTANCE = -math.log(MIN_COEFFICIENT)


# ---------------------------------------------------------------------------------------------------------------
# 1-D: Bhattacharyya


def bhattacharyya_hist(p: Sequence[float], q: Sequence[float]) -> float:
    """D_B = -ln(sum_i sqrt(p_i q_i)) for two histograms over the same bins (normalised here).

    0 for identical histograms; capped at ``MAX_DISTANCE`` for histograms with no common bin."""
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    if p.shape != q.shape or p.ndim != 1:
        raise GapError(f"histograms must be 1-D and of the same length, got {p.shape} and {q.shape}")
    if p.sum() <= 0 or q.sum() <= 0:
        raise GapError("a histogram is empty")
    bc = float(np.sum(np.sqrt((p / p.sum()) * (q / q.sum()))))
    return float(-math.log(min(1.0, max(bc, MIN_COEFFICIENT))))


def bhattacharyya_gaussian(mu1: float, sigma1: float, mu2: float, sigma2: float) -> float:
    """Closed form for two normal distributions (the tests compare the histogram estimate with it)."""
    v1, v2 = sigma1**2, sigma2**2
    return 0.25 * (mu1 - mu2) ** 2 / (v1 + v2) + 0.5 * math.log((v1 + v2) / (2.0 * sigma1 * sigma2))


def shared_edges(a: np.ndarray, b: np.ndarray, bins: int | None = None) -> np.ndarray:
    """Bin edges spanning both samples. Default bin count: sqrt of the smaller sample, 5..40, so a small real
    set does not get a histogram of mostly empty bins (which would inflate every distance)."""
    lo = float(min(a.min(), b.min()))
    hi = float(max(a.max(), b.max()))
    if bins is None:
        bins = int(np.clip(round(math.sqrt(min(len(a), len(b)))), 5, 40))
    if hi <= lo:
        hi = lo + 1.0
    return np.linspace(lo, hi, bins + 1)


@dataclass
class Histogram1D:
    """Two samples binned on shared edges, with their Bhattacharyya distance."""

    distance: float
    edges: np.ndarray
    p: np.ndarray  # counts, sample A
    q: np.ndarray  # counts, sample B
    log_scale: bool


def compare_1d(a: Sequence[float], b: Sequence[float], bins: int | None = None, log: bool = False) -> Histogram1D:
    """Bin ``a`` and ``b`` on shared edges (log10 space when ``log``) and measure their Bhattacharyya distance.

    Non-finite values are ignored (a metadata that could not be computed for one box is NaN)."""
    a = _finite(a, log)
    b = _finite(b, log)
    if len(a) == 0 or len(b) == 0:
        raise GapError("cannot compare an empty sample")
    edges = shared_edges(a, b, bins)
    p, _ = np.histogram(a, edges)
    q, _ = np.histogram(b, edges)
    return Histogram1D(bhattacharyya_hist(p, q), edges, p, q, log)


def _finite(x: Sequence[float], log: bool) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    if log:
        x = np.log10(x[x > 0])
    return x


# ---------------------------------------------------------------------------------------------------------------
# Feature space


def standardize(real: np.ndarray, synthetic: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scale every dimension by the pooled mean and std, so no single feature dominates Euclidean distances."""
    both = np.concatenate([real, synthetic])
    mean = both.mean(axis=0)
    std = both.std(axis=0)
    std[std < 1e-12] = 1.0
    return (real - mean) / std, (synthetic - mean) / std


def standardize_to(reference: np.ndarray, other: np.ndarray, floor: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Scale both sets by the reference's mean and std; a dimension nearly constant in the reference gets at
    least ``floor`` times its pooled std, so it cannot blow up."""
    mean = reference.mean(axis=0)
    pooled = np.concatenate([reference, other]).std(axis=0)
    std = np.maximum(reference.std(axis=0), floor * pooled)
    std[std < 1e-12] = 1.0
    return (reference - mean) / std, (other - mean) / std


def pairwise(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances, shape (len(a), len(b))."""
    d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.sqrt(np.maximum(d2, 0.0))


def knn_distance(query: np.ndarray, reference: np.ndarray, k: int = 5, same_set: bool = False) -> np.ndarray:
    """Mean distance from each query row to its ``k`` nearest reference rows (leaving itself out if
    ``same_set``). Low = the query lies inside the reference distribution."""
    d = pairwise(query, reference)
    if same_set:
        np.fill_diagonal(d, np.inf)
    k = max(1, min(k, reference.shape[0] - (1 if same_set else 0)))
    return np.sort(d, axis=1)[:, :k].mean(axis=1)


def kde_log_likelihood(reference: np.ndarray, query: np.ndarray, max_dims: int = 16) -> np.ndarray:
    """Gaussian KDE fitted on ``reference``, evaluated at ``query`` (log density per row).

    High-dimensional KDE is meaningless with ~100 reference points, so both sets are first projected on the
    reference's top principal components (at most ``max_dims``, at most n-1), and the bandwidth follows
    Scott's rule in that space."""
    from sklearn.decomposition import PCA
    from sklearn.neighbors import KernelDensity

    n = reference.shape[0]
    if n < 2:
        raise GapError(f"a KDE needs at least 2 reference samples, got {n}")
    dims = int(max(1, min(max_dims, n - 1, reference.shape[1])))
    pca = PCA(n_components=dims, random_state=0).fit(reference)
    ref = pca.transform(reference)
    qry = pca.transform(query)
    scale = ref.std(axis=0)
    scale[scale < 1e-12] = 1.0
    ref, qry = ref / scale, qry / scale
    bandwidth = n ** (-1.0 / (dims + 4))
    kde = KernelDensity(kernel="gaussian", bandwidth=bandwidth).fit(ref)
    return kde.score_samples(qry)


def frechet_distance(x: np.ndarray, y: np.ndarray) -> float:
    """||mu_x - mu_y||^2 + Tr(S_x + S_y - 2 (S_x S_y)^(1/2)) between Gaussians fitted to the two sets.

    The matrix square root goes through the symmetric form S_x^(1/2) S_y S_x^(1/2), whose eigenvalues are
    clipped at 0: stable even when the covariances are singular (fewer samples than dimensions)."""
    if x.shape[0] < 2 or y.shape[0] < 2:
        raise GapError("the Fréchet distance needs at least 2 samples on each side")
    mu_x, mu_y = x.mean(0), y.mean(0)
    s_x = np.atleast_2d(np.cov(x, rowvar=False))
    s_y = np.atleast_2d(np.cov(y, rowvar=False))
    w, v = np.linalg.eigh(s_x)
    root_x = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    middle = root_x @ s_y @ root_x
    tr_sqrt = float(np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum())
    return float(((mu_x - mu_y) ** 2).sum() + np.trace(s_x) + np.trace(s_y) - 2.0 * tr_sqrt)


def prdc(real: np.ndarray, fake: np.ndarray, k: int = 5) -> dict[str, float]:
    """Precision, recall, density and coverage (Naeem et al. 2020) with k-NN balls.

    precision: share of fake samples inside some real k-NN ball; recall: share of real samples inside some fake
    ball; density: mean number of real balls containing a fake sample, over k; coverage: share of real balls
    that contain at least one fake sample."""
    k = max(1, min(k, real.shape[0] - 1, fake.shape[0] - 1))
    if k < 1:
        raise GapError("precision/recall need at least 2 samples on each side")
    real_radius = np.sort(pairwise(real, real), axis=1)[:, k]  # column 0 is the point itself
    fake_radius = np.sort(pairwise(fake, fake), axis=1)[:, k]
    d = pairwise(real, fake)  # (n_real, n_fake)
    inside_real = d < real_radius[:, None]
    return {
        "precision": float(inside_real.any(axis=0).mean()),
        "recall": float((d < fake_radius[None, :]).any(axis=1).mean()),
        "density": float(inside_real.sum(axis=0).mean() / k),
        "coverage": float((d.min(axis=1) < real_radius).mean()),
        "k": k,
    }


def likelihood_scores(real: np.ndarray, synthetic: np.ndarray, method: str = "knn", k: int = 5) -> np.ndarray:
    """How likely each synthetic row is under the real feature distribution; higher = more like the real set.

    ``knn``: minus the mean distance to the ``k`` nearest real rows; ``kde``: Gaussian KDE log-density. Features
    are scaled by the real set's own spread (not the pooled one: outliers would inflate the pooled spread of
    exactly the dimensions they stand out in). ``filter`` cuts on these scores; ``analyze`` ranks shapes by them."""
    if len(real) < 2:
        raise GapError(f"scoring needs at least 2 real samples, got {len(real)}")
    r, s = standardize_to(real, synthetic)
    if method == "knn":
        return -knn_distance(s, r, k)
    if method == "kde":
        return kde_log_likelihood(r, s)
    raise GapError(f"unknown scoring method {method!r}; use knn or kde")


# ---------------------------------------------------------------------------------------------------------------
# Cuts and uncertainty


def elbow_index(values: Sequence[float], min_gain: float = 0.1, window: float = 0.25) -> int:
    """Kneedle: the knee of an ascending curve is the point farthest above the straight line from its first to
    its last point, after scaling both axes to [0, 1].

    ``values`` sorted ascending (worst score first). Returns how many leading values lie before the knee (the
    number to drop), or 0 when the curve is too close to a straight line (largest gap < ``min_gain``): no knee,
    nothing stands out, nothing is dropped.

    Kneedle's knee is the first point of the plateau, which on noisy data sits a point or two past a clean break.
    So the cut moves back to the largest single step among the last ``window`` share (at least 2 steps) of the
    points before the knee: planted outliers end exactly where the jump to the inliers is."""
    y = np.asarray(values, dtype=np.float64)
    n = len(y)
    if n < 3:
        return 0
    if np.any(np.diff(y) < -1e-12):
        raise GapError("elbow_index expects values sorted ascending")
    span = y[-1] - y[0]
    if span <= 0:
        return 0
    x = np.linspace(0.0, 1.0, n)
    gap = (y - y[0]) / span - x  # above the chord: a steep rise early, then a plateau
    i = int(np.argmax(gap))
    if gap[i] < min_gain or i == 0:
        return 0
    lo = max(0, i - max(2, int(math.ceil(window * i))))
    steps = np.diff(y[lo : i + 1])
    return lo + int(np.argmax(steps)) + 1


def bootstrap(statistic: Callable[[np.random.Generator], float], n: int = 200, seed: int = 0) -> dict[str, float]:
    """Run ``statistic(rng)`` ``n`` times (it resamples its own inputs with ``rng``) and summarise."""
    rng = np.random.default_rng(seed)
    values = np.array([statistic(rng) for _ in range(n)], dtype=np.float64)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        raise GapError("every bootstrap replicate was undefined")
    lo, hi = np.percentile(values, [2.5, 97.5])
    return {
        "mean": float(values.mean()),
        "std": float(values.std(ddof=1) if len(values) > 1 else 0.0),
        "ci95": [float(lo), float(hi)],
        "n": int(len(values)),
    }


def wilson_interval(successes: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a proportion: sane at 0 and 1 and for small counts."""
    if total == 0:
        return (0.0, 1.0)
    p = successes / total
    denom = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))

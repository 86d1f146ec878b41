"""Known-answer tests for the gap toolkit's statistics: Bhattacharyya, elbow, KNN/KDE, Fréchet, PRDC, GMM."""

from __future__ import annotations

import math

import numpy as np
import pytest

from trainer.gap import GapError
from trainer.gap import distances as dist
from trainer.gap.align import fit_mixture


def test_bhattacharyya_zero_for_identical_histograms():
    p = [3, 0, 7, 12, 1]
    assert dist.bhattacharyya_hist(p, p) == pytest.approx(0.0, abs=1e-12)
    # Only shape matters, not the count: the same histogram scaled by 5 is still identical.
    assert dist.bhattacharyya_hist(p, [5 * v for v in p]) == pytest.approx(0.0, abs=1e-12)


def test_bhattacharyya_disjoint_is_capped_not_infinite():
    d = dist.bhattacharyya_hist([1, 1, 0, 0], [0, 0, 1, 1])
    assert d == pytest.approx(dist.MAX_DISTANCE)
    assert math.isfinite(d)


@pytest.mark.parametrize("mu2,s2", [(1.0, 1.0), (2.0, 1.5), (0.5, 0.5)])
def test_bhattacharyya_histogram_matches_gaussian_closed_form(mu2, s2):
    rng = np.random.default_rng(1)
    a = rng.normal(0.0, 1.0, 200_000)
    b = rng.normal(mu2, s2, 200_000)
    expected = dist.bhattacharyya_gaussian(0.0, 1.0, mu2, s2)
    got = dist.compare_1d(a, b, bins=80).distance
    assert got == pytest.approx(expected, rel=0.05, abs=0.005)


def test_gaussian_closed_form_known_values():
    # Equal variances: D_B = (mu1-mu2)^2 / (8 sigma^2).
    assert dist.bhattacharyya_gaussian(0, 1, 2, 1) == pytest.approx(0.5)
    # Equal means: only the variance term, 0.5 ln((1+4)/(2*1*2)).
    assert dist.bhattacharyya_gaussian(0, 1, 0, 2) == pytest.approx(0.5 * math.log(5 / 4))


def test_compare_1d_log_scale_ignores_non_positive_and_nan():
    h = dist.compare_1d([0.01, 0.1, np.nan, -1.0, 1.0], [0.01, 0.1, 1.0], log=True)
    assert h.distance == pytest.approx(0.0, abs=1e-9)
    assert h.p.sum() == 3


def test_elbow_finds_planted_knee():
    rng = np.random.default_rng(0)
    outliers = rng.uniform(-20, -15, 7)  # seven bad samples far below
    plateau = rng.normal(-3, 0.3, 93)
    values = np.sort(np.r_[outliers, plateau])
    assert dist.elbow_index(values) == 7


def test_elbow_on_smooth_concave_curve_lands_at_the_bend():
    x = np.linspace(0, 1, 101)
    values = -np.exp(-x / 0.1)  # rises fast, then flat; Kneedle's knee of this curve is near x = 0.23
    i = dist.elbow_index(values)
    assert 15 <= i <= 30


def test_elbow_no_knee_on_a_straight_line():
    assert dist.elbow_index(np.linspace(0, 1, 50)) == 0
    with pytest.raises(GapError, match="sorted ascending"):
        dist.elbow_index([3, 2, 1])


@pytest.mark.parametrize("method", ["knn", "kde"])
def test_likelihood_ranks_planted_outliers_last(method):
    from trainer.gap.distances import likelihood_scores

    rng = np.random.default_rng(3)
    real = rng.normal(0, 1, (80, 12))
    inliers = rng.normal(0, 1, (100, 12))
    outliers = rng.normal(0, 1, (6, 12)) + 6.0  # far from the real cloud in every dimension
    scores = likelihood_scores(real, np.r_[inliers, outliers], method=method)
    worst = set(np.argsort(scores)[:6].tolist())
    assert worst == set(range(100, 106))


def test_knn_distance_leave_one_out():
    x = np.array([[0.0], [1.0], [3.0]])
    assert dist.knn_distance(x, x, k=1, same_set=True).tolist() == [1.0, 1.0, 2.0]
    assert dist.knn_distance(x, x, k=1).tolist() == [0.0, 0.0, 0.0]


def test_frechet_zero_for_same_set_and_mean_shift_for_shifted_set():
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (500, 4))
    assert dist.frechet_distance(x, x) == pytest.approx(0.0, abs=1e-6)
    shift = np.array([1.0, 2.0, 0.0, 0.0])
    assert dist.frechet_distance(x, x + shift) == pytest.approx(5.0, rel=1e-6)  # ||shift||^2, same covariance


def test_prdc_identical_vs_disjoint():
    rng = np.random.default_rng(0)
    real = rng.normal(0, 1, (200, 5))
    same = rng.normal(0, 1, (200, 5))
    far = rng.normal(0, 1, (200, 5)) + 20
    near = dist.prdc(real, same, k=5)
    assert near["precision"] > 0.8 and near["recall"] > 0.8 and near["coverage"] > 0.8
    assert 0.7 < near["density"] < 1.3
    gone = dist.prdc(real, far, k=5)
    assert gone == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0, "k": 5}


def test_gmm_recovers_planted_components():
    rng = np.random.default_rng(0)
    a = rng.multivariate_normal([-2.0, 0.3], [[0.05, 0], [0, 0.002]], 120)
    b = rng.multivariate_normal([-0.5, 0.7], [[0.03, 0], [0, 0.003]], 60)
    fit = fit_mixture(np.r_[a, b])
    assert fit.k == 2
    order = np.argsort(fit.means[:, 0])
    np.testing.assert_allclose(fit.means[order], [[-2.0, 0.3], [-0.5, 0.7]], atol=0.06)
    np.testing.assert_allclose(fit.weights[order], [2 / 3, 1 / 3], atol=0.03)


def test_gmm_three_components_and_unimodal():
    rng = np.random.default_rng(1)
    centres = [(-2, 0.2), (-1, 0.8), (0, 0.2)]
    x = np.concatenate([rng.normal(c, 0.05, (50, 2)) for c in centres])
    assert fit_mixture(x).k == 3
    assert fit_mixture(rng.normal(0, 1, (200, 2))).k == 1


def test_gmm_refuses_more_clusters_than_samples():
    with pytest.raises(GapError, match=r"fewer real samples \(3\) than clusters \(5\)"):
        fit_mixture(np.zeros((3, 2)), components=5)
    with pytest.raises(GapError, match="no real samples"):
        fit_mixture(np.zeros((0, 2)))


def test_wilson_interval_contains_the_rate():
    lo, hi = dist.wilson_interval(5, 10)
    assert lo < 0.5 < hi
    assert dist.wilson_interval(0, 20)[0] == 0.0

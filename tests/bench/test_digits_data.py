"""The digits benchmark's data side: split, budgets, the render->real-form preprocessing, bootstrap intervals."""

from __future__ import annotations

import numpy as np
import pytest

from trainer.bench import digits_data as dd
from trainer.bench.stats import bootstrap_mean, per_class_accuracy


@pytest.fixture(scope="module")
def real():
    return dd.load_real_digits()


def test_real_digits_are_the_uci_form(real):
    images, labels = real
    assert images.shape == (1797, 8, 8) and images.dtype == np.uint8
    assert images.max() == 16 and images.min() == 0
    assert sorted(set(labels.tolist())) == list(range(10))


def test_split_is_fixed_disjoint_and_half_test(real):
    _, labels = real
    a, b = dd.split_real(labels, seed=5), dd.split_real(labels, seed=5)
    assert all(np.array_equal(x, y) for x, y in zip((a.pool, a.val, a.test), (b.pool, b.val, b.test), strict=True))
    sets = [set(a.pool.tolist()), set(a.val.tolist()), set(a.test.tolist())]
    assert not (sets[0] & sets[1]) and not (sets[0] & sets[2]) and not (sets[1] & sets[2])
    assert sum(len(s) for s in sets) == len(labels)
    assert len(a.test) >= 0.5 * len(labels)
    assert np.bincount(labels[a.val]).tolist() == [15] * 10
    other = dd.split_real(labels, seed=6)
    assert not np.array_equal(a.test, other.test)
    with pytest.raises(ValueError, match="test_share"):
        dd.split_real(labels, seed=0, test_share=0.3)


def test_budgets_are_balanced_and_nested(real):
    _, labels = real
    split = dd.split_real(labels, seed=0)
    small = dd.budget_subset(split.pool, labels, 10, seed=3)
    mid = dd.budget_subset(split.pool, labels, 30, seed=3)
    odd = dd.budget_subset(split.pool, labels, 25, seed=3)
    assert np.bincount(labels[small], minlength=10).tolist() == [1] * 10
    assert np.bincount(labels[mid], minlength=10).tolist() == [3] * 10
    assert sorted(np.bincount(labels[odd], minlength=10).tolist()) == [2] * 5 + [3] * 5
    assert set(small.tolist()) <= set(mid.tolist()) <= set(split.pool.tolist())
    assert np.array_equal(dd.budget_subset(split.pool, labels, None, seed=3), np.sort(split.pool))


def test_otsu_splits_two_levels():
    values = np.concatenate([np.full(100, 0.2), np.full(50, 0.8)])
    t = dd.otsu_threshold(values)
    assert 0.2 <= t < 0.8


def _bar_image(dark_on_light: bool) -> tuple[np.ndarray, np.ndarray]:
    """A 40x20 crop with a vertical bar 4 px wide: the digit '1' in its simplest form."""
    ink = np.zeros((40, 20), bool)
    ink[:, 8:12] = True
    bg, fg = (220, 30) if dark_on_light else (30, 220)
    rgb = np.where(ink[..., None], fg, bg).astype(np.uint8).repeat(3, axis=2)
    return rgb, ink


@pytest.mark.parametrize("dark_on_light", [True, False])
def test_to_digit_form_matches_the_uci_recipe(dark_on_light):
    rgb, ink = _bar_image(dark_on_light)
    out = dd.to_digit_form(rgb, ink)
    assert out.shape == (8, 8) and out.dtype == np.uint8 and out.max() <= 16
    # Height 40 -> 32 (scale 0.8): the bar is 3.2 px wide, centred: columns 3 and 4 hold all the ink, every row.
    assert (out[:, 3] + out[:, 4] > 8).all()
    assert out[:, :2].sum() == 0 and out[:, 6:].sum() == 0
    assert abs(out.sum() - 32 * 3.2) <= 32 * 1.2  # ink pixels preserved up to resampling
    # Polarity comes from the mask: without it, the minority side is ink, which is the bar here too.
    assert np.array_equal(dd.to_digit_form(rgb, None), out)


def test_imagefolder_round_trip(tmp_path, real):
    images, labels = real
    names = [f"r{i}" for i in range(20)]
    assert dd.write_imagefolder(str(tmp_path / "f"), images[:20], labels[:20], names) == 20
    back, back_labels, back_names = dd.read_imagefolder(str(tmp_path / "f"))
    order = np.argsort([names.index(n) for n in back_names])
    assert np.array_equal(back[order], images[:20]) and np.array_equal(back_labels[order], labels[:20])
    assert sorted(p.name for p in (tmp_path / "f").iterdir() if p.is_dir()) == [str(d) for d in range(10)]
    with pytest.raises(dd.DigitsDataError, match="no digit images"):
        dd.read_imagefolder(str(tmp_path))


def test_bootstrap_interval_covers_a_binomial():
    rng = np.random.default_rng(0)
    hits = 0
    for i in range(200):
        sample = rng.random(300) < 0.7
        est = bootstrap_mean(sample, n_boot=400, seed=i)
        hits += est.lo <= 0.7 <= est.hi
    assert 0.90 <= hits / 200 <= 0.99  # nominal 95%
    est = bootstrap_mean(np.ones(50), n_boot=100)
    assert est.mean == est.lo == est.hi == 1.0


def test_per_class_accuracy():
    labels = np.array([0, 0, 1, 1, 1, 2])
    preds = np.array([0, 1, 1, 1, 0, 2])
    acc = per_class_accuracy(labels, preds, 3, n_boot=200)
    assert [round(a.mean, 3) for a in acc] == [0.5, 0.667, 1.0]
    assert [a.n for a in acc] == [2, 3, 1]

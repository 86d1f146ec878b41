"""MixingSampler: requested shares per batch, DDP sharding, class balance."""

from collections import Counter

import pytest

from trainer.data.datasets import class_balanced_weights
from trainer.data.mixing import MixingSampler, parse_source, resolve_ratios


def _shares(indices, sizes):
    bounds = [sum(sizes[: i + 1]) for i in range(len(sizes))]
    src = Counter(next(i for i, b in enumerate(bounds) if x < b) for x in indices)
    return [src[i] / len(indices) for i in range(len(sizes))]


@pytest.mark.parametrize("ratio", [0.25, 0.1, 0.5, 0.9])
def test_ratio_within_two_percent_over_10k_draws(ratio):
    sizes = [1000, 37]  # a large synthetic set and a small real one: size alone would give 3.6%
    sampler = MixingSampler(sizes, [None, ratio], num_samples=10_000, block_size=8, seed=3)
    indices = list(sampler)
    assert len(indices) == 10_000
    assert abs(_shares(indices, sizes)[1] - ratio) <= 0.02


def test_every_batch_holds_the_requested_mix():
    sampler = MixingSampler([500, 40], [None, 0.25], num_samples=800, block_size=8, seed=0)
    indices = list(sampler)
    for b in range(0, 800, 8):
        assert sum(i >= 500 for i in indices[b : b + 8]) == 2


def test_unset_ratios_share_the_rest_by_size_and_bad_ratios_fail():
    assert resolve_ratios([300, 100, 50], [None, None, 0.5]) == pytest.approx([0.375, 0.125, 0.5])
    assert resolve_ratios([10, 30], [None, None]) == pytest.approx([0.25, 0.75])
    with pytest.raises(ValueError, match="add up"):
        resolve_ratios([10, 10], [0.7, 0.7])
    with pytest.raises(ValueError, match="not 1"):
        resolve_ratios([10, 10], [0.2, 0.3])
    assert parse_source("real/:0.25") == ("real/", 0.25)
    assert parse_source("synth/") == ("synth/", None)
    with pytest.raises(ValueError):
        parse_source("real/:1.5")


def test_without_weights_each_sample_is_used_once_per_pass():
    sampler = MixingSampler([20, 30], None, seed=1)
    assert sorted(sampler) == list(range(50))


def test_ranks_split_one_global_sequence_and_epochs_differ():
    kwargs = dict(sizes=[100, 20], ratios=[None, 0.3], num_samples=203, block_size=4, seed=5)
    full = list(MixingSampler(**kwargs))
    parts = [list(MixingSampler(**kwargs, rank=r, world_size=3)) for r in range(3)]
    assert len({len(p) for p in parts}) == 1  # equal length per rank (padded)
    merged = [parts[i % 3][i // 3] for i in range(len(parts[0]) * 3)]
    assert merged[:200] == full[:200]  # same global sequence (world size only adds padding at the end)
    s = MixingSampler(**kwargs)
    s.set_epoch(1)
    assert list(s) != full


def test_class_balanced_weights_equalise_classes():
    labels = [[0]] * 90 + [[1]] * 10
    weights = class_balanced_weights(labels)
    sampler = MixingSampler([100], None, num_samples=10_000, weights=[weights], seed=0)
    counts = Counter(labels[i][0] for i in sampler)
    assert abs(counts[1] / 10_000 - 0.5) < 0.03
    assert class_balanced_weights([[0], [], [0, 1]])[1] > 0  # empty detection images still get drawn

"""Mixing several training sources at chosen per-batch ratios (``--train synth/ --train real/:0.25``).

With a plain ``ConcatDataset`` the share of each source follows its size; users ask for a fixed share instead
(mmdet #9636, rf-detr #1286). ``MixingSampler`` draws indices into the concatenation so that every block of
``block_size`` draws (one batch) holds each source at its ratio, rounded with carried-over error, so the running
share never drifts by more than one sample per source from the request.

Sources without a ratio share what is left in proportion to their sizes. Inside a source, samples are walked in
a fresh random permutation (each sample once per pass), or, with ``weights`` (class-balanced sampling), drawn with
replacement by weight.

DDP: every rank builds the same global sequence from ``(seed, epoch)`` and keeps positions
``rank, rank + world_size, ...``, like ``DistributedSampler``; call ``set_epoch`` each epoch.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import torch


def parse_source(spec: str) -> tuple[str, float | None]:
    """``path`` or ``path:ratio`` (ratio in (0, 1]); a colon inside the path is allowed when no ratio follows."""
    head, sep, tail = spec.rpartition(":")
    if sep and head:
        try:
            ratio = float(tail)
        except ValueError:
            return spec, None
        if not 0 < ratio <= 1:
            raise ValueError(f"{spec!r}: the ratio after ':' must be in (0, 1], got {ratio}")
        return head, ratio
    return spec, None


def resolve_ratios(sizes: Sequence[int], ratios: Sequence[float | None]) -> list[float]:
    """Fill unset ratios from what is left, in proportion to source size; check that they add up to 1."""
    if len(sizes) != len(ratios):
        raise ValueError("one ratio (or None) per source")
    if any(n <= 0 for n in sizes):
        raise ValueError(f"every source needs at least one sample, sizes are {list(sizes)}")
    fixed = sum(r for r in ratios if r is not None)
    free = [i for i, r in enumerate(ratios) if r is None]
    if fixed > 1 + 1e-9:
        raise ValueError(f"source ratios add up to {fixed:.3f} > 1")
    if not free:
        if abs(fixed - 1) > 1e-6:
            raise ValueError(f"every source has a ratio and they add up to {fixed:.3f}, not 1")
        return [float(r) for r in ratios]
    if fixed >= 1 - 1e-9:
        raise ValueError("the given ratios add up to 1, leaving nothing for the sources without one")
    free_total = sum(sizes[i] for i in free)
    return [float(r) if r is not None else (1 - fixed) * sizes[i] / free_total for i, r in enumerate(ratios)]


class MixingSampler(torch.utils.data.Sampler[int]):
    """Indices into ``ConcatDataset(sources)`` with fixed source shares per block of draws.

    :param sizes: number of samples in each source, in ConcatDataset order.
    :param ratios: share of each source per batch; ``None`` entries share the rest by size.
    :param num_samples: draws per epoch over all ranks (default: the total size).
    :param block_size: draws per block; use the global batch size so every batch is mixed as asked.
    :param weights: optional per-source sample weights (class balance); drawn with replacement.
    """

    def __init__(
        self,
        sizes: Sequence[int],
        ratios: Sequence[float | None] | None = None,
        num_samples: int | None = None,
        block_size: int = 1,
        weights: Sequence[Sequence[float]] | None = None,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ):
        self.sizes = [int(n) for n in sizes]
        self.ratios = resolve_ratios(self.sizes, ratios or [None] * len(self.sizes))
        self.offsets = [0]
        for n in self.sizes[:-1]:
            self.offsets.append(self.offsets[-1] + n)
        self.total = int(num_samples or sum(self.sizes))
        self.block_size = max(1, int(block_size))
        if weights is not None:
            if [len(w) for w in weights] != self.sizes:
                raise ValueError("weights must give one value per sample of each source")
            self.weights = [torch.as_tensor(w, dtype=torch.float64) for w in weights]
        else:
            self.weights = None
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world size {world_size}")
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.epoch = 0
        self.per_rank = math.ceil(self.total / world_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.per_rank

    def source_sequence(self, n: int, generator: torch.Generator) -> list[int]:
        """Which source each of ``n`` draws comes from: exact shares per block, shuffled inside the block."""
        owed = [0.0] * len(self.sizes)
        sequence: list[int] = []
        while len(sequence) < n:
            block = min(self.block_size, n - len(sequence))
            counts = []
            for i, r in enumerate(self.ratios):
                owed[i] += r * block
                counts.append(math.floor(owed[i]))
            # hand out the remaining slots to the sources owed the most
            for i in sorted(range(len(owed)), key=lambda k: owed[k] - counts[k], reverse=True):
                if sum(counts) >= block:
                    break
                counts[i] += 1
            for i, c in enumerate(counts):
                owed[i] -= c
            chosen = [i for i, c in enumerate(counts) for _ in range(c)]
            perm = torch.randperm(len(chosen), generator=generator).tolist()
            sequence.extend(chosen[p] for p in perm)
        return sequence

    def __iter__(self) -> Iterator[int]:
        total = self.per_rank * self.world_size  # pad so every rank gets the same count
        sources = self.source_sequence(total, self._generator(-1))
        streams = [self._stream(i, self._generator(i)) for i in range(len(self.sizes))]
        indices = [self.offsets[s] + next(streams[s]) for s in sources]
        return iter(indices[self.rank :: self.world_size])

    def _generator(self, stream: int) -> torch.Generator:
        """One generator per (seed, epoch, stream): the sequence does not depend on the world size."""
        g = torch.Generator()
        g.manual_seed(hash((self.seed, self.epoch, stream)) & 0x7FFF_FFFF_FFFF)
        return g

    def _stream(self, source: int, g: torch.Generator) -> Iterator[int]:
        n = self.sizes[source]
        while True:
            if self.weights is not None:
                yield from torch.multinomial(self.weights[source], n, replacement=True, generator=g).tolist()
            else:
                yield from torch.randperm(n, generator=g).tolist()

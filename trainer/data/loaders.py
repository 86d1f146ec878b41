"""From training sources to data loaders: open each source, check they share one class list, mix them per batch.

Every task uses these (detect, keypoints, classify, regress), so the sample order, its split across DDP ranks and the
loader settings are the same everywhere.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from shared.progress import Note
from trainer.data.datasets import (
    DataError,
    ImageFolderDataset,
    align_categories,
    class_balanced_weights,
    dataset_name,
    describe_skips,
    sample_labels,
)
from trainer.data.mixing import MixingSampler
from trainer.training.distributed import DistInfo


def open_sources(sources: list[tuple[str, float | None]], make: Callable[[str], Any], note: Note) -> list:
    """Open each source, print what was skipped, and check they share one class list (error if not)."""
    datasets = []
    for path, _ in sources:
        ds = make(path)
        note(describe_skips(dataset_name(path), ds.skipped))
        if len(ds) == 0:
            raise DataError(f"{path}: no usable samples")
        datasets.append(ds)
    # the class list comes from the first COCO source (its ids mean something); ImageFolders follow it by name
    ref = next((i for i, ds in enumerate(datasets) if not isinstance(ds, ImageFolderDataset)), 0)
    for i, ds in enumerate(datasets):
        if i != ref:
            align_categories(datasets[ref].categories, ds, sources[ref][0], sources[i][0])
    if ref != 0:
        align_categories(datasets[ref].categories, datasets[0], sources[ref][0], sources[0][0])
    return datasets


def mixing_sampler(
    datasets: list,
    ratios: list[float | None],
    batch_size: int,
    balanced: bool,
    seed: int,
    dist: DistInfo,
    epoch_size: int | None = None,
) -> MixingSampler:
    """Draws per epoch are rounded up to whole global batches: every batch is full and mixed as asked (a last
    batch of one sample would also break BatchNorm)."""
    weights = [class_balanced_weights(sample_labels(ds)) for ds in datasets] if balanced else None
    block = batch_size * dist.world_size
    draws = epoch_size or sum(len(ds) for ds in datasets)
    draws = math.ceil(draws / block) * block
    try:
        return MixingSampler(
            [len(ds) for ds in datasets], ratios, num_samples=draws, block_size=block, weights=weights, seed=seed,
            rank=dist.rank, world_size=dist.world_size,
        )  # fmt: skip
    except ValueError as exc:
        raise DataError(f"source mixing: {exc}") from exc


def train_loader(
    datasets: list, sampler: MixingSampler, batch_size: int, workers: int, collate, seed: int, device: str
) -> torch.utils.data.DataLoader:
    generator = torch.Generator()
    generator.manual_seed(seed)
    return torch.utils.data.DataLoader(
        torch.utils.data.ConcatDataset(datasets),
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        collate_fn=collate,
        pin_memory=str(device).startswith("cuda"),
        drop_last=False,
        persistent_workers=workers > 0,
        generator=generator,
    )


def eval_loader(dataset, batch_size: int, workers: int, collate=None) -> torch.utils.data.DataLoader:
    return torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=False, num_workers=workers, collate_fn=collate
    )

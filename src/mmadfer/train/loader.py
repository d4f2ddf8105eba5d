"""Data loading that is reproducible to the bit and resumable mid-epoch, and fast enough to keep a GPU fed.

Three pieces make a resumed run see exactly the batches the original run would have seen:

* :class:`EpochSampler`, a :class:`~torch.utils.data.DistributedSampler` (shuffled with ``seed + epoch``, padded to
  the world size) that yields ``(epoch, index)`` pairs and can start part-way into an epoch;
* :class:`SeededDataset`, which draws each sample's random augmentation from a generator seeded by
  ``(seed, epoch, index)``, so the draws do not depend on which worker process loads the sample, nor on how many
  workers there are;
* a DataLoader with its own ``generator``, so creating an iterator does not consume the global RNG that drop-path
  uses.

Loaders use worker processes, pinned memory (on a GPU), persistent workers and prefetching; video stays uint8 until
it is on the device.
"""
from __future__ import annotations

from typing import Any, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from ..data.datasets import collate_clips

__all__ = ["sample_seed", "SeededDataset", "EpochSampler", "build_loader"]


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A well-mixed 64-bit seed for one sample's augmentation in one epoch (all arguments non-negative)."""
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1, np.uint64)[0])


class SeededDataset(Dataset):
    """Wrap a dataset so that item ``(epoch, index)`` is loaded with torch's global generator seeded from
    ``(seed, epoch, index)`` (the data layer's frame sampling and augmentation draw from it). The caller's generator
    state is saved and restored around the call, so loading in the main process leaves training randomness alone.
    A plain integer key is loaded as epoch 0."""

    def __init__(self, dataset: Dataset, seed: int):
        self.dataset = dataset
        self.seed = int(seed)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int] | int) -> Any:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(sample_seed(self.seed, epoch, index))
            return self.dataset[index]


class EpochSampler(DistributedSampler):
    """:class:`DistributedSampler` yielding ``(epoch, index)``; ``set_epoch(epoch, start)`` skips the first
    ``start`` samples of this rank's share (the batches a resumed run has already trained on)."""

    def __init__(self, dataset: Dataset, *, num_replicas: int = 1, rank: int = 0, shuffle: bool = True,
                 seed: int = 0, drop_last: bool = False):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed,
                         drop_last=drop_last)
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        super().set_epoch(epoch)
        self.start = int(start)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        indices = list(super().__iter__())[self.start:]
        return iter([(self.epoch, i) for i in indices])

    def __len__(self) -> int:
        return max(0, self.num_samples - self.start)


def build_loader(dataset: Dataset, *, batch_size: int, seed: int, shuffle: bool, rank: int = 0, world_size: int = 1,
                 num_workers: int = 0, pin_memory: bool = False, persistent_workers: bool = True,
                 prefetch_factor: int = 4) -> tuple[DataLoader, EpochSampler]:
    """A DataLoader over :class:`SeededDataset` with an :class:`EpochSampler`; returns ``(loader, sampler)``.

    Call ``sampler.set_epoch(epoch, start)`` before iterating. Batches are :func:`collate_clips` dicts (or None when
    every clip of a batch failed to load and was skipped).
    """
    sampler = EpochSampler(dataset, num_replicas=world_size, rank=rank, shuffle=shuffle, seed=seed)
    workers = dict(persistent_workers=persistent_workers, prefetch_factor=prefetch_factor) if num_workers > 0 else {}
    loader = DataLoader(SeededDataset(dataset, seed), batch_size=batch_size, sampler=sampler,
                        num_workers=num_workers, collate_fn=collate_clips, pin_memory=pin_memory,
                        generator=torch.Generator().manual_seed(seed), **workers)
    return loader, sampler

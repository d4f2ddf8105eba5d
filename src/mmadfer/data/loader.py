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

import copy
from typing import Any, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from .datasets import collate_clips

__all__ = ["sample_seed", "SeededDataset", "EpochSampler", "SpanningBatchSampler", "num_batches", "build_loader"]


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
    ``start`` samples of this rank's share (the batches a resumed run has already trained on).

    With ``balance_labels`` (one class index per clip) each epoch instead draws the same number of clips with
    replacement, every class equally likely (a clip's weight is one over its class's count), seeded by
    ``seed + epoch`` as the shuffle is."""

    def __init__(self, dataset: Dataset, *, num_replicas: int = 1, rank: int = 0, shuffle: bool = True,
                 seed: int = 0, drop_last: bool = False, balance_labels=None):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed,
                         drop_last=drop_last)
        self.start = 0
        self.weights = None
        if balance_labels is not None:
            labels = torch.as_tensor(list(balance_labels), dtype=torch.int64)
            self.weights = 1.0 / torch.bincount(labels).double()[labels]  # [N]: every class sums to 1

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        super().set_epoch(epoch)
        self.start = int(start)

    def _indices(self) -> list[int]:
        if self.weights is None:
            return list(super().__iter__())
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        drawn = torch.multinomial(self.weights, self.total_size, replacement=True, generator=g).tolist()
        return drawn[self.rank:self.total_size:self.num_replicas]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        indices = self._indices()[self.start:]
        return iter([(self.epoch, i) for i in indices])

    def __len__(self) -> int:
        return max(0, self.num_samples - self.start)


def num_batches(num_samples: int, batch_size: int, start: int = 0) -> int:
    """Batches in one epoch of ``num_samples`` resumed after ``start`` of them, the short last batch included."""
    return -(-max(0, num_samples - start) // batch_size)


class SpanningBatchSampler(Sampler[list[tuple[int, int]]]):
    """Batches of ``(epoch, index)`` for the sampler's current epoch (from its ``start``) and every later one up to
    ``epochs``; each epoch is batched on its own, so its last batch may be short as with a per-epoch loader.

    One DataLoader iterator then serves the rest of a run: the workers prefetch the next epoch's first batches while
    the current epoch's last ones train, where a per-epoch iterator lets the queue drain at every epoch start. The
    batches are exactly those of per-epoch iteration (same seeds, same order)."""

    def __init__(self, sampler: EpochSampler, batch_size: int, epochs: int):
        self.sampler, self.batch_size, self.epochs = sampler, int(batch_size), int(epochs)

    def _epoch(self, epoch: int, start: int) -> list[list[tuple[int, int]]]:
        s = copy.copy(self.sampler)  # the caller's sampler keeps its epoch and start
        s.set_epoch(epoch, start)
        pairs = list(s)
        return [pairs[i:i + self.batch_size] for i in range(0, len(pairs), self.batch_size)]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        first, start = self.sampler.epoch, self.sampler.start
        for epoch in range(first, self.epochs):
            yield from self._epoch(epoch, start if epoch == first else 0)

    def __len__(self) -> int:
        n, bs = self.sampler.num_samples, self.batch_size
        rest = max(0, self.epochs - self.sampler.epoch - 1)
        return num_batches(n, bs, self.sampler.start) + rest * num_batches(n, bs)


def build_loader(dataset: Dataset, *, batch_size: int, seed: int, shuffle: bool, rank: int = 0, world_size: int = 1,
                 num_workers: int = 0, pin_memory: bool = False, persistent_workers: bool = True,
                 prefetch_factor: int = 4, epochs: int | None = None,
                 balance_labels=None) -> tuple[DataLoader, EpochSampler]:
    """A DataLoader over :class:`SeededDataset` with an :class:`EpochSampler`; returns ``(loader, sampler)``.

    Call ``sampler.set_epoch(epoch, start)`` before creating an iterator. Without ``epochs`` an iterator covers that
    epoch; with it, that epoch and every later one up to ``epochs`` (:class:`SpanningBatchSampler`: one iterator
    per run, no loader drain between epochs). ``balance_labels``: class-balanced epochs (:class:`EpochSampler`).
    Batches are :func:`collate_clips` dicts (or None when every clip of a
    batch failed to load and was skipped).
    """
    sampler = EpochSampler(dataset, num_replicas=world_size, rank=rank, shuffle=shuffle, seed=seed,
                           balance_labels=balance_labels)
    workers = dict(persistent_workers=persistent_workers, prefetch_factor=prefetch_factor) if num_workers > 0 else {}
    batching = dict(batch_sampler=SpanningBatchSampler(sampler, batch_size, epochs)) if epochs is not None \
        else dict(batch_size=batch_size, sampler=sampler)
    loader = DataLoader(SeededDataset(dataset, seed), num_workers=num_workers, collate_fn=collate_clips,
                        pin_memory=pin_memory, generator=torch.Generator().manual_seed(seed), **batching, **workers)
    return loader, sampler

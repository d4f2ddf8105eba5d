"""Moved to :mod:`mmadfer.data.loader` (evaluation loads data with it too); this module keeps the old import path."""
from ..data.loader import EpochSampler, SeededDataset, SpanningBatchSampler, build_loader, num_batches, sample_seed

__all__ = ["sample_seed", "SeededDataset", "EpochSampler", "SpanningBatchSampler", "num_batches", "build_loader"]

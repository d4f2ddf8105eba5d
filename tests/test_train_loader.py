"""Reproducible loading: augmentation depends only on (seed, epoch, index), shuffles on seed + epoch, and a sampler
that resumes mid-epoch and pads for several ranks."""
from __future__ import annotations

import torch
from torch.utils.data import Dataset

from mmadfer.data.loader import EpochSampler, SeededDataset, build_loader


class RandomItems(Dataset):
    """Each item draws from torch's global generator, as the data layer's augmentation does."""

    def __len__(self):
        return 11

    def __getitem__(self, i):
        return {"video": torch.randint(0, 255, (2, 3, 4, 4), dtype=torch.uint8), "audio": torch.rand(1, 8, 4),
                "label": torch.tensor(i % 3), "index": i}


def test_sample_randomness_is_a_function_of_seed_epoch_index():
    ds = SeededDataset(RandomItems(), seed=5)
    a = ds[(2, 7)]
    torch.rand(100)  # the caller's generator state does not matter ...
    before = torch.get_rng_state()
    b = ds[(2, 7)]
    assert torch.equal(torch.get_rng_state(), before)  # ... and is left untouched
    assert torch.equal(a["video"], b["video"]) and torch.equal(a["audio"], b["audio"])
    assert not torch.equal(a["audio"], ds[(3, 7)]["audio"])  # a new epoch draws anew
    assert not torch.equal(a["audio"], ds[(2, 6)]["audio"])


def _batches(num_workers: int, epoch: int = 1, start: int = 0):
    loader, sampler = build_loader(RandomItems(), batch_size=4, seed=5, shuffle=True, num_workers=num_workers,
                                   persistent_workers=False)
    sampler.set_epoch(epoch, start)
    return list(loader)


def test_batches_do_not_depend_on_worker_processes():
    single, multi = _batches(0), _batches(2)
    assert len(single) == len(multi) == 3
    for x, y in zip(single, multi):
        assert torch.equal(x["index"], y["index"]) and torch.equal(x["video"], y["video"])
        assert torch.equal(x["audio"], y["audio"])


def test_resuming_mid_epoch_yields_the_remaining_samples():
    full = torch.cat([b["index"] for b in _batches(0)])
    rest = torch.cat([b["index"] for b in _batches(0, start=4)])
    assert torch.equal(rest, full[4:])
    assert torch.equal(torch.cat([b["audio"] for b in _batches(0, start=4)]),
                       torch.cat([b["audio"] for b in _batches(0)])[4:])
    other_epoch = torch.cat([b["index"] for b in _batches(0, epoch=2)])
    assert sorted(other_epoch.tolist()) == sorted(full.tolist()) and not torch.equal(other_epoch, full)


def test_sampler_pads_for_two_ranks_and_covers_everything():
    n = len(RandomItems())  # 11: odd
    parts = []
    for rank in (0, 1):
        s = EpochSampler(RandomItems(), num_replicas=2, rank=rank, shuffle=False, seed=0)
        s.set_epoch(0)
        parts.append([i for _, i in s])
    assert len(parts[0]) == len(parts[1]) == 6  # one sample repeated as padding
    assert sorted(set(parts[0] + parts[1])) == list(range(n))
    s.set_epoch(0, start=2)
    assert len(s) == 4 and [i for _, i in s] == parts[1][2:]


def test_one_spanning_iterator_gives_every_epochs_batches_unchanged():
    """A run's single loader iterator (``epochs=``) yields exactly the per-epoch loaders' batches, epoch after epoch,
    short last batches included, from a resumed position too; workers run ahead across epoch boundaries."""
    for start in (0, 4):
        loader, sampler = build_loader(RandomItems(), batch_size=4, seed=5, shuffle=True, num_workers=2,
                                       persistent_workers=True, prefetch_factor=2, epochs=4)
        sampler.set_epoch(1, start)
        spanning = list(loader)
        expected = [b for epoch in (1, 2, 3) for b in _batches(0, epoch, start if epoch == 1 else 0)]
        assert len(spanning) == len(loader) == len(expected) == (3 if start == 0 else 2) + 3 + 3
        for x, y in zip(spanning, expected):
            assert torch.equal(x["index"], y["index"]) and torch.equal(x["audio"], y["audio"])
        assert (sampler.epoch, sampler.start) == (1, start)  # the caller's sampler is left as it was set

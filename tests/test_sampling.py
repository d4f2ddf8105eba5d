"""The reference's frame index rules, checked against hand-computed lists."""
import pytest
import torch

from mmadfer.media.sampling import sample_indices


@pytest.mark.parametrize("train", [False, True])
def test_short_clips_take_every_frame_then_repeat_the_last(train):
    assert sample_indices(5, 16, train=train) == [0, 1, 2, 3, 4] + [4] * 11
    assert sample_indices(1, 16, train=train) == [0] * 16
    assert sample_indices(16, 16, train=train) == list(range(16))


def test_test_rule_takes_segment_centres():
    # tick = 17/16 = 1.0625; int(0.53125 + 1.0625 k) skips frame 8
    assert sample_indices(17) == [0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16]
    assert sample_indices(32) == list(range(1, 32, 2))  # tick 2: 1, 3, ..., 31
    assert sample_indices(48) == list(range(1, 48, 3))  # tick 3: int(1.5 + 3k)
    # tick 6.25: int(3.125 + 6.25 k)
    assert sample_indices(100) == [3, 9, 15, 21, 28, 34, 40, 46, 53, 59, 65, 71, 78, 84, 90, 96]
    assert sample_indices(10, num_segments=4) == [1, 3, 6, 8]  # tick 2.5: int(1.25 + 2.5k)


def test_train_rule_draws_within_integer_segments():
    # N = 47, d = 47 // 16 = 2: frame k is 2k or 2k+1, and frames 32..46 are never drawn (as in the reference)
    g = torch.Generator().manual_seed(0)
    seen = [set() for _ in range(16)]
    for _ in range(200):
        idx = sample_indices(47, 16, train=True, generator=g)
        assert len(idx) == 16
        for k, i in enumerate(idx):
            seen[k].add(i)
    assert seen == [{2 * k, 2 * k + 1} for k in range(16)]


def test_train_rule_is_reproducible_with_a_generator():
    a = sample_indices(300, train=True, generator=torch.Generator().manual_seed(3))
    b = sample_indices(300, train=True, generator=torch.Generator().manual_seed(3))
    c = sample_indices(300, train=True, generator=torch.Generator().manual_seed(4))
    assert a == b and a != c
    assert all(18 * k <= i < 18 * (k + 1) for k, i in enumerate(a))  # d = 300 // 16 = 18


def test_empty_clip_is_an_error():
    with pytest.raises(ValueError, match="empty"):
        sample_indices(0)
    with pytest.raises(ValueError, match="num_segments"):
        sample_indices(10, num_segments=0)

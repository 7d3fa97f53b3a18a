"""Lesson 15, part 2: round-to-nearest with groups and zero points. Run: pytest exercises/lesson15"""

import pytest
import torch

from course.testing import assert_close
from exercises.lesson15.rtn import dequantize, quantize_rtn


def weights(seed=0, n=16, k=256):
    return torch.randn(n, k, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("symmetric", [False, True])
def test_error_at_most_half_a_step(symmetric):
    w = weights()
    q, scales, zeros = quantize_rtn(w, bits=4, group_size=64, symmetric=symmetric)
    assert q.dtype == torch.uint8 and q.shape == w.shape and int(q.max()) <= 15
    assert scales.shape == (16, 4) and zeros.shape == (16, 4), \
        f"K = 256 in groups of 64 gives 4 groups per row; got scales {tuple(scales.shape)}"
    assert torch.equal(zeros, zeros.round()), "zero points must be whole numbers"
    err = (dequantize(q, scales, zeros, 64) - w).abs().view(16, 4, 64)
    worst = (err - scales[..., None] / 2).max().item()
    assert worst <= 1e-6, f"an entry is {worst:.3g} beyond half a step (scale / 2) from w"


def test_symmetric_zero_point_is_the_middle():
    _, scales, zeros = quantize_rtn(weights(), bits=4, group_size=32, symmetric=True)
    assert (zeros == 8).all(), "symmetric 4-bit: every zero point is 2^(4-1) = 8"
    assert_close(scales, weights().view(16, 8, 32).abs().amax(-1) / 7, atol=1e-7,
                 what="symmetric scales", reference="max|w| / 7 per group")


def test_all_positive_group():
    q, scales, zeros = quantize_rtn(torch.tensor([[1.0, 2.0, 3.0, 4.0]]), bits=2, group_size=-1)
    assert q.tolist() == [[1, 2, 2, 3]] and zeros.tolist() == [[0.0]]
    assert_close(scales, torch.tensor([[4 / 3]]), atol=1e-6, what="scale of [1, 2, 3, 4]",
                 reference="(max(4, 0) - min(1, 0)) / 3")


def test_constant_rows_come_back_exactly():
    w = torch.zeros(3, 32)
    w[1] = 0.25
    w[2] = -3.0
    q, scales, zeros = quantize_rtn(w, bits=4, group_size=16)
    assert torch.isfinite(scales).all() and (scales > 0).all(), \
        f"an all-zero group must not divide by zero; scales {scales.tolist()}"
    assert_close(dequantize(q, scales, zeros, 16), w, atol=1e-6, what="constant rows",
                 reference="the weights themselves")


def test_per_channel_is_one_group_per_row():
    w = weights(k=64)
    q1, s1, z1 = quantize_rtn(w, group_size=-1)
    q2, s2, z2 = quantize_rtn(w, group_size=64)
    assert s1.shape == (16, 1) and torch.equal(q1, q2) and torch.equal(s1, s2)


def test_groups_beat_per_channel_with_outliers():
    w = weights(1, n=32, k=1024)   # eight groups of 128 per row, one of them with an outlier
    w[torch.arange(32), torch.randint(0, 1024, (32,), generator=torch.Generator().manual_seed(2))] = 30.0
    mse = {}
    for g in (-1, 128):
        q, s, z = quantize_rtn(w, 4, g)
        mse[g] = ((dequantize(q, s, z, g) - w) ** 2).mean().item()
    assert mse[128] < mse[-1] / 4, (f"one outlier per row: groups of 128 MSE {mse[128]:.4g}, "
                                    f"per channel {mse[-1]:.4g}; groups should be far better")

"""Hidden grader, lesson 16: group-wise RTN against AWQ's formula, and AWQ's grid search."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course.counting import count_flops
from exercises.lesson16.awq import quantize_awq, quantize_rtn


def rtn_dequant(w, bits, group):
    """Asymmetric min/max RTN per group with the range widened to include 0, as GPTQ's
    quantizer does (AWQ's pseudo_quantize_tensor clamps the zero point instead), written
    independently."""
    g = w.reshape(-1, group).double()
    lo, hi = g.amin(1, keepdim=True).clamp(max=0), g.amax(1, keepdim=True).clamp(min=0)
    top = 2**bits - 1
    scale = (hi - lo).clamp(min=1e-5) / top
    zero = (-lo / scale).round().clamp(0, top)
    return (((g / scale).round() + zero).clamp(0, top) - zero).mul(scale).reshape(w.shape)


@pytest.mark.points(2)
@given(d_out=st.integers(1, 6), groups=st.integers(1, 4), group=st.sampled_from([4, 8, 32]),
       bits=st.integers(2, 8), seed=st.integers(0, 2**16))
def test_rtn_matches_formula(d_out, groups, group, bits, seed):
    """Bugs: one scale per row instead of per group, a symmetric grid without zero point,
    zero not rounded to an integer, q outside [0, 2^bits - 1], a range not widened to include 0
    (the offset added to w makes many groups all-positive)."""
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(d_out, groups * group, generator=gen) + torch.rand(1, generator=gen) * 3
    g = quantize_rtn(w, bits, group)
    assert g.q.dtype == torch.uint8 and int(g.q.max()) <= 2**bits - 1
    assert g.scale.shape == (d_out, groups) and torch.equal(g.zero, g.zero.round())
    assert torch.allclose(g.dequantize().double(), rtn_dequant(w, bits, group), atol=1e-5)


def case(seed, d_in=128, d_out=64, tokens=128, salient=6):
    gen = torch.Generator().manual_seed(seed)
    loud = torch.ones(d_in)
    loud[torch.randperm(d_in, generator=gen)[:salient]] = 10.0 + 40 * torch.rand(1, generator=gen)
    x = torch.randn(2 * tokens, d_in, generator=gen) * loud
    w = torch.randn(d_out, d_in, generator=gen) / d_in**0.5
    return w, x[:tokens], x[tokens:]


def mse(x, w_hat, w):
    return ((x.double() @ (w_hat.double() - w.double()).T) ** 2).mean().item()


@pytest.mark.points(3)
@settings(max_examples=25)
@given(seed=st.integers(0, 2**16), bits=st.sampled_from([3, 4]), uniform=st.booleans(),
       n_grid=st.integers(1, 12))
def test_awq_never_worse_than_rtn_on_calibration(seed, bits, uniform, n_grid):
    """Bugs: a grid that never tries alpha = 0 (plain RTN) - then on layers without salient
    channels AWQ can end up worse than RTN; scales not divided back out; the error measured
    on the weights instead of the layer's output; group_size (or bits) not passed on to
    quantize_rtn, so every candidate uses the default."""
    w, x, _ = case(seed, salient=0 if uniform else 6)
    if uniform:  # no salient channel: channel means differ only by noise, and by a heavy tail
        x = x * torch.linspace(0.5, 2.0, x.shape[1])
        w = w * torch.linspace(3.0, 0.2, x.shape[1])
    res = quantize_awq(w, x, bits, 32, n_grid)
    assert res.quant.scale.shape == (w.shape[0], w.shape[1] // 32), (
        f"group_size 32 gives {w.shape[1] // 32} groups per row; the result has scales of "
        f"shape {tuple(res.quant.scale.shape)}: group_size was not passed on to quantize_rtn")
    assert res.alpha in [i / n_grid for i in range(n_grid)]
    assert mse(x, res.dequantize(), w) <= mse(x, rtn_dequant(w, bits, 32), w) * (1 + 1e-6)


@pytest.mark.points(3)
@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("bits", [3, 4])
def test_awq_beats_rtn_on_held_out_inputs(seed, bits):
    """Bug: AWQ scales that protect the wrong channels (1 / mean|x|, or the weights' own
    magnitude): on held-out tokens with salient channels the output error must be below
    RTN's at the same bits and group size."""
    w, x_cal, x_test = case(seed)
    res = quantize_awq(w, x_cal, bits, 32, 20)
    assert res.alpha > 0, "with salient channels the search should leave alpha = 0"
    assert mse(x_test, res.dequantize(), w) < mse(x_test, rtn_dequant(w, bits, 32), w)


@pytest.mark.points(1)
def test_awq_cost_is_linear_in_grid_size():
    """Bug: recomputing the calibration activations or the exact output x @ w.T inside
    the loop over alpha, or comparing every pair of candidates: FLOPs must grow about
    linearly with n_grid (one matmul of x against each candidate weight)."""
    w, x, _ = case(0)
    f5 = count_flops(quantize_awq, w, x, 4, 32, 5)
    f10 = count_flops(quantize_awq, w, x, 4, 32, 10)
    one_matmul = 2 * x.shape[0] * w.shape[0] * w.shape[1]
    assert f10 - f5 <= 5 * one_matmul * 1.01, (f"5 more grid points cost {f10 - f5:,} FLOPs; "
                                                f"one output matmul each is {5 * one_matmul:,}")

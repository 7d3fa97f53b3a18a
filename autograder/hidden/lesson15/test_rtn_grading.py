"""Hidden grader, lesson 15: RTN with groups and zero points against its formula and its bound."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from exercises.lesson15.rtn import dequantize, quantize_rtn


def expected_params(w, bits, g, symmetric):
    """Scales and zeros from the lesson's formulas, in float64, written independently."""
    n, k = w.shape
    grp = w.double().reshape(n, k // g, g)
    if symmetric:
        amax = grp.abs().amax(-1)
        scale = torch.where(amax > 0, amax / (2 ** (bits - 1) - 1), torch.ones_like(amax))
        return scale, torch.full_like(scale, 2.0 ** (bits - 1))
    lo, hi = grp.amin(-1).clamp(max=0), grp.amax(-1).clamp(min=0)
    scale = torch.where(hi > lo, (hi - lo) / (2**bits - 1), torch.ones_like(hi))
    return scale, -lo / scale  # zero before rounding


def make_weight(seed, n, n_groups, g, magnitude, offset, zero_groups):
    gen = torch.Generator().manual_seed(seed)
    w = (torch.randn(n, n_groups * g, generator=gen) + offset) * magnitude
    if zero_groups:  # some groups all zero, some whole rows constant
        w.view(n, n_groups, g)[:, ::2] = 0.0
        w[0] = magnitude
    return w


@pytest.mark.points(3)
@settings(max_examples=25)
@given(seed=st.integers(0, 2**16), n=st.integers(1, 5), n_groups=st.integers(1, 4),
       g=st.sampled_from([4, 8, 32, 64]), bits=st.integers(2, 8), symmetric=st.booleans(),
       magnitude=st.sampled_from([1e-8, 1e-3, 1.0, 1e3]), offset=st.sampled_from([0.0, 2.5]),
       zero_groups=st.booleans(), bf16=st.booleans())
def test_rtn_matches_formula_and_bound(seed, n, n_groups, g, bits, symmetric, magnitude, offset,
                                       zero_groups, bf16):
    """Bugs: one scale for the whole tensor or per row instead of per group; a scale floor
    (clamp(min=1e-5)) that flattens a layer of tiny weights to zero; a symmetric scale of
    max / 2^(bits-1) (the largest weight needs code 2^bits and is clipped a whole step); bits
    ignored (always 15 levels); zero points not whole numbers or outside [0, 2^bits - 1]; a
    range not widened to include 0 (offset 2.5 makes groups all-positive); bf16 input quantized
    in bf16 (scales must be float32). Each entry must come back within scale / 2."""
    w = make_weight(seed, n, n_groups, g, magnitude, offset, zero_groups)
    if bf16:
        w = w.bfloat16()
    q, scales, zeros = quantize_rtn(w, bits, g, symmetric)
    top = 2**bits - 1
    assert q.dtype == torch.uint8 and q.shape == w.shape, f"q: {q.dtype} {tuple(q.shape)}"
    assert scales.dtype == torch.float32 and zeros.dtype == torch.float32, (
        f"scales and zeros must be float32 whatever w's dtype; got {scales.dtype}, {zeros.dtype}")
    assert scales.shape == (n, n_groups) and zeros.shape == (n, n_groups), (
        f"K = {n_groups * g} in groups of {g}: scales must be {(n, n_groups)}, got "
        f"{tuple(scales.shape)}")
    assert int(q.max()) <= top, f"{bits} bits: q must stay in [0, {top}], max {int(q.max())}"
    assert torch.equal(zeros, zeros.round()) and float(zeros.min()) >= 0 and float(zeros.max()) <= top
    want_s, want_z = expected_params(w.float(), bits, g, symmetric)
    rel = ((scales.double() - want_s).abs() / want_s).max().item()
    assert rel < 1e-5, f"scales differ from the formula by up to {rel:.3g} (relative)"
    tie = ((want_z - want_z.floor()) - 0.5).abs() < 1e-3  # float32 may round a near-tie either way
    off = ((zeros.double() - want_z.round()).abs() > 0) & ~tie
    assert not off.any(), (f"{int(off.sum())} zero points differ from round(-lo / scale); first "
                           f"{zeros[off][0].item()} vs {want_z[off][0].item():.4f}")
    deq = dequantize(q, scales, zeros, g).double()
    excess = (deq - w.double()).abs().view(n, n_groups, g) - want_s[..., None] / 2
    worst = (excess / want_s[..., None]).max().item()
    assert worst <= 1e-4, f"an entry is off by {worst + 0.5:.3f} steps; at most 0.5 allowed"


@pytest.mark.points(2)
@pytest.mark.parametrize("symmetric", [False, True])
def test_all_zero_and_constant_groups(symmetric):
    """Bug: scale = range / top with no guard: an all-zero group divides 0 by 0 and the layer's
    output becomes NaN. All-zero groups and constant rows must come back exactly."""
    w = torch.zeros(4, 64)
    w[1] = 0.75
    w[2, 32:] = -2.0
    q, scales, zeros = quantize_rtn(w, 4, 32, symmetric)
    assert torch.isfinite(scales).all() and (scales > 0).all(), f"scales: {scales.tolist()}"
    deq = dequantize(q, scales, zeros, 32)
    assert torch.isfinite(deq).all() and torch.allclose(deq, w, atol=1e-6), \
        f"constant groups must come back exactly; max error {(deq - w).abs().max().item():.3g}"


@pytest.mark.points(1)
def test_per_channel_spellings():
    """Bug: group_size=-1 not treated as one group per row (or K, the same thing, treated
    differently)."""
    w = torch.randn(6, 96, generator=torch.Generator().manual_seed(7))
    a, b = quantize_rtn(w, 4, -1), quantize_rtn(w, 4, 96)
    assert a[1].shape == (6, 1) and all(torch.equal(x, y) for x, y in zip(a, b))
    assert torch.equal(dequantize(*a, -1), dequantize(*b, 96))


@pytest.mark.points(2)
@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("outlier", [-40.0, 12.0])
def test_groups_beat_per_channel_with_planted_outliers(seed, outlier):
    """Bugs: groups that run down the columns (or every n_groups-th entry) instead of along a
    row, so an outlier's step spreads over every group; the outlier ignored when it is
    negative. Groups of 64 must have lower MSE than one scale per row, by at least 2x."""
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(16, 512, generator=gen)
    cols = torch.randint(0, 512, (16, 2), generator=gen)
    w[torch.arange(16)[:, None], cols] = outlier
    mse = {}
    for g in (-1, 64):
        mse[g] = ((dequantize(*quantize_rtn(w, 4, g), g) - w) ** 2).mean().item()
    assert mse[64] * 2 < mse[-1], (f"outliers {outlier}: MSE with groups of 64 {mse[64]:.4g}, "
                                   f"per channel {mse[-1]:.4g}")


@pytest.mark.points(1)
def test_dequantize_uses_each_groups_own_scale():
    """Bug: scales broadcast with repeat (tiled) instead of repeat_interleave or a view, so
    weight k gets the scale of group k mod n_groups."""
    q = torch.full((2, 12), 5, dtype=torch.uint8)
    scales = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    zeros = torch.tensor([[1.0, 2.0, 3.0], [0.0, 5.0, 4.0]])
    want = torch.tensor([[4.0] * 4 + [6.0] * 4 + [6.0] * 4, [20.0] * 4 + [0.0] * 4 + [6.0] * 4])
    got = dequantize(q, scales, zeros, 4)
    assert got.dtype == torch.float32 and torch.equal(got, want), f"got {got.tolist()}"

"""Hidden grader, lesson 16: SmoothQuant factors, the identity, and W8A8 error."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from exercises.lesson16.smoothquant import smooth, smoothquant_scales, w8a8_linear


@pytest.mark.points(2)
@given(d=st.integers(1, 40), alpha=st.floats(0, 1), seed=st.integers(0, 2**16))
def test_scales_formula_any_alpha(d, alpha, seed):
    """Bugs: exponents swapped (w^alpha / x^(1-alpha)), a missing clamp (a dead channel gives
    0 or inf), alpha ignored, factors left in the statistics' bf16 (the docstring promises
    float32)."""
    gen = torch.Generator().manual_seed(seed)
    a = torch.rand(d, generator=gen) * 50
    w = torch.rand(d, generator=gen) * 2
    a[0] = 0.0  # a dead channel
    got = smoothquant_scales(a, w, alpha)
    want = a.clamp(min=1e-5).double() ** alpha / w.clamp(min=1e-5).double() ** (1 - alpha)
    assert torch.isfinite(got).all() and (got > 0).all()
    assert torch.allclose(got.double(), want, rtol=1e-4), "s_j = a_j^alpha / w_j^(1-alpha)"
    half = smoothquant_scales(a.bfloat16(), w.bfloat16(), alpha)
    assert half.dtype == torch.float32, f"bfloat16 statistics must give float32 factors, got {half.dtype}"


@pytest.mark.points(2)
@given(tokens=st.integers(1, 20), d_in=st.integers(1, 24), d_out=st.integers(1, 12),
       seed=st.integers(0, 2**16))
def test_smoothing_is_an_exact_identity(tokens, d_in, d_out, seed):
    """Bug: smoothing applied to one side only (x / s with w unchanged), or the factor
    applied along the output channels of w: the layer's output changes before any
    quantization."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(2, tokens, d_in, generator=gen, dtype=torch.float64)
    w = torch.randn(d_out, d_in, generator=gen, dtype=torch.float64)
    s = torch.rand(d_in, generator=gen, dtype=torch.float64) * 10 + 0.1
    xs, ws = smooth(x, w, s)
    assert xs.shape == x.shape and ws.shape == w.shape
    assert torch.allclose(xs @ ws.T, x @ w.T, rtol=1e-9, atol=1e-9)
    assert torch.allclose(xs[..., -1] * s[-1], x[..., -1]), "x must be divided by s"


@pytest.mark.points(2)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_w8a8_error_drops_with_planted_outliers(seed):
    """Bug: scales that amplify the outliers (x * s) or alpha's roles swapped. With a few
    channels 100x louder than the rest, smoothing at alpha 0.5 must cut the W8A8 error of a
    per-tensor-activation layer at least 3x."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(128, 256, generator=gen)
    x[:, torch.randperm(256, generator=gen)[:4]] *= 100.0
    w = torch.randn(64, 256, generator=gen) / 16
    exact = x @ w.T
    s = smoothquant_scales(x.abs().amax(0), w.abs().amax(0), 0.5)
    xs, ws = smooth(x, w, s)
    plain = (w8a8_linear(x, w) - exact).norm() / exact.norm()
    smoothed = (w8a8_linear(xs, ws) - exact).norm() / exact.norm()
    assert smoothed * 3 < plain, f"error {smoothed:.4f} with smoothing, {plain:.4f} without"

"""Lesson 16, part 2: SmoothQuant. Run: pytest exercises/lesson16"""

import torch

from course.testing import assert_close
from exercises.lesson16.smoothquant import smooth, smoothquant_scales, w8a8_linear


def outlier_case(seed=0, tokens=64, d_in=128, d_out=96):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(tokens, d_in, generator=gen)
    x[:, [3, 40, 77]] *= 60.0       # planted outlier channels, as in LLM activations
    w = torch.randn(d_out, d_in, generator=gen) / d_in**0.5
    return x, w


def test_scales_formula():
    a = torch.tensor([4.0, 1.0, 100.0])
    w = torch.tensor([1.0, 4.0, 0.25])
    assert_close(smoothquant_scales(a, w, 0.5), (a / w).sqrt(), atol=1e-6,
                 what="smoothquant_scales(alpha=0.5)", reference="sqrt(act_absmax / w_absmax)")
    assert_close(smoothquant_scales(a, w, 1.0), a, atol=1e-6, what="alpha=1",
                 reference="act_absmax")
    assert_close(smoothquant_scales(a.bfloat16(), w.bfloat16(), 0.5), (a / w).sqrt(),
                 atol=1e-6, what="smoothquant_scales of bfloat16 statistics (float32 out)",
                 reference="sqrt(act_absmax / w_absmax) in float32")


def test_smoothing_is_an_identity():
    x, w = outlier_case()
    s = smoothquant_scales(x.abs().amax(0), w.abs().amax(0), 0.5)
    xs, ws = smooth(x, w, s)
    assert_close(xs @ ws.T, x @ w.T, atol=1e-3, rtol=1e-4, what="smoothed layer output",
                 reference="the unsmoothed layer x @ w.T")


def test_smoothing_reduces_w8a8_error_with_outliers():
    x, w = outlier_case()
    exact = x @ w.T
    plain = (w8a8_linear(x, w) - exact).norm() / exact.norm()
    s = smoothquant_scales(x.abs().amax(0), w.abs().amax(0), 0.5)
    xs, ws = smooth(x, w, s)
    smoothed = (w8a8_linear(xs, ws) - exact).norm() / exact.norm()
    assert smoothed < plain / 2, f"W8A8 error {smoothed:.4f} with smoothing, {plain:.4f} without"

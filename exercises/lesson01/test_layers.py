"""Lesson 01, part 2: RMSNorm and RoPE. Run: pytest exercises/lesson01"""

import math

import torch

from course.testing import assert_close
from exercises.lesson01.layers import apply_rope, apply_rope_spec, rms_norm, rope_cos_sin


def test_rms_norm_example_from_the_docstring():
    got = rms_norm(torch.tensor([3.0, 4.0]), torch.ones(2), 0.0)
    want = torch.tensor([3.0, 4.0]) / math.sqrt(12.5)
    assert_close(got, want, atol=1e-6, what="rms_norm([3, 4])", reference="x / rms(x)")


def test_rms_norm_matches_the_formula_with_weight_and_eps():
    gen = torch.Generator().manual_seed(0)
    x, w = torch.randn(2, 5, 16, generator=gen), torch.randn(16, generator=gen)
    want = w * x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + 1e-2)
    assert_close(rms_norm(x, w, 1e-2), want, atol=1e-5, rtol=1e-5, what="rms_norm",
                 reference="w * x / sqrt(mean(x^2) + eps)")


def test_rope_angles_and_layout():
    cos, sin = rope_cos_sin(torch.tensor([0, 1, 5]), d_head=4, theta=100.0)
    # pair 0 turns 1 rad per position, pair 1 turns 100^(-1/2) = 0.1 rad per position
    angles = torch.tensor([[0.0, 0, 0, 0], [1, 0.1, 1, 0.1], [5, 0.5, 5, 0.5]])
    assert_close(cos, angles.cos(), atol=1e-6, what="cos", reference="cos(pos * theta^(-2i/d))")
    assert_close(sin, angles.sin(), atol=1e-6, what="sin", reference="sin(pos * theta^(-2i/d))")


def test_apply_rope_matches_the_pairwise_spec():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 6, 8, generator=gen)
    cos, sin = rope_cos_sin(torch.arange(4, 10), 8, 10000.0)
    assert_close(apply_rope(x, cos, sin), apply_rope_spec(x, cos, sin), atol=1e-6,
                 what="apply_rope", reference="apply_rope_spec (pair i with i + d_head/2)")

"""Lesson 01, part 2: RMSNorm and RoPE. Run: pytest exercises/lesson01"""

import math

import torch

from course.counting import count_ops
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


def test_rms_norm_each_row_on_its_own_and_a_zero_row():
    # Rows of very different sizes, and an all-zero row that must give zeros (eps inside the
    # square root), not NaN.
    x = torch.tensor([[3.0, 4.0], [300.0, -400.0], [0.0, 0.0]])
    want = torch.tensor([[3.0, 4.0], [3.0, -4.0], [0.0, 0.0]]) / math.sqrt(12.5)
    assert_close(rms_norm(x, torch.ones(2), 1e-6), want, atol=1e-5, what="rms_norm of 3 rows",
                 reference="each row divided by its own root mean square")


def test_rms_norm_float16_inputs_above_256():
    # 300^2 overflows float16 (max 65504): normalise in float32, then cast back.
    x = torch.tensor([[300.0, -400.0]]).half()
    got = rms_norm(x, torch.ones(2).half(), 1e-5)
    assert got.dtype == torch.float16, f"rms_norm of float16 returned {got.dtype}"
    assert_close(got.float(), torch.tensor([[3.0, -4.0]]) / math.sqrt(12.5), atol=2e-3,
                 what="rms_norm of float16 [300, -400]", reference="[3, -4] / sqrt(12.5)")


def test_rope_keeps_bfloat16_and_tables_are_float32():
    cos, sin = rope_cos_sin(torch.arange(4), d_head=8, theta=10000.0)
    assert cos.dtype == sin.dtype == torch.float32, f"cos/sin must be float32, got {cos.dtype}"
    x = torch.randn(1, 2, 4, 8, generator=torch.Generator().manual_seed(2)).bfloat16()
    got = apply_rope(x, cos, sin)
    assert got.dtype == torch.bfloat16, f"apply_rope of bfloat16 input returned {got.dtype}"
    assert_close(got.float(), apply_rope_spec(x.float(), cos, sin), atol=3e-2, rtol=2e-2,
                 what="apply_rope in bfloat16", reference="apply_rope_spec in float32")


def test_apply_rope_is_vectorised():
    # The same few tensor operations at any d_head: no Python loop over channel pairs.
    counts = []
    for d_head in (8, 64):
        x = torch.randn(1, 2, 3, d_head, generator=torch.Generator().manual_seed(0))
        cos, sin = rope_cos_sin(torch.arange(3), d_head, 10000.0)
        counts.append(count_ops(lambda: apply_rope(x, cos, sin)))  # noqa: B023
    assert counts[0] == counts[1], f"apply_rope ran {counts} tensor ops for d_head 8 and 64"

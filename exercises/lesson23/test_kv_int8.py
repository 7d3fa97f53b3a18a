"""Lesson 23, part 2: an int8 KV cache. Run: pytest exercises/lesson23"""

import pytest
import torch
import torch.nn.functional as F

from course.testing import assert_close
from exercises.lesson23.kv_int8 import kv_dequant_int8, kv_quant_int8


@pytest.mark.parametrize("axis,scale_shape", [("token", (3, 6, 1)), ("channel", (3, 1, 8))])
def test_round_trip_within_half_a_step(axis, scale_shape):
    x = torch.randn(3, 6, 8, generator=torch.Generator().manual_seed(0))
    q, scale = kv_quant_int8(x, axis)
    assert q.dtype == torch.int8 and q.shape == x.shape, f"q: {q.dtype} {tuple(q.shape)}"
    assert scale.dtype == torch.float32 and scale.shape == scale_shape, \
        f"scale for axis={axis!r}: expected float32 {scale_shape}, got {scale.dtype} {tuple(scale.shape)}"
    dim = -1 if axis == "token" else -2
    assert_close(scale, x.abs().amax(dim, keepdim=True) / 127, atol=0, rtol=1e-6,
                 what="scale", reference="absmax / 127")
    err = (kv_dequant_int8(q, scale) - x).abs()
    bad = err > scale / 2 * (1 + 1e-5)
    assert not bad.any(), f"{int(bad.sum())} elements off by more than half a step"


def test_negative_outlier_and_zero_row():
    x = torch.tensor([[1.0, -10.0, 2.0], [0.0, 0.0, 0.0]])
    q, scale = kv_quant_int8(x, "token")
    assert q[0].tolist() == [13, -127, 25], f"codes {q[0].tolist()}: absmax is 10, not max 2"
    assert torch.isfinite(scale).all() and q[1].eq(0).all(), "an all-zero row must give zeros"
    assert kv_dequant_int8(q, scale)[1].eq(0).all()


def test_attention_with_int8_kv_close_to_float():
    g = torch.Generator().manual_seed(1)
    k = torch.randn(1, 2, 128, 64, generator=g)
    k[..., :4] *= 8                                       # outlier key channels
    v = torch.randn(1, 2, 128, 64, generator=g)
    q = torch.randn(1, 2, 4, 64, generator=g)
    want = F.scaled_dot_product_attention(q, k, v)
    kq, ks = kv_quant_int8(k, "channel")
    vq, vs = kv_quant_int8(v, "token")
    got = F.scaled_dot_product_attention(q, kv_dequant_int8(kq, ks), kv_dequant_int8(vq, vs))
    # Keys per channel, values per token (KIVI): within 1% of V's largest magnitude (the
    # reference reaches 0.4%; keys per token would be at 1.9%, pushed there by the outliers).
    err = ((got - want).abs().max() / v.abs().max()).item()
    assert err < 1e-2, (f"attention over int8 K (per channel) and V (per token) is off by "
                        f"{err:.2%} of max |V|; at most 1% expected")

"""Lesson 16, part 1: FP8 formats and scaled casts. Run: pytest exercises/lesson16"""

import pytest
import torch

from exercises.lesson16.fp8 import fp8_dequantize, fp8_limits, fp8_quantize

REFERENCE = "torch's own float8 cast of x / scale"


def test_limits_from_the_bit_layout():
    assert fp8_limits("e4m3") == {"max": 448.0, "min_normal": 2.0**-6, "min_subnormal": 2.0**-9}
    assert fp8_limits("e5m2") == {"max": 57344.0, "min_normal": 2.0**-14,
                                  "min_subnormal": 2.0**-16}


@pytest.mark.parametrize("fmt,dtype", [("e4m3", torch.float8_e4m3fn), ("e5m2", torch.float8_e5m2)])
def test_per_tensor_equals_torch_cast(fmt, dtype):
    x = torch.randn(8, 32, generator=torch.Generator().manual_seed(0)) * 3
    q, scale = fp8_quantize(x, fmt, "per_tensor")
    assert q.dtype == dtype and q.shape == x.shape and scale.shape == ()
    assert torch.allclose(scale, x.abs().max() / torch.finfo(dtype).max)
    assert torch.equal(q.float(), (x / scale).to(dtype).float()), f"q must equal {REFERENCE}"
    rel = (fp8_dequantize(q, scale) - x).abs() / x.abs().clamp(min=1e-3)
    assert rel.median() < 0.07, "a round trip through fp8 should lose only a few percent"


def test_per_token_and_per_channel_scale_shapes():
    x = torch.randn(5, 7)
    x[2] *= 100.0   # one loud token
    q, s_tok = fp8_quantize(x, "e4m3", "per_token")
    assert s_tok.shape == (5, 1)
    assert torch.allclose(s_tok[:, 0], x.abs().amax(dim=1) / 448)
    q, s_ch = fp8_quantize(x, "e4m3", "per_channel")
    assert s_ch.shape == (7,)
    assert torch.allclose(s_ch, x.abs().amax(dim=0) / 448)


def test_zero_rows_and_no_nan_or_inf():
    x = torch.zeros(3, 4)
    x[1] = torch.tensor([1e30, -1e30, 2.0, 0.0])
    for fmt in ("e4m3", "e5m2"):
        q, scale = fp8_quantize(x, fmt, "per_token")
        assert torch.isfinite(q.float()).all(), f"{fmt}: fp8_quantize produced inf or NaN"
        assert scale[0, 0] == 1.0, "an all-zero row must get scale 1"
        assert torch.equal(fp8_dequantize(q, scale)[0], x[0])

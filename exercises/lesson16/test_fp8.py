"""Lesson 16, part 1: FP8 formats and scaled casts. Run: pytest exercises/lesson16"""

import pytest
import torch

from course.testing import assert_close
from exercises.lesson16.fp8 import fp8_dequantize, fp8_limits, fp8_quantize

REFERENCE = "torch's own float8 cast of x / scale"


@pytest.mark.parametrize("fmt,expected", [
    ("e4m3", {"max": 448.0, "min_normal": 2.0**-6, "min_subnormal": 2.0**-9}),
    ("e5m2", {"max": 57344.0, "min_normal": 2.0**-14, "min_subnormal": 2.0**-16})])
def test_limits_from_the_bit_layout(fmt, expected):
    got = fp8_limits(fmt)
    assert isinstance(got, dict) and set(got) == set(expected), \
        f"fp8_limits({fmt!r}) must return a dict with keys {sorted(expected)}, got {got!r}"
    for key, want in expected.items():
        hint = (" (240 is the IEEE-style max: e4m3fn has no inf, so its all-ones exponent "
                "still holds numbers up to 1.110b x 2^8)" if got[key] == 240.0 else "")
        assert got[key] == want, f"fp8_limits({fmt!r})[{key!r}] is {got[key]}, expected {want}{hint}"


@pytest.mark.parametrize("fmt,dtype", [("e4m3", torch.float8_e4m3fn), ("e5m2", torch.float8_e5m2)])
def test_per_tensor_equals_torch_cast(fmt, dtype):
    x = torch.randn(8, 32, generator=torch.Generator().manual_seed(0)) * 3
    q, scale = fp8_quantize(x, fmt, "per_tensor")
    assert q.dtype == dtype and q.shape == x.shape, \
        f"q must be {dtype} of shape {tuple(x.shape)}, got {q.dtype} {tuple(q.shape)}"
    expected_scale = x.abs().max() / torch.finfo(dtype).max
    assert_close(scale, expected_scale, atol=0, rtol=1e-6, what=f"{fmt} per-tensor scale",
                 reference=f"amax / {torch.finfo(dtype).max:g}")
    assert_close(q.float(), (x / scale).to(dtype).float(), atol=0, what=f"{fmt} q",
                 reference=REFERENCE)
    rel = (fp8_dequantize(q, scale) - x).abs() / x.abs().clamp(min=1e-3)
    assert rel.median() < 0.07, \
        f"a round trip through fp8 should lose only a few percent; median {rel.median():.3f}"


def test_per_token_and_per_channel_scale_shapes():
    x = torch.randn(5, 7)
    x[2] *= 100.0   # one loud token
    q, s_tok = fp8_quantize(x, "e4m3", "per_token")
    assert_close(s_tok, x.abs().amax(dim=1, keepdim=True) / 448, atol=0, rtol=1e-6,
                 what="per_token scale (one per row, shape [5, 1])",
                 reference="amax over each row / 448")
    q, s_ch = fp8_quantize(x, "e4m3", "per_channel")
    assert_close(s_ch, x.abs().amax(dim=0) / 448, atol=0, rtol=1e-6,
                 what="per_channel scale (one per column, shape [7])",
                 reference="amax over each column / 448")


def test_half_precision_input_gives_float32_scales():
    x = (torch.randn(4, 24, generator=torch.Generator().manual_seed(2)) * 3.3).bfloat16()
    q, scale = fp8_quantize(x, "e4m3", "per_token")
    assert_close(scale, x.float().abs().amax(dim=1, keepdim=True) / 448, atol=0, rtol=1e-6,
                 what="per_token scale of a bfloat16 input",
                 reference="amax / 448 computed in float32")
    assert_close(q.float(), (x.float() / scale).to(torch.float8_e4m3fn).float(), atol=0,
                 what="q of a bfloat16 input", reference=REFERENCE + ", in float32")


def test_zero_rows_and_no_nan_or_inf():
    x = torch.zeros(3, 4)
    x[1] = torch.tensor([1e30, -1e30, 2.0, 0.0])
    for fmt in ("e4m3", "e5m2"):
        q, scale = fp8_quantize(x, fmt, "per_token")
        assert torch.isfinite(q.float()).all(), \
            f"{fmt}: fp8_quantize produced {int((~torch.isfinite(q.float())).sum())} inf or NaN"
        assert scale[0, 0] == 1.0, f"an all-zero row must get scale 1, got {scale[0, 0].item()}"
        assert_close(fp8_dequantize(q, scale)[0], x[0], atol=0,
                     what=f"{fmt} round trip of an all-zero row", reference="zeros")

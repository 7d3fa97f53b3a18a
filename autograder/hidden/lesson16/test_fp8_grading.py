"""Hidden grader, lesson 16: FP8 limits and scaled casts against torch's float8 types."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from exercises.lesson16.fp8 import fp8_dequantize, fp8_limits, fp8_quantize

DTYPES = {"e4m3": torch.float8_e4m3fn, "e5m2": torch.float8_e5m2}


def smallest_subnormal(dtype):
    """Bit pattern 0x01 of the format, read back by torch: the smallest positive value."""
    return torch.tensor([1], dtype=torch.uint8).view(dtype).float().item()


@pytest.mark.points(2)
@pytest.mark.parametrize("fmt", ["e4m3", "e5m2"])
def test_limits_match_torch_finfo(fmt):
    """Bug: e4m3's max computed with the IEEE rule (all-ones exponent reserved) gives 240,
    the fnuz-like figure, not e4m3fn's 448; a bias off by one halves or doubles everything."""
    dtype = DTYPES[fmt]
    got = fp8_limits(fmt)
    assert got["max"] == torch.finfo(dtype).max, f"{fmt} max {got['max']}"
    assert got["min_normal"] == torch.finfo(dtype).smallest_normal
    assert got["min_subnormal"] == smallest_subnormal(dtype)


def reference(x, fmt, granularity):
    dtype = DTYPES[fmt]
    fmax = torch.finfo(dtype).max
    a = x.abs()
    amax = {"per_tensor": a.max(), "per_token": a.amax(-1, keepdim=True),
            "per_channel": a.reshape(-1, x.shape[-1]).amax(0)}[granularity]
    scale = torch.where(amax > 0, amax / fmax, torch.ones_like(amax))
    return (x / scale).clamp(-fmax, fmax).to(dtype), scale


@pytest.mark.points(3)
@given(rows=st.integers(1, 9), cols=st.integers(1, 9), lead=st.integers(1, 3),
       fmt=st.sampled_from(["e4m3", "e5m2"]),
       granularity=st.sampled_from(["per_tensor", "per_token", "per_channel"]),
       log_mag=st.floats(-6, 6), seed=st.integers(0, 2**16))
def test_quantize_equals_torch_cast_any_shape(rows, cols, lead, fmt, granularity, log_mag, seed):
    """Bugs: per-token and per-channel axes swapped, the scale from the mean instead of the
    absolute max, a scale of max / amax (inverted), a scale shape that does not broadcast."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(lead, rows, cols, generator=gen) * 10.0**log_mag
    x[..., 0] *= 50.0  # one loud channel, so per-token and per-channel scales differ
    q, scale = fp8_quantize(x, fmt, granularity)
    q_ref, s_ref = reference(x, fmt, granularity)
    assert q.dtype == q_ref.dtype and q.shape == x.shape
    assert scale.shape == s_ref.shape, f"{granularity} scale shape {tuple(scale.shape)}"
    assert torch.allclose(scale, s_ref, rtol=1e-6, atol=0), f"{granularity} scales differ"
    assert torch.equal(q.float(), q_ref.float()), "q differs from torch's cast of x / scale"
    assert torch.allclose(fp8_dequantize(q, scale), q_ref.float() * s_ref)


@pytest.mark.points(2)
@pytest.mark.parametrize("fmt", ["e4m3", "e5m2"])
def test_saturates_never_inf(fmt):
    """Bug: no clamp before the cast - torch turns e5m2 overflow into inf (e4m3fn saturates);
    also a zero group divided by a zero scale (NaN)."""
    x = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    fmax = fp8_limits(fmt)["max"]
    q, scale = fp8_quantize(x, fmt, "per_token")
    assert torch.isfinite(q.float()).all() and scale[1, 0] == 1.0
    assert q.float()[0].abs().max() == fmax, "the loudest entry of a row must map to max"
    # A scale smaller than needed is a bug, but even then the cast must saturate: check it
    # through a row whose amax rounds so that x / scale lands just above max.
    big = torch.tensor([fmax * 1.0000001, -fmax * 3, 1.0])
    q, scale = fp8_quantize(big, fmt, "per_tensor")
    assert torch.isfinite(q.float()).all(), "overflow must saturate, not become inf"


@pytest.mark.points(1)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_input_gives_float32_scales(dtype):
    """Bug: the absolute max and the division computed in the input's own dtype (bf16 keeps
    8 bits of mantissa): the scale is rounded, not the float32 ``amax / max`` the docstring
    promises, and q differs from the cast of ``x / scale`` computed in float32."""
    gen = torch.Generator().manual_seed(4)
    x = (torch.randn(6, 40, generator=gen) * 3.3).to(dtype)
    for granularity in ("per_tensor", "per_token", "per_channel"):
        q, scale = fp8_quantize(x, "e4m3", granularity)
        q_ref, s_ref = reference(x.float(), "e4m3", granularity)
        assert scale.dtype == torch.float32, \
            f"{dtype} input, {granularity}: scale must be float32, got {scale.dtype}"
        assert torch.allclose(scale, s_ref, rtol=1e-6, atol=0), (
            f"{dtype} input, {granularity}: scale differs from float32 amax / 448 by up to "
            f"{((scale - s_ref).abs() / s_ref).max().item():.2g} (relative)")
        assert torch.equal(q.float(), q_ref.float()), \
            f"{dtype} input, {granularity}: q differs from the float32 cast of x / scale"

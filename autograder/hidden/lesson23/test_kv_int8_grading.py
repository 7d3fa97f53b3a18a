"""Hidden grader, lesson 23: int8 KV quantization - scales, rounding, error bound, axes."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from exercises.lesson23.kv_int8 import kv_dequant_int8, kv_quant_int8

DIMS = {"token": -1, "channel": -2}


@pytest.mark.points(3)
@settings(max_examples=30)
@given(lead=st.integers(1, 3), T=st.integers(1, 9), d=st.sampled_from([1, 4, 16]),
       axis=st.sampled_from(["token", "channel"]), log_mag=st.floats(-6, 6),
       dtype=st.sampled_from([torch.float32, torch.bfloat16, torch.float16]),
       seed=st.integers(0, 2**16))
def test_scales_codes_and_half_step_bound(lead, T, d, axis, log_mag, dtype, seed):
    """Bugs: the scale from max instead of absmax (a row whose outlier is negative clips),
    dividing by 128 instead of 127 (the largest code overflows int8 or clips), truncation
    instead of rounding (errors up to a whole step), the axis swapped (scales of the wrong
    shape), the scale left in x's dtype, a scale over the whole tensor instead of each row.
    Every element must be within half a step of x: |x - q * scale| <= scale / 2."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(lead, T, d, generator=g) * 10.0**log_mag
    x[0, 0, 0] = -x.abs().max() * 3              # a negative outlier leads its token and channel
    x = x.to(dtype)
    q, scale = kv_quant_int8(x, axis)
    x32 = x.float()
    dim = DIMS[axis]
    want_scale = (x32.abs().amax(dim, keepdim=True) / 127).clamp(min=1e-12)
    assert q.dtype == torch.int8 and q.shape == x.shape, f"q: {q.dtype} {tuple(q.shape)}"
    assert scale.dtype == torch.float32 and scale.shape == want_scale.shape, (
        f"axis={axis!r}: expected float32 scales {tuple(want_scale.shape)}, got {scale.dtype} "
        f"{tuple(scale.shape)}")
    assert torch.allclose(scale, want_scale, rtol=1e-6, atol=0), "scale must be absmax / 127"
    assert int(q.abs().max()) <= 127, "codes must stay in [-127, 127]"
    assert torch.equal(q, torch.round(x32 / want_scale).to(torch.int8)), \
        "q must be round(x / scale), rounding half to even"
    err = (kv_dequant_int8(q, scale) - x32).abs()
    bad = err > want_scale / 2 * (1 + 1e-5)
    assert not bad.any(), f"{int(bad.sum())} elements off by more than half a step"


@pytest.mark.points(1)
def test_round_half_to_even():
    """Bugs: truncation toward zero, or rounding halves away from zero (floor(x + 0.5)):
    torch.round rounds 0.5 to 0, 1.5 and 2.5 to 2, -0.5 to 0, -1.5 to -2."""
    x = torch.tensor([[127.0, 0.5, 1.5, 2.5, -0.5, -1.5, 2.7]])
    q, scale = kv_quant_int8(x, "token")
    assert scale.item() == 1.0
    assert q[0].tolist() == [127, 0, 2, 2, 0, -2, 3], f"codes {q[0].tolist()}"


@pytest.mark.points(2)
@pytest.mark.parametrize("axis", ["token", "channel"])
def test_all_zero_rows_and_columns(axis):
    """Bug: a scale of absmax / 127 without a floor: an all-zero token (padding) or an
    all-zero channel gives 0 / 0 = NaN in q's float, garbage codes, and NaN on the way back."""
    x = torch.randn(2, 5, 6, generator=torch.Generator().manual_seed(1))
    x[:, 2, :] = 0                      # a zero token
    x[:, :, 4] = 0                      # a zero channel
    x[1] = 0                            # a zero head
    q, scale = kv_quant_int8(x, axis)
    assert torch.isfinite(scale).all() and (scale > 0).all(), "scales must be finite and > 0"
    back = kv_dequant_int8(q, scale)
    assert torch.isfinite(back).all(), "dequantized values must be finite"
    assert (back[x == 0] == 0).all() and (q[x == 0] == 0).all(), "zeros must come back as 0"


@pytest.mark.points(2)
def test_keys_with_outlier_channels_want_per_channel_scales():
    """Bug: the axes swapped ("token" reducing over tokens). On keys with a few outlier
    channels (KIVI, Liu et al. 2024) a scale per channel keeps the small channels; a scale per
    token is set by the outliers and flattens them. Per-channel keys must be at least 1.5x more
    accurate, and attention over them within 1% of max |V|."""
    g = torch.Generator().manual_seed(5)
    k = torch.randn(2, 4, 96, 64, generator=g)
    k[..., [3, 17, 40]] *= 10
    v = torch.randn(2, 4, 96, 64, generator=g)
    q = torch.randn(2, 4, 3, 64, generator=g)

    def rel(axis):
        qk, sk = kv_quant_int8(k, axis)
        return ((kv_dequant_int8(qk, sk) - k).norm() / k.norm()).item()

    per_channel, per_token = rel("channel"), rel("token")
    assert per_channel * 1.5 < per_token, (
        f"keys with outlier channels: relative error {per_channel:.4f} per channel vs "
        f"{per_token:.4f} per token; per channel should be far smaller")
    kq, ks = kv_quant_int8(k, "channel")
    vq, vs = kv_quant_int8(v, "token")
    got = F.scaled_dot_product_attention(q, kv_dequant_int8(kq, ks), kv_dequant_int8(vq, vs))
    err = ((got - F.scaled_dot_product_attention(q, k, v)).abs().max() / v.abs().max()).item()
    assert err < 1e-2, f"attention over int8 KV off by {err:.2%} of max |V|"


@pytest.mark.points(1)
def test_dequant_dtype():
    """Bug: the ``dtype`` argument of kv_dequant_int8 ignored."""
    q, scale = kv_quant_int8(torch.randn(3, 8), "token")
    assert kv_dequant_int8(q, scale, torch.bfloat16).dtype == torch.bfloat16
    assert kv_dequant_int8(q, scale).dtype == torch.float32

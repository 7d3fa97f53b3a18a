"""Hidden grader, lesson 16: the FP8 KV cache - scales, slots and attention error."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from exercises.lesson16.kv_fp8 import fp8_kv_read, fp8_kv_write


def empty(num_slots, n_kv, d):
    return (torch.zeros(num_slots, n_kv, d, dtype=torch.float8_e4m3fn),
            torch.zeros(num_slots, n_kv, dtype=torch.float32))


@pytest.mark.points(3)
@given(n=st.integers(1, 12), n_kv=st.integers(1, 4), d=st.sampled_from([4, 16, 64]),
       log_mag=st.floats(-5, 5), spare=st.integers(0, 8), seed=st.integers(0, 2**16))
def test_round_trip_relative_to_each_row(n, n_kv, d, log_mag, spare, seed):
    """Bugs: fp8 without a scale (tiny keys flush to zero, large ones saturate at 448), one
    scale for the whole batch instead of per token and head, one scale per head shared by
    the tokens of a chunk (right for one token at a time), slots ignored, the scales written
    out of place (``index_copy`` instead of ``index_copy_``), the ``dtype`` argument of
    fp8_kv_read ignored."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, n_kv, d, generator=gen) * 10.0**log_mag
    x[0, 0] *= 1000.0
    slots = torch.randperm(n + spare, generator=gen)[:n]
    cache, scales = empty(n + spare, n_kv, d)
    fp8_kv_write(cache, scales, x, slots)
    back = fp8_kv_read(cache, scales, slots, torch.float32)
    assert back.dtype == torch.float32, f"fp8_kv_read(..., torch.float32) returned {back.dtype}"
    rowmax = x.abs().amax(-1, keepdim=True)
    # e4m3 keeps 3 mantissa bits: relative error <= 2^-4 near the row's max; 1/16 of the row's
    # max bounds every entry's error, including entries far below it.
    assert ((back - x).abs() <= rowmax / 16 + 1e-30).all(), "error above 1/16 of the row max"
    expected_scale = (rowmax[..., 0] / 448).where(rowmax[..., 0] > 0, torch.ones(()))
    assert torch.allclose(scales[slots], expected_scale, rtol=1e-6)
    untouched = torch.ones(n + spare, dtype=torch.bool)
    untouched[slots] = False
    assert (scales[untouched] == 0).all() and (cache[untouched].float() == 0).all()


@pytest.mark.points(2)
@pytest.mark.parametrize("magnitude", [1e-3, 1.0, 1e3])
def test_attention_error_bounded_at_any_magnitude(magnitude):
    """Bug: casting K/V to fp8 unscaled - at 1e-3 keys fall into e4m3's subnormals
    (smallest 2^-9, about 0.002) and at 1e3 they saturate; with per-token scales the
    attention output stays within 2% of V's scale at every magnitude."""
    gen = torch.Generator().manual_seed(7)
    n, n_kv, d = 200, 3, 64
    k = torch.randn(n, n_kv, d, generator=gen) * magnitude
    v = torch.randn(n, n_kv, d, generator=gen) * magnitude
    q = torch.randn(1, n_kv, 2, d, generator=gen) / magnitude
    kc, ks = empty(n, n_kv, d)
    vc, vs = empty(n, n_kv, d)
    slots = torch.arange(n)
    fp8_kv_write(kc, ks, k.bfloat16(), slots)
    fp8_kv_write(vc, vs, v.bfloat16(), slots)
    exact = F.scaled_dot_product_attention(q, k.transpose(0, 1)[None], v.transpose(0, 1)[None])
    got = F.scaled_dot_product_attention(
        q, fp8_kv_read(kc, ks, slots, torch.float32).transpose(0, 1)[None],
        fp8_kv_read(vc, vs, slots, torch.float32).transpose(0, 1)[None])
    assert (got - exact).abs().max() <= 0.02 * magnitude, "attention drifted beyond 2% of V"
    assert fp8_kv_read(kc, ks, slots).dtype == torch.bfloat16, "default dtype is bfloat16"

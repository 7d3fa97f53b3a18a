"""Hidden grader, lesson 03: the analytic time model against worked examples and properties.

Every expected value below is the roofline formula written out (Williams et al. 2009):
time = max(FLOPs / peak, bytes / bandwidth), with the FLOPs and bytes stated in each test.
"""

import pytest
from hypothesis import given
from hypothesis import strategies as st

import hardware_fixtures
from exercises.lesson03.time_model import (decode_step_time_s, phase_time_model,
                                           prefill_time_s)

LLAMA2_7B = 6.74e9   # parameters: 6,738,415,616 from the config.json shape (course.config.LLAMA2_7B)
LLAMA3_8B = 8.03e9   # parameters, Llama Team 2024 (model card: 8.03B)
KV_LLAMA3_8B = 131_072  # B/token at 16 bits: 2 x 2 x 32 layers x 8 heads x 128

params = st.floats(1e6, 1e11)
rates = st.floats(1e9, 1e16)


@pytest.mark.points(2)
def test_worked_examples():
    """Bugs: adding the compute and memory times instead of taking the larger one; counting
    the weights once per sequence of the batch; leaving out the KV bytes a decode step reads."""
    a10 = dict(peak_flops=125e12, bandwidth=600e9)
    t = decode_step_time_s(LLAMA2_7B, 1, 0, bytes_per_param=2, kv_bytes_per_token=0, **a10)
    assert t == pytest.approx(2 * LLAMA2_7B / 600e9), "Llama-2-7B fp16 on an A10: ~22.5 ms"
    h100 = hardware_fixtures.load("h100_sxm")
    peak, bw = h100.peak_flops("bf16"), h100.memory_bandwidth_bytes_per_s
    t = prefill_time_s(LLAMA2_7B, 2048, bytes_per_param=2, peak_flops=peak, bandwidth=bw)
    assert t == pytest.approx(2 * LLAMA2_7B * 2048 / peak), "prefill of 2048 tokens: compute-bound"
    # Llama-3-8B, batch 8 x 4096 cached tokens: (16.06 GB + 4.29 GB) / 3.35 TB/s = 6.08 ms
    t = decode_step_time_s(LLAMA3_8B, 8, 8 * 4096, bytes_per_param=2,
                           kv_bytes_per_token=KV_LLAMA3_8B, peak_flops=peak, bandwidth=bw)
    assert t == pytest.approx((2 * LLAMA3_8B + 8 * 4096 * KV_LLAMA3_8B) / bw)
    # batch 1024, no KV: 2 x 8.03e9 x 1024 FLOPs = 16.4 PFLOP -> 16.6 ms at 989.4 TFLOP/s
    t = decode_step_time_s(LLAMA3_8B, 1024, 0, bytes_per_param=2, kv_bytes_per_token=0,
                           peak_flops=peak, bandwidth=bw)
    assert t == pytest.approx(2 * LLAMA3_8B * 1024 / peak), "decode at batch 1024 is compute-bound"


@pytest.mark.points(2)
@given(n=params, tokens=st.integers(1, 100_000), batch=st.integers(1, 4096),
       kv=st.integers(0, 10**7), kvb=st.floats(0, 1e6), bpp=st.sampled_from([0.5, 1, 2, 4]),
       peak=rates, bw=rates, factor=st.floats(1.0, 100.0))
def test_roofline_properties(n, tokens, batch, kv, kvb, bpp, peak, bw, factor):
    """Bugs: a model that is not the max of its two roofs (a sum, or only one roof); decode
    FLOPs that ignore the batch; more bandwidth or more FLOP/s giving a slower estimate."""
    pre = dict(bytes_per_param=bpp, peak_flops=peak, bandwidth=bw)
    dec = dict(pre, kv_bytes_per_token=kvb)
    p = prefill_time_s(n, tokens, **pre)
    assert p == pytest.approx(max(2 * n * tokens / peak, n * bpp / bw), rel=1e-9)
    d = decode_step_time_s(n, batch, kv, **dec)
    assert d == pytest.approx(max(2 * n * batch / peak, (n * bpp + kv * kvb) / bw), rel=1e-9)
    faster = dict(dec, peak_flops=peak * factor, bandwidth=bw * factor)
    assert decode_step_time_s(n, batch, kv, **faster) <= d * (1 + 1e-12)
    assert prefill_time_s(n, tokens + 1, **pre) >= p
    assert decode_step_time_s(n, batch, kv + 1, **dec) >= d


@pytest.mark.points(1)
@given(n=params, batch=st.integers(1, 64), bpp=st.sampled_from([1, 2]))
def test_memory_bound_decode_grows_with_batch_only_through_kv(n, batch, bpp):
    """Bug: charging the weight read once per sequence: at batch sizes below the ridge point
    a decode step costs the same for 1 and for 64 sequences when there is no KV to read."""
    h100 = hardware_fixtures.load("h100_sxm")
    kw = dict(bytes_per_param=bpp, kv_bytes_per_token=0, peak_flops=h100.peak_flops("bf16"),
              bandwidth=h100.memory_bandwidth_bytes_per_s)
    assert decode_step_time_s(n, batch, 0, **kw) == pytest.approx(
        decode_step_time_s(n, 1, 0, **kw), rel=1e-12)


def _phase_brute_force(n, n_in, n_out, batch, kw):
    prefill = max(2 * n * batch * n_in / kw["peak_flops"],
                  n * kw["bytes_per_param"] / kw["bandwidth"])
    decode = 0.0
    cached = n_in  # tokens per sequence in the cache before the first decode step
    for _ in range(n_out - 1):
        cached += 1  # the step writes its own token, then reads everything
        decode += max(2 * n * batch / kw["peak_flops"],
                      (n * kw["bytes_per_param"] + batch * cached * kw["kv_bytes_per_token"])
                      / kw["bandwidth"])
    return prefill, decode


@pytest.mark.points(2)
@given(n=params, n_in=st.integers(1, 300), n_out=st.integers(1, 60), batch=st.integers(1, 64),
       kvb=st.floats(0, 1e6), peak=rates, bw=rates)
def test_phase_time_model_against_a_step_loop(n, n_in, n_out, batch, kvb, peak, bw):
    """Bugs: one decode step too many (n_out steps) or too few; KV read per sequence instead
    of for the whole batch; the prefill run on one sequence's tokens only; a context that
    does not grow from step to step."""
    kw = dict(bytes_per_param=2, kv_bytes_per_token=kvb, peak_flops=peak, bandwidth=bw)
    times = phase_time_model(n, n_in, n_out, batch, **kw)
    prefill, decode = _phase_brute_force(n, n_in, n_out, batch, kw)
    assert times.prefill_s == pytest.approx(prefill, rel=1e-9)
    assert times.decode_s == pytest.approx(decode, rel=1e-9, abs=1e-300)
    assert times.total_s == pytest.approx(prefill + decode, rel=1e-9)

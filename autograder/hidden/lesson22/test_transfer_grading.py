"""Hidden grader, lesson 22: the link conversion, the KV transfer time and the pool sizes.

References: the formula 2 x n_layers x n_kv_heads x d_head x dtype_bytes per token, written out
here for each config; link figures from hardware_fixtures and datasheets (both directions summed
for NVLink and PCIe, bits for network cards); pool sizes from hand-worked loads.
"""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hardware_fixtures
from course.config import LLAMA2_7B, LLAMA3_8B, SMOLLM2_135M, LlamaConfig
from exercises.lesson22.transfer import kv_transfer_time, link_bytes_per_s_per_direction, pd_ratio


@pytest.mark.points(2)
@pytest.mark.parametrize("rate, unit, both, expected", [
    (400, "Gb/s", False, 50e9),      # a 400 Gb/s NIC: bits, one direction
    (100, "Gb/s", False, 12.5e9),
    (800, "Gb/s", True, 50e9),       # a link quoted as the two-way sum, in bits
    (900, "GB/s", True, 450e9),      # NVLink4: "900 GB/s" both ways
    (128, "GB/s", True, 64e9),       # PCIe Gen5 x16
    (64, "GB/s", False, 64e9),
])
def test_link_figure_to_bytes_per_direction(rate, unit, both, expected):
    """Bugs: bits taken as bytes (a 400 Gb/s card as 400 GB/s, 8x too fast); a two-way total
    used as one direction (NVLink as 900 GB/s each way); halving a figure that is already per
    direction."""
    got = link_bytes_per_s_per_direction(rate, unit, bidirectional=both)
    assert got == pytest.approx(expected), (
        f"{rate} {unit} ({'both directions summed' if both else 'one direction'}) is "
        f"{expected / 1e9:g} GB/s per direction, got {got / 1e9:g} GB/s")


@pytest.mark.points(1)
def test_fixture_links_round_trip_through_the_conversion():
    """Bug: the per-direction figure stored in the H200 fixture cannot be recovered from the
    datasheet's two-way totals (the same halving as above, checked against the fixture)."""
    h200 = hardware_fixtures.load("h200_sxm")
    assert link_bytes_per_s_per_direction(900, "GB/s", True) == pytest.approx(
        h200.nvlink_bytes_per_s_per_direction)
    assert link_bytes_per_s_per_direction(128, "GB/s", True) == pytest.approx(
        h200.pcie_x16_bytes_per_s_per_direction)


def _bytes_per_token(cfg, dtype_bytes):
    return 2 * cfg.n_layers * cfg.n_kv_heads * cfg.d_head * dtype_bytes


@pytest.mark.points(2)
def test_llama3_8b_worked_example_and_mha():
    """Bugs: K and V counted once (half the time); n_heads instead of n_kv_heads (GQA ignored:
    Llama-3-8B 4x too slow); the two-way total used; bytes / bits confusion in the division."""
    t = kv_transfer_time(LLAMA3_8B, 4096, 50e9)
    assert t == pytest.approx(536_870_912 / 50e9), (
        f"Llama-3-8B, 4,096 tokens, bf16: 512 MiB over 50 GB/s is 10.74 ms, got {t * 1e3:.3f} ms")
    t2 = kv_transfer_time(LLAMA2_7B, 4096, 50e9)
    assert t2 == pytest.approx(4 * t), "Llama-2-7B (MHA, 32 KV heads) ships 4x Llama-3-8B's KV"


@pytest.mark.points(3)
@settings(max_examples=25, deadline=None)
@given(n_layers=st.integers(1, 80), n_kv=st.sampled_from([1, 2, 4, 8]), group=st.integers(2, 8),
       d_head=st.sampled_from([32, 64, 128]), prompt=st.integers(0, 200_000),
       dtype_bytes=st.sampled_from([1, 2, 4, 0.5]), link=st.sampled_from([12.5e9, 50e9, 450e9]))
def test_transfer_time_formula(n_layers, n_kv, group, d_head, prompt, dtype_bytes, link):
    """Bugs: n_heads for n_kv_heads (every config here has group >= 2), dtype_bytes ignored
    (fp8 or int4 KV as bf16), K and V counted once, a constant instead of n_layers."""
    cfg = LlamaConfig(name="g", n_layers=n_layers, d_model=n_kv * group * d_head,
                      n_heads=n_kv * group, n_kv_heads=n_kv, d_head=d_head, d_ff=128,
                      vocab_size=100, rope_theta=1e4, rms_eps=1e-5, tie_embeddings=False,
                      max_position=4096)
    expected = prompt * _bytes_per_token(cfg, dtype_bytes) / link
    got = kv_transfer_time(cfg, prompt, link, dtype_bytes)
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-15), (
        f"{n_layers} layers, {n_kv} KV heads ({n_kv * group} query heads) of {d_head}, "
        f"{dtype_bytes} B/element, {prompt} tokens over {link / 1e9:g} GB/s: expected "
        f"{expected:.6g} s, got {got:.6g} s")


@pytest.mark.points(1)
def test_smollm2_one_token():
    """Bug: the formula hard-coded for one model (SmolLM2-135M: 30 layers, 3 KV heads of 64:
    23,040 B per bf16 token)."""
    assert kv_transfer_time(SMOLLM2_135M, 1, 1e9) == pytest.approx(23_040 / 1e9)


@pytest.mark.points(3)
@pytest.mark.parametrize("args, expected, why", [
    ((5000, 400, 4, 2000, 250), (2, 3), "1.6 -> 2 prefill, 2.5 -> 3 decode"),
    ((4000, 500, 4, 2000, 250), (2, 2), "exactly 2.0 and 2.0: no extra instance"),
    ((10000, 2500, 10, 3000, 300), (3, 2), "3.0 exactly, 1.2 -> 2"),
    ((10000, 2500, 10, 200, 500), (1, 2), "0.2 -> 1, 2.0 exactly"),
    ((110, 100, 1.1, 700, 100), (7, 2), "1.1 x 700 / 110 is 7.000000000000001 in floats; 1.1 -> 2"),
    ((1000, 1000, 1, 1001, 999), (2, 1), "1.001 -> 2, 0.999 -> 1"),
    ((3000, 20, 0.1, 7, 3), (1, 1), "tiny loads still need one instance each"),
])
def test_pd_ratio_rounds_each_pool_up(args, expected, why):
    """Bugs: floor instead of ceil (1.6 prefill instances as 1: the pool falls behind);
    int(x) + 1 (a whole 2.0 bought a third instance); floating-point noise rounded up; the
    two pools' rates swapped; mean_in and mean_out swapped."""
    got = pd_ratio(*args)
    assert tuple(got) == expected, f"pd_ratio{args}: expected {expected} ({why}), got {got}"
    assert all(isinstance(n, int) for n in got), f"instance counts must be ints, got {got}"


@pytest.mark.points(1)
def test_pd_ratio_refuses_bad_rates():
    """Bug: a zero, negative or infinite rate passed on (ZeroDivisionError, a negative or
    infinite instance count) instead of a clear ValueError; the check must not reject a good
    workload either."""
    assert tuple(pd_ratio(5000, 400, 4, 2000, 250)) == (2, 3)
    for bad in (0, -1.0, math.inf):
        for i in range(5):
            args = [5000, 400, 4, 2000, 250]
            args[i] = bad
            with pytest.raises(ValueError):
                pd_ratio(*args)

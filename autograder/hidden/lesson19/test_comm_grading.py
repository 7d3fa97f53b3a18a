"""Hidden grader, lesson 19: the ring all-reduce cost model and the simulated ring.

References: elementwise sums computed here with plain Python, the byte count of the ring
algorithm (Patarasuk and Yuan 2009: each rank sends 2 (N-1) chunks of nbytes / N), and the
per-direction link figures of hardware_fixtures.
"""

import pytest
from hypothesis import given
from hypothesis import strategies as st

import hardware_fixtures
from course.config import LLAMA3_8B
from exercises.lesson19.comm_cost import (ring_allreduce_time, simulate_ring_allreduce,
                                          tp_decode_comm_time)


@pytest.mark.points(3)
@given(world=st.integers(1, 8), per_rank=st.integers(1, 5), seed=st.integers(0, 1000),
       bytes_per_element=st.sampled_from([1, 2, 4]))
def test_formula_equals_the_simulated_ring(world, per_rank, seed, bytes_per_element):
    """Bugs: (N-1)/N instead of 2(N-1)/N (forgetting the all-gather half), a simulated ring
    whose all-gather adds instead of copying, bytes counted only in one phase. The formula's
    time must be the bytes one rank sends / the per-direction bandwidth."""
    length = world * per_rank
    data = [[float((seed * 31 + r * 7 + i * 3) % 17) for i in range(length)] for r in range(world)]
    result, sent = simulate_ring_allreduce(data, bytes_per_element)
    total = [sum(data[r][i] for r in range(world)) for i in range(length)]
    for r in range(world):
        assert result[r] == total, f"rank {r} of {world} does not hold the elementwise sum"
    nbytes = length * bytes_per_element
    assert sent == [2 * (world - 1) * nbytes // world] * world, (
        f"each rank must send 2 (N-1)/N x {nbytes} B = {2 * (world - 1) * nbytes // world} B "
        f"with N = {world}; the simulation counted {sent}")
    bw = 100e9
    assert ring_allreduce_time(nbytes, world, bw) == pytest.approx(sent[0] / bw), (
        "ring_allreduce_time without latency must equal the bytes one rank sends divided by "
        "the per-direction bandwidth")


@pytest.mark.points(1)
def test_simulated_ring_with_uneven_chunks():
    """Bugs: a simulation that assumes the length divides by N (drops or double-counts the
    remainder elements); one that works on the caller's lists in place (``buf = data``),
    which the docstring forbids."""
    data = [[float(r + 10 * i) for i in range(7)] for r in range(3)]
    before = [list(v) for v in data]
    result, sent = simulate_ring_allreduce(data, 2)
    assert data == before, "simulate_ring_allreduce must not modify its input lists"
    assert result == [[float(3 + 30 * i) for i in range(7)]] * 3
    assert sum(sent) == 2 * (3 - 1) * 7 * 2, "all ranks together send 2 (N-1) x nbytes"


@pytest.mark.points(2)
def test_latency_and_per_direction_bandwidth():
    """Bugs: the link's bidirectional total used as if it were one direction (2x too fast),
    latency paid once instead of once per step, time for one rank that is not zero."""
    # 2 (N-1) = 14 steps of (3 us + 8 MB / 8 / 450 GB/s)
    assert ring_allreduce_time(8e6, 8, 450e9, 3e-6) == pytest.approx(14 * (3e-6 + 1e6 / 450e9))
    assert ring_allreduce_time(0, 4, 450e9, 5e-6) == pytest.approx(6 * 5e-6)
    assert ring_allreduce_time(1e9, 1, 1.0, 1.0) == 0.0


@pytest.mark.points(2)
def test_nvlink_vs_pcie_for_a_llama3_8b_decode_step():
    """Bugs: NVLink/PCIe figures mixed up between per-direction and total, or the cost model
    off by a constant: TP=2 decode of Llama-3-8B, batch 64, bf16, on H100 SXM links."""
    h100 = hardware_fixtures.load("h100_sxm")
    nvlink = h100.gpu_link_bytes_per_s_per_direction
    pcie = h100.pcie_x16_bytes_per_s_per_direction
    assert (nvlink, pcie) == (450e9, 64e9)
    message = 64 * 4096 * 2  # batch x d_model x bf16 bytes per all-reduce
    expected = 2 * 32 * 2 * (2 - 1) * (message / 2 / nvlink)  # 64 all-reduces, 2 steps each
    assert tp_decode_comm_time(LLAMA3_8B, 64, 2, nvlink, 0.0) == pytest.approx(expected)
    assert expected == pytest.approx(74.56e-6, rel=1e-3)  # about 75 us per step on NVLink4
    ratio = tp_decode_comm_time(LLAMA3_8B, 64, 2, pcie, 0.0) / \
        tp_decode_comm_time(LLAMA3_8B, 64, 2, nvlink, 0.0)
    assert ratio == pytest.approx(450 / 64)

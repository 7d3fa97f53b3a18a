"""Hidden grader, lesson 18: the swap and recompute costs and their crossover, by hand."""

import math

import pytest

import hardware_fixtures as hf
from course.config import LLAMA2_7B, LLAMA3_8B, tiny
from exercises.lesson18.swap import recompute_seconds, swap_seconds, swap_vs_recompute


def hand_swap(c, L, link, nbytes=2):
    return 2 * L * (2 * c.n_layers * c.n_kv_heads * c.d_head * nbytes) / link


def hand_recompute(c, L, peak):
    d = c.d_model
    p = c.n_layers * (2 * d * c.n_heads * c.d_head + 2 * d * c.n_kv_heads * c.d_head + 3 * d * c.d_ff)
    return (2 * p * L + 2 * c.n_layers * c.n_heads * c.d_head * L * (L + 1)) / peak


@pytest.mark.points(2)
@pytest.mark.parametrize("fixture", ["h100_sxm", "a100_sxm_80gb", "l4"])
def test_costs_match_the_formulas_on_the_fixtures(fixture):
    """Bugs: the swap counted once (out only) or with the two-way PCIe figure; bits for
    bytes; the attention term left out or counted as a full square; the LM head counted."""
    gpu = hf.load(fixture)
    link, peak = gpu.pcie_x16_bytes_per_s_per_direction, gpu.peak_flops("bf16")
    for c in (LLAMA2_7B, LLAMA3_8B):
        for L in (1, 300, 8192):
            assert swap_seconds(c, L, link) == pytest.approx(hand_swap(c, L, link), rel=1e-9)
            assert recompute_seconds(c, L, peak) == pytest.approx(hand_recompute(c, L, peak),
                                                                  rel=1e-9)


@pytest.mark.points(1)
def test_kv_dtype_and_link_are_used():
    """Bug: dtype_bytes ignored (an FP8 KV cache swaps half the bytes) or a fixed link speed."""
    assert swap_seconds(LLAMA3_8B, 1000, 32e9, dtype_bytes=1) == \
        pytest.approx(hand_swap(LLAMA3_8B, 1000, 32e9, nbytes=1))
    assert swap_seconds(LLAMA3_8B, 0, 32e9) == 0.0
    with pytest.raises(ValueError, match="ctx_len"):  # the given checks stay in place
        swap_vs_recompute(LLAMA3_8B, -1, 64e9, 1e15)
    with pytest.raises(ValueError, match="bandwidth"):
        swap_seconds(LLAMA3_8B, 10, 0.0)


@pytest.mark.points(2)
def test_crossover_is_the_first_length_where_swap_wins():
    """Bugs: the crossover off by one (floor instead of ceiling, or the L + 1 of causal
    attention dropped); the choice inverted. Checked against a
    search over lengths with the hand formulas."""
    cfg = tiny(n_layers=2, d_model=64, n_heads=4, n_kv_heads=4, d_ff=128)
    for link, peak in ((1.1e9, 1e12), (3e9, 5e12), (64e9, 989.4e12)):  # no exact ties
        first = next(L for L in range(1, 1_000_000)
                     if hand_swap(cfg, L, link) <= hand_recompute(cfg, L, peak))
        got = swap_vs_recompute(cfg, first, link, peak)
        assert got.crossover_tokens == first, (link, peak, got.crossover_tokens, first)
        assert got.choice == "swap"
        if first > 1:
            assert swap_vs_recompute(cfg, first - 1, link, peak).choice == "recompute"
    h100 = hf.load("h100_sxm")
    link, peak = h100.pcie_x16_bytes_per_s_per_direction, h100.peak_flops("bf16")
    assert swap_vs_recompute(LLAMA2_7B, 12_428, link, peak).choice == "recompute"
    assert swap_vs_recompute(LLAMA2_7B, 12_429, link, peak).choice == "swap"
    assert swap_vs_recompute(LLAMA3_8B, 1, link, peak).crossover_tokens == 1

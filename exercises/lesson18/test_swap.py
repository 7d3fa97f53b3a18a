"""Lesson 18: swap or recompute. Run: pytest exercises/lesson18"""

import math

import pytest

import hardware_fixtures as hf
from course.config import LLAMA2_7B, LLAMA3_8B
from exercises.lesson18.swap import recompute_seconds, swap_seconds, swap_vs_recompute

H100 = hf.load("h100_sxm")
PCIE = H100.pcie_x16_bytes_per_s_per_direction  # 64e9 B/s each way (Gen5 x16)
PEAK = H100.peak_flops("bf16")  # 989.4e12 FLOP/s dense


def test_swap_is_kv_bytes_out_and_back_over_one_direction():
    # Llama-3-8B: 2 (K, V) x 32 layers x 8 KV heads x 128 x 2 bytes = 131,072 B per token
    assert swap_seconds(LLAMA3_8B, 2048, PCIE) == pytest.approx(2 * 2048 * 131_072 / 64e9)


def test_recompute_is_prefill_flops_over_peak():
    layer_params = 32 * (2 * 4096 * 4096 + 2 * 4096 * 1024 + 3 * 4096 * 14336)
    flops = 2 * layer_params * 2048 + 2 * 32 * 32 * 128 * 2048 * 2049
    assert recompute_seconds(LLAMA3_8B, 2048, PEAK) == pytest.approx(flops / 989.4e12)


def test_crossover_for_llama2_7b_and_llama3_8b():
    got = swap_vs_recompute(LLAMA2_7B, 4096, PCIE, PEAK)
    # per token: swap 2 x 524,288 B / 64 GB/s; recompute (2 x 6,476,005,376 + a (L + 1)) / peak
    a = 2 * 32 * 32 * 128
    x = (2 * 524_288 * 989.4e12 / 64e9 - 2 * 6_476_005_376) / a - 1
    assert got.crossover_tokens == math.ceil(x) == 12_429
    assert got.choice == "recompute", "at 4,096 tokens recomputing a Llama-2-7B is cheaper"
    gqa = swap_vs_recompute(LLAMA3_8B, 16, PCIE, PEAK)
    assert gqa.choice == "swap" and gqa.crossover_tokens == 1, \
        "Llama-3-8B's KV is 4x smaller: swapping wins at every length"

"""Lesson 22, part 1: the KV hand-off's cost and the prefill:decode ratio.
Run: pytest exercises/lesson22

Expected values are worked by hand in the comments (GB = 1e9 B, MiB = 2**20 B).
"""

import pytest

from course.config import LLAMA2_7B, LLAMA3_8B
from exercises.lesson22.transfer import kv_transfer_time, link_bytes_per_s_per_direction, pd_ratio


def test_link_figures_per_direction_in_bytes():
    # a 400 Gb/s network card: 400e9 bits / 8 = 50 GB/s, each way
    assert link_bytes_per_s_per_direction(400, "Gb/s", bidirectional=False) == pytest.approx(50e9)
    # NVLink4's "900 GB/s" adds both directions: 450 GB/s each way
    assert link_bytes_per_s_per_direction(900, "GB/s", bidirectional=True) == pytest.approx(450e9)
    # PCIe Gen5 x16's "128 GB/s" is also both directions: 64 GB/s each way
    assert link_bytes_per_s_per_direction(128, "GB/s", bidirectional=True) == pytest.approx(64e9)
    with pytest.raises(ValueError):
        link_bytes_per_s_per_direction(400, "Gbps", bidirectional=False)


def test_llama3_8b_4k_prompt_over_50_gb_per_s():
    # 131,072 B/token x 4,096 tokens = 536,870,912 B = 512 MiB; / 50e9 B/s = 10.737 ms
    assert kv_transfer_time(LLAMA3_8B, 4096, 50e9) == pytest.approx(536_870_912 / 50e9)
    # fp8 KV halves it; an empty prompt costs nothing
    assert kv_transfer_time(LLAMA3_8B, 4096, 50e9, dtype_bytes=1) == pytest.approx(536_870_912 / 100e9)
    assert kv_transfer_time(LLAMA3_8B, 0, 50e9) == 0.0


def test_mha_model_ships_four_times_the_bytes_of_gqa():
    # Llama-2-7B: 32 KV heads x 128 x 32 layers x 2 x 2 B = 524,288 B/token, 4x Llama-3-8B's
    assert kv_transfer_time(LLAMA2_7B, 1000, 1e9) == pytest.approx(1000 * 524_288 / 1e9)


def test_pd_ratio_worked_example():
    # 4 requests/s x 2,000 prompt tokens = 8,000 tokens/s of prefill at 5,000 per instance: 1.6 -> 2
    # 4 requests/s x 250 output tokens = 1,000 tokens/s of decode at 400 per instance: 2.5 -> 3
    assert pd_ratio(5000, 400, 4, 2000, 250) == (2, 3)
    # exactly 2.0 instances' worth is 2 instances, not 3
    assert pd_ratio(4000, 500, 4, 2000, 250) == (2, 2)
    with pytest.raises(ValueError):
        pd_ratio(5000, 400, 0, 2000, 250)

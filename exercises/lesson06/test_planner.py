"""Lesson 06, part 2: the plan and the fewest GPUs. Run: pytest exercises/lesson06"""

import dataclasses

import hardware_fixtures
from course.config import LLAMA2_7B, LLAMA3_8B
from exercises.lesson06.planner import min_gpus, plan

H100 = hardware_fixtures.load("h100_sxm")


def test_llama3_8b_on_one_h100():
    p = plan(LLAMA3_8B, H100, reserve_fraction=0.1, context_len=8192)
    assert p.usable_bytes == 77_309_411_328          # 90% of 80 GiB
    assert p.weights_bytes == 16_060_522_496
    assert p.kv_budget_bytes == 61_248_888_832
    assert p.max_tokens == 467_291
    assert p.max_batch_at_context == 57 and p.fits


def test_llama2_7b_holds_four_times_fewer_tokens_per_byte():
    p = plan(LLAMA2_7B, H100, context_len=4096)
    assert p.kv_bytes_per_token == 524_288
    assert p.max_tokens == 121_750 and p.max_batch_at_context == 29


def test_overhead_and_a_model_that_does_not_fit():
    p = plan(LLAMA3_8B, H100, overhead_bytes=2 * 2**30, context_len=4096)
    assert p.usable_bytes == 77_309_411_328 - 2 * 2**30
    small = hardware_fixtures.load("l4")  # 24 GiB
    q = plan(LLAMA3_8B, small, reserve_fraction=0.5, context_len=4096)
    assert q.kv_budget_bytes == 0 and q.max_tokens == 0 and not q.fits


def test_min_gpus_worked_example():
    assert min_gpus(LLAMA2_7B, H100, target_batch=64, context_len=4096) == 2
    assert min_gpus(LLAMA2_7B, H100, target_batch=29, context_len=4096) == 1
    assert min_gpus(LLAMA2_7B, H100, 100, 4096, choices=(1, 2, 4, 8)) == 4
    assert min_gpus(LLAMA2_7B, H100, 10**6, 4096, max_gpus=8) is None


def test_usable_bytes_round_down():
    odd = dataclasses.replace(H100, memory_bytes=1_000_000_002)  # a made-up odd capacity
    p = plan(LLAMA3_8B, odd, reserve_fraction=0.25, context_len=4096)
    assert p.usable_bytes == 750_000_001  # floor(1,000,000,002 x 0.75), not 750,000,002

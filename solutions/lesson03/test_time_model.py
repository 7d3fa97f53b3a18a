"""Lesson 03, part 2: the analytic time model. Run: pytest exercises/lesson03"""

import pytest

import hardware_fixtures
from exercises.lesson03.time_model import (decode_step_time_s, phase_time_model,
                                           prefill_time_s)

LLAMA2_7B_PARAMS = 6.74e9  # 6,738,415,616 computed from the config.json shape (course.config.LLAMA2_7B)
A10 = dict(peak_flops=125e12, bandwidth=600e9)  # NVIDIA A10 datasheet: fp16 dense, GDDR6


def test_llama2_7b_decode_on_an_a10_is_about_23_ms():
    t = decode_step_time_s(LLAMA2_7B_PARAMS, 1, 0, bytes_per_param=2, kv_bytes_per_token=0, **A10)
    assert t == pytest.approx(LLAMA2_7B_PARAMS * 2 / 600e9)  # weight bytes / bandwidth
    assert 0.022 < t < 0.023


def test_long_prefill_is_compute_bound():
    h100 = hardware_fixtures.load("h100_sxm")
    peak, bw = h100.peak_flops("bf16"), h100.memory_bandwidth_bytes_per_s
    t = prefill_time_s(LLAMA2_7B_PARAMS, 2048, bytes_per_param=2, peak_flops=peak, bandwidth=bw)
    assert t == pytest.approx(2 * LLAMA2_7B_PARAMS * 2048 / peak)  # about 27.9 ms


def test_phase_time_model_worked_example():
    kw = dict(bytes_per_param=1, kv_bytes_per_token=10, peak_flops=1e3, bandwidth=100)
    times = phase_time_model(100, 3, 3, 2, **kw)
    # prefill: max(2*100*6/1e3, 100/100) = 1.2 s; steps read 8 and 10 cached tokens:
    # max(0.4, (100 + 80) / 100) + max(0.4, (100 + 100) / 100) = 1.8 + 2.0
    assert times.prefill_s == pytest.approx(1.2)
    assert times.decode_s == pytest.approx(3.8)
    assert phase_time_model(100, 3, 1, 2, **kw).decode_s == 0

"""Lesson 06, part 1: parameters, weight bytes and KV bytes per token.
Run: pytest exercises/lesson06"""

import pytest

from course.config import LLAMA2_7B, LLAMA3_8B, SMOLLM2_135M
from exercises.lesson06.capacity import kv_bytes_per_token, num_params, weights_bytes


@pytest.mark.parametrize("cfg,expected", [(LLAMA2_7B, 6_738_415_616),
                                          (LLAMA3_8B, 8_030_261_248),
                                          (SMOLLM2_135M, 134_515_008)],
                         ids=["llama2-7b", "llama3-8b", "smollm2-135m"])
def test_num_params_of_published_models(cfg, expected):
    assert num_params(cfg) == expected


def test_weights_bytes_in_each_format():
    assert weights_bytes(LLAMA3_8B, "bf16") == 16_060_522_496  # 16.06 GB = 14.96 GiB
    assert weights_bytes(LLAMA3_8B, "fp8") == 8_030_261_248
    assert weights_bytes(LLAMA3_8B, 0.5) == 4_015_130_624
    assert weights_bytes(SMOLLM2_135M, 0.625) == 84_071_880  # Q4_1-like: 20 B per 32 weights


def test_kv_bytes_per_token_and_the_errata():
    assert kv_bytes_per_token(LLAMA2_7B) == 524_288
    assert kv_bytes_per_token(LLAMA3_8B) == 131_072
    assert kv_bytes_per_token(LLAMA3_8B, "fp8") == 65_536
    assert kv_bytes_per_token(SMOLLM2_135M) == 23_040
    # batch 32 x 4096 tokens of Llama-3-8B, 16-bit KV: 17.2 GB = exactly 16 GiB (not 32 GB)
    assert 32 * 4096 * kv_bytes_per_token(LLAMA3_8B, "fp16") == 16 * 2**30

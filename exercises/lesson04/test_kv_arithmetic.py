"""Lesson 04, part 1: KV cache arithmetic. Run: pytest exercises/lesson04"""

from course.config import LLAMA2_7B, LLAMA3_8B, OPT_13B
from exercises.lesson04.kv_arithmetic import (kv_bytes_per_token, kv_cache_bytes,
                                              max_tokens_in_budget)


def test_published_bytes_per_token():
    assert kv_bytes_per_token(LLAMA2_7B, 2) == 524_288   # 32 layers x 32 KV heads x 128, MHA
    assert kv_bytes_per_token(LLAMA3_8B, 2) == 131_072   # GQA: 8 KV heads
    assert kv_bytes_per_token(OPT_13B, 2) == 819_200     # "800 KB" in the vLLM paper


def test_a_batch_of_llama3_8b_is_16_gib():
    nbytes = kv_cache_bytes(LLAMA3_8B, batch=32, seq_len=4096, dtype_bytes=2)
    assert nbytes == 16 * 2**30  # 17.2 GB, not 32 GB
    assert kv_cache_bytes(LLAMA2_7B, 1, 4096, 2) == 2 * 2**30


def test_tokens_in_a_budget_round_down():
    assert max_tokens_in_budget(LLAMA2_7B, 2**30, 2) == 2048
    assert max_tokens_in_budget(LLAMA2_7B, 2**30 - 1, 2) == 2047


def test_other_formats_negative_and_huge_budgets():
    assert kv_cache_bytes(LLAMA3_8B, 1, 50, dtype_bytes=1) == 3_276_800   # an fp8 cache
    assert max_tokens_in_budget(LLAMA3_8B, 2**30, dtype_bytes=1) == 16_384
    assert max_tokens_in_budget(LLAMA2_7B, -1, 2) == 0
    # exact at any size: 2**60 - 1 B is one byte short of 2**43 tokens (float division says 2**43)
    assert max_tokens_in_budget(LLAMA3_8B, 2**60 - 1, 2) == 2**43 - 1

"""Lesson 05, part 2: mean-pooling MHA heads into groups, and what GQA saves.
Run: pytest exercises/lesson05"""

import pytest
import torch

from course.config import LLAMA2_7B, LLAMA3_8B, SMOLLM2_135M
from exercises.lesson05.conversion import convert_mha_to_gqa, kv_reduction_factor


def test_two_heads_per_group_are_averaged():
    d_head, d_model = 2, 3
    k = torch.arange(4 * d_head * d_model, dtype=torch.float32).view(4 * d_head, d_model)
    v = -k
    k2, v2 = convert_mha_to_gqa(k, v, n_heads=4, n_groups=2)
    assert k2.shape == (2 * d_head, d_model)
    heads = k.view(4, d_head, d_model)
    assert torch.allclose(k2[:d_head], (heads[0] + heads[1]) / 2)
    assert torch.allclose(k2[d_head:], (heads[2] + heads[3]) / 2)
    assert torch.allclose(v2, -k2)


def test_mha_is_unchanged_and_mqa_is_the_mean_of_all_heads():
    g = torch.Generator().manual_seed(0)
    k, v = torch.randn(6 * 4, 5, generator=g), torch.randn(6 * 4, 5, generator=g)
    k6, v6 = convert_mha_to_gqa(k, v, 6, 6)
    assert torch.allclose(k6, k) and torch.allclose(v6, v)
    k1, _ = convert_mha_to_gqa(k, v, 6, 1)
    assert torch.allclose(k1, k.view(6, 4, 5).mean(0), atol=1e-6)


def test_bfloat16_weights_stay_bfloat16():
    k = torch.randn(4 * 2, 3, generator=torch.Generator().manual_seed(1)).bfloat16()
    k2, v2 = convert_mha_to_gqa(k, -k, n_heads=4, n_groups=2)
    assert k2.dtype == torch.bfloat16 and v2.dtype == torch.bfloat16
    assert torch.allclose(k2.float(), k.float().view(2, 2, 2, 3).mean(1).reshape(4, 3), atol=1e-2)


def test_kv_reduction_factor_of_real_models():
    assert kv_reduction_factor(SMOLLM2_135M) == 3  # 9 query heads, 3 KV heads
    assert kv_reduction_factor(LLAMA3_8B) == 4
    assert kv_reduction_factor(LLAMA2_7B) == 1
    assert kv_reduction_factor(LLAMA2_7B, n_kv_heads=1) == 32
    with pytest.raises(ValueError):
        kv_reduction_factor(SMOLLM2_135M, n_kv_heads=2)

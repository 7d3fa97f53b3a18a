"""Lesson 05, part 1: repeat_kv and grouped-query attention. Run: pytest exercises/lesson05"""

import pytest
import torch
import torch.nn.functional as F

from course.counting import AllocationCounter
from course.testing import assert_close
from exercises.lesson05.grouped_attention import gqa_attention, repeat_kv

REFERENCE = "SDPA on K/V expanded with repeat_interleave (bottom-right causal mask)"


def expanded_reference(q, k, v, causal):
    group = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
    T, S = q.shape[2], k.shape[2]
    mask = torch.ones(T, S, dtype=torch.bool).tril(diagonal=S - T) if causal else None
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def qkv(batch, n_heads, n_kv_heads, T, S, d_head=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, n_heads, T, d_head, generator=g),
            torch.randn(batch, n_kv_heads, S, d_head, generator=g),
            torch.randn(batch, n_kv_heads, S, d_head, generator=g))


def test_repeat_kv_order_is_interleaved():
    x = torch.arange(2.0).view(1, 2, 1, 1)  # heads [0, 1]
    assert repeat_kv(x, 2).flatten().tolist() == [0.0, 0.0, 1.0, 1.0]
    _, k, _ = qkv(2, 6, 3, 1, 5)
    assert torch.equal(repeat_kv(k, 2), torch.repeat_interleave(k, 2, dim=1))
    assert repeat_kv(k, 1) is k


@pytest.mark.parametrize("n_heads,n_kv_heads", [(4, 4), (6, 2), (9, 3), (4, 1)],
                         ids=["MHA", "GQA-3", "GQA-smollm2", "MQA"])
def test_gqa_equals_sdpa_on_expanded_heads(n_heads, n_kv_heads):
    q, k, v = qkv(2, n_heads, n_kv_heads, T=5, S=5)
    assert_close(gqa_attention(q, k, v), expanded_reference(q, k, v, False), atol=1e-5,
                 rtol=1e-5, what="gqa_attention", reference=REFERENCE)
    assert_close(gqa_attention(q, k, v, causal=True), expanded_reference(q, k, v, True),
                 atol=1e-5, rtol=1e-5, what="gqa_attention(causal=True)", reference=REFERENCE)


def test_causal_decode_queries_are_the_last_positions():
    q, k, v = qkv(1, 4, 2, T=3, S=10, seed=1)  # 3 new tokens after 7 cached ones
    assert_close(gqa_attention(q, k, v, causal=True), expanded_reference(q, k, v, True),
                 atol=1e-5, rtol=1e-5, what="gqa_attention, 3 queries over 10 keys",
                 reference=REFERENCE)
    # one query token sees every key, causal or not
    q1 = q[:, :, -1:]
    assert_close(gqa_attention(q1, k, v, causal=True), expanded_reference(q1, k, v, False),
                 atol=1e-5, rtol=1e-5, what="gqa_attention for one decode token",
                 reference=REFERENCE)


def test_gqa_does_not_materialise_repeated_kv():
    q, k, v = qkv(2, 8, 2, T=1, S=64, d_head=16)
    expanded_bytes = k.nbytes * 4  # [2, 8, 64, 16] float32
    with AllocationCounter() as counter:
        gqa_attention(q, k, v)
    assert counter.peak_single_bytes < expanded_bytes, (
        f"gqa_attention allocated a tensor of {counter.peak_single_bytes:,} B; a repeated K or "
        f"V is {expanded_bytes:,} B. Group the queries instead of repeating K/V.\n"
        f"{counter.report()}")


def test_large_scores_mha_decode_and_a_transposed_q():
    q, k, v = qkv(2, 4, 2, T=3, S=7, seed=2)
    big = q * 30  # scores past 100: exp() overflows without subtracting the row maximum
    assert_close(gqa_attention(big, k, v, causal=True), expanded_reference(big, k, v, True),
                 atol=1e-4, rtol=1e-4, what="gqa_attention with large scores",
                 reference=REFERENCE)
    q, k, v = qkv(2, 3, 3, T=2, S=6, seed=3)  # MHA (group of one), 2 queries after 4 keys
    assert_close(gqa_attention(q, k, v, causal=True), expanded_reference(q, k, v, True),
                 atol=1e-5, rtol=1e-5, what="gqa_attention, MHA decode chunk",
                 reference=REFERENCE)
    q, k, v = qkv(1, 4, 2, T=3, S=5, seed=4)
    strided = q.transpose(1, 2).contiguous().transpose(1, 2)  # as a projection's output gives
    assert_close(gqa_attention(strided, k, v, causal=True), expanded_reference(q, k, v, True),
                 atol=1e-5, rtol=1e-5, what="gqa_attention on a non-contiguous q",
                 reference=REFERENCE)

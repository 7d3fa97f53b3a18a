"""Lesson 12, part 3: decode attention over a paged cache. Run: pytest exercises/lesson12"""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from course.paged import dense_decode_reference, make_paged_case
from course.testing import assert_close
from exercises.lesson12.paged_attention import paged_attention_decode, write_kv

REFERENCE = "dense SDPA over each sequence's own tokens"


@pytest.mark.parametrize("n_heads,n_kv_heads", [(4, 4), (8, 2), (6, 1)])
def test_paged_equals_dense(n_heads, n_kv_heads):
    case = make_paged_case([5, 17, 1, 32], n_heads, n_kv_heads, d_head=16, block_size=4)
    got = paged_attention_decode(case.q, case.k_cache, case.v_cache, case.block_tables,
                                 case.context_lens)
    assert_close(got, dense_decode_reference(case), atol=1e-5, rtol=1e-5,
                 what="paged_attention_decode", reference=REFERENCE)


def test_bfloat16_in_bfloat16_out():
    case = make_paged_case([5, 17], 4, 2, d_head=16, block_size=4, dtype=torch.bfloat16)
    got = paged_attention_decode(case.q, case.k_cache, case.v_cache, case.block_tables,
                                 case.context_lens)
    assert_close(got, dense_decode_reference(case), atol=2e-2, rtol=2e-2,
                 what="paged_attention_decode in bfloat16 (the result in q's dtype)",
                 reference=REFERENCE)


def test_custom_scale_is_used():
    case = make_paged_case([7, 3], 4, 2, d_head=8, block_size=2, seed=1)
    got = paged_attention_decode(case.q, case.k_cache, case.v_cache, case.block_tables,
                                 case.context_lens, scale=0.5)
    assert_close(got, dense_decode_reference(case, scale=0.5), atol=1e-5, rtol=1e-5,
                 what="paged_attention_decode(scale=0.5)", reference=REFERENCE)


@given(lengths=st.lists(st.integers(1, 40), min_size=1, max_size=4),
       block_size=st.sampled_from([1, 2, 3, 8, 16]), seed=st.integers(0, 2**16))
def test_paged_equals_dense_for_any_layout(lengths, block_size, seed):
    case = make_paged_case(lengths, 4, 2, d_head=8, block_size=block_size, seed=seed)
    got = paged_attention_decode(case.q, case.k_cache, case.v_cache, case.block_tables,
                                 case.context_lens)
    assert_close(got, dense_decode_reference(case), atol=1e-5, rtol=1e-5,
                 what=f"paged_attention_decode (block_size {block_size}, lengths {lengths})",
                 reference=REFERENCE)


def test_zero_length_sequence_and_wrong_shapes():
    case = make_paged_case([3, 0, 2], 4, 2, d_head=8, block_size=2)
    got = paged_attention_decode(case.q, case.k_cache, case.v_cache, case.block_tables,
                                 case.context_lens)
    assert_close(got, dense_decode_reference(case), atol=1e-5, rtol=1e-5,
                 what="paged_attention_decode with an empty sequence (its output is 0)",
                 reference=REFERENCE)
    with pytest.raises(ValueError, match="q must be"):
        paged_attention_decode(case.q[0], case.k_cache, case.v_cache, case.block_tables,
                               case.context_lens)


def test_write_kv_stores_tokens_at_their_slots():
    k_cache = torch.zeros(4, 2, 1, 3)
    v_cache = torch.zeros(4, 2, 1, 3)
    k = torch.arange(6.0).view(2, 1, 3)
    write_kv(k_cache, v_cache, k, -k, torch.tensor([5, 0]))
    assert torch.equal(k_cache[2, 1], k[0]) and torch.equal(k_cache[0, 0], k[1])
    assert torch.equal(v_cache[2, 1], -k[0])
    assert int((k_cache != 0).sum()) == 5, "write_kv must touch only the given slots"


def test_large_scores_stay_finite():
    case = make_paged_case([6, 17], 4, 2, d_head=8, block_size=4, seed=2)
    case.q.mul_(300.0)  # scores in the thousands: exp() without the max subtracted overflows
    got = paged_attention_decode(case.q, case.k_cache, case.v_cache, case.block_tables,
                                 case.context_lens)
    assert_close(got, dense_decode_reference(case), atol=1e-4, rtol=1e-4,
                 what="paged_attention_decode with scores in the thousands", reference=REFERENCE)


def test_write_kv_rejects_slots_outside_the_cache():
    k_cache = torch.zeros(2, 2, 1, 3)
    v_cache = torch.zeros_like(k_cache)
    k = torch.ones(1, 1, 3)
    for bad in (-1, 4):  # -1 would silently wrap around to the last slot
        with pytest.raises(IndexError):
            write_kv(k_cache, v_cache, k, k, torch.tensor([bad]))
    assert not k_cache.any() and not v_cache.any(), "a rejected write must write nothing"

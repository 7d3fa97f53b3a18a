"""Lesson 10, part 3: split-KV decode. Run: pytest exercises/lesson10"""

import pytest
import torch
import torch.nn.functional as F

from course.counting import AllocationCounter, count_ops
from course.testing import assert_close
from exercises.lesson10.flash_decoding import split_kv_decode

REFERENCE = "SDPA over each sequence's valid keys"


def reference(q, k, v, lengths=None):
    if lengths is None:
        return F.scaled_dot_product_attention(q, k, v)
    out = torch.zeros_like(q)
    for b, n in enumerate(lengths.tolist()):
        if n:
            out[b] = F.scaled_dot_product_attention(q[b], k[b, :, :n], v[b, :, :n])
    return out


def qkv(batch, heads, S, d_head=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, heads, 1, d_head, generator=g),
            torch.randn(batch, heads, S, d_head, generator=g),
            torch.randn(batch, heads, S, d_head, generator=g))


@pytest.mark.parametrize("n_splits", [1, 2, 3, 10, 13], ids=lambda n: f"{n}-splits")
def test_equals_sdpa_for_any_split_count(n_splits):
    q, k, v = qkv(2, 3, 10)  # 13 splits: more splits than keys, 3 of them empty
    assert_close(split_kv_decode(q, k, v, n_splits), reference(q, k, v), atol=1e-5, rtol=1e-5,
                 what=f"split_kv_decode(n_splits={n_splits})", reference=REFERENCE)


def test_sequences_of_different_lengths():
    q, k, v = qkv(4, 2, 12, seed=1)
    lengths = torch.tensor([12, 5, 1, 0])  # the last one is an empty slot: zeros, not NaN
    got = split_kv_decode(q, k, v, 4, lengths)
    assert_close(got, reference(q, k, v, lengths), atol=1e-5, rtol=1e-5,
                 what="split_kv_decode with lengths [12, 5, 1, 0]", reference=REFERENCE)
    with pytest.raises(ValueError, match="lengths"):
        split_kv_decode(q, k, v, 4, torch.tensor([12, 5, 13, 0]))  # past the 12 positions
    with pytest.raises(ValueError, match="one query token"):
        split_kv_decode(k[:, :, :2], k, v, 4)


def test_no_copy_of_the_cache_and_no_loop_over_chunks():
    q, k, v = qkv(2, 3, 64, d_head=32)
    with AllocationCounter() as counter:
        split_kv_decode(q, k, v, 4)
    assert counter.total_bytes < k.nbytes, (
        f"split_kv_decode allocated {counter.total_bytes:,} B in total; K alone is "
        f"{k.nbytes:,} B. View K and V as chunks, do not pad or copy them.\n{counter.report()}")
    q2, k2, v2 = qkv(2, 3, 256, d_head=32)
    short, long = count_ops(lambda: split_kv_decode(q, k, v, 4)), \
        count_ops(lambda: split_kv_decode(q2, k2, v2, 16))
    assert short == long, (
        f"split_kv_decode issued {short} torch ops for 64 keys in 4 splits and {long} for 256 "
        "keys in 16 splits: a Python loop over the splits or keys. Compute all chunks at once.")

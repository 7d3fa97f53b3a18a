"""Hidden grader, lesson 10: split-KV decode, any split count and lengths, and its cost.

The reference is torch's SDPA run on each sequence's valid keys alone (zeros for a sequence of
length 0), independent of the code under test. Cost is counted: bytes allocated
(course.counting.AllocationCounter) and torch ops issued (course.counting.count_ops).
"""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import example, given, settings
from hypothesis import strategies as st

from course.counting import AllocationCounter, count_ops
from course.testing import assert_close
from exercises.lesson10.flash_decoding import split_kv_decode

REFERENCE = "SDPA over each sequence's valid keys"


def reference(q, k, v, lengths=None, scale=None):
    if lengths is None:
        lengths = torch.full((q.shape[0],), k.shape[2])
    out = torch.zeros(q.shape, dtype=torch.float32)
    for b, n in enumerate(lengths.tolist()):
        if n:
            out[b] = F.scaled_dot_product_attention(q[b].float(), k[b, :, :n].float(),
                                                    v[b, :, :n].float(), scale=scale)
    return out.to(q.dtype)


def qkv(batch, heads, S, d_head, seed, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, heads, 1, d_head, generator=g).to(dtype),
            torch.randn(batch, heads, S, d_head, generator=g).to(dtype),
            torch.randn(batch, heads, S, d_head, generator=g).to(dtype))


@pytest.mark.points(4)
@settings(max_examples=40)
@example(batch=1, heads=1, S=5, d_head=4, n_splits=9, fractions=None, seed=0)
@example(batch=3, heads=2, S=10, d_head=4, n_splits=3, fractions=[1.0, 0.3, 0.0], seed=1)
@example(batch=2, heads=1, S=8, d_head=2, n_splits=4, fractions=[0.25, 1.0], seed=2)
@example(batch=2, heads=2, S=7, d_head=4, n_splits=2, fractions=[0.5, 1.0], seed=3)
@given(batch=st.integers(1, 3), heads=st.integers(1, 3), S=st.integers(1, 24),
       d_head=st.sampled_from([1, 4, 8]), n_splits=st.integers(1, 30),
       fractions=st.none() | st.lists(st.floats(0, 1), min_size=3, max_size=3),
       seed=st.integers(0, 2**16))
def test_equals_sdpa_for_any_splits_and_lengths(batch, heads, S, d_head, n_splits, fractions,
                                               seed):
    """Bugs: NaN from an empty chunk (more splits than keys, or a chunk past a short
    sequence: ``exp(-inf - (-inf))``); the shorter last chunk dropped; chunk outputs summed
    without their weights ``exp(m - M)``; one maximum over the whole batch; the length of
    sequence 0 used for all; the key at position ``lengths[b] - 1`` dropped (``>`` for ``>=``);
    a sequence of length 0 that gives NaN instead of zeros."""
    q, k, v = qkv(batch, heads, S, d_head, seed)
    lengths = None
    if fractions is not None:
        lengths = torch.tensor([round(f * S) for f in fractions[:batch]])
    got = split_kv_decode(q, k, v, n_splits, lengths)
    shown = None if lengths is None else lengths.tolist()
    assert_close(got, reference(q, k, v, lengths), atol=2e-5, rtol=2e-5,
                 what=f"split_kv_decode(S={S}, n_splits={n_splits}, lengths={shown})",
                 reference=REFERENCE)


@pytest.mark.points(2)
def test_extreme_scores_rows_that_differ_and_scale():
    """Bugs: one maximum over the batch or over all heads (sequences whose scores are thousands
    apart underflow); ``exp`` without the chunk's maximum (overflow with scale 1e4);
    ``scale`` ignored; scale 0 taken for the default."""
    q, k, v = qkv(3, 2, 12, 4, seed=4)
    lengths = torch.tensor([12, 7, 3])
    for scale in (1e4, -1e4, 0.3, 0.0):
        assert_close(split_kv_decode(q, k, v, 5, lengths, scale=scale),
                     reference(q, k, v, lengths, scale=scale), atol=1e-4, rtol=1e-4,
                     what=f"split_kv_decode(scale={scale})", reference=REFERENCE)
    q2, k2 = q.clone(), k.clone()
    q2[..., 0] = torch.tensor([30.0, -30.0, 1.0]).view(3, 1, 1)
    k2[..., 0] = 100.0
    assert_close(split_kv_decode(q2, k2, v, 4, lengths, scale=1.0),
                 reference(q2, k2, v, lengths, scale=1.0), atol=1e-3, rtol=1e-3,
                 what="split_kv_decode with sequences whose scores are 6000 apart",
                 reference=REFERENCE)


@pytest.mark.points(1)
def test_bfloat16_stays_bfloat16():
    """Bug: a float32 result for a bf16 cache (the output keeps q's dtype)."""
    q, k, v = qkv(2, 2, 16, 8, seed=5, dtype=torch.bfloat16)
    assert_close(split_kv_decode(q, k, v, 3, torch.tensor([16, 9])),
                 reference(q, k, v, torch.tensor([16, 9])), atol=2e-2, rtol=2e-2,
                 what="split_kv_decode in bfloat16", reference=REFERENCE)


@pytest.mark.points(2)
@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
def test_no_copy_of_the_cache_and_no_loop(with_lengths):
    """Bugs: K and V padded (or concatenated with zeros) to a multiple of the chunk, or
    converted to float32, or copied into a split layout: the whole cache copied at every step;
    a Python loop over the chunks or the keys (more torch ops as the context grows)."""
    q, k, v = qkv(2, 3, 96, 32, seed=6)
    lengths = torch.tensor([96, 40]) if with_lengths else None
    with AllocationCounter() as counter:
        split_kv_decode(q, k, v, 6, lengths)
    assert counter.total_bytes < k.nbytes, (
        f"split_kv_decode allocated {counter.total_bytes:,} B in total; K alone is "
        f"{k.nbytes:,} B. View K and V as chunks; do not pad, convert or copy them.\n"
        f"{counter.report()}")
    q2, k2, v2 = qkv(2, 3, 480, 32, seed=7)
    lengths2 = torch.tensor([480, 200]) if with_lengths else None
    few = count_ops(lambda: split_kv_decode(q, k, v, 6, lengths))
    many = count_ops(lambda: split_kv_decode(q2, k2, v2, 24, lengths2))
    assert few == many, (
        f"split_kv_decode issued {few} torch ops for 96 keys in 6 splits and {many} for 480 "
        "keys in 24 splits: a Python loop over the splits or the keys. Compute every chunk's "
        "state at once and merge them at once.")


@pytest.mark.points(1)
@pytest.mark.parametrize("S,n_splits,chunks", [(96, 6, 6), (90, 4, 4), (5, 8, 5)],
                         ids=["even", "shorter-last", "more-splits-than-keys"])
def test_every_chunk_has_its_own_state(S, n_splits, chunks):
    """Bug: ``n_splits`` ignored: plain attention over all keys at once (right numbers, but
    not split-KV decode: at batch 1 it leaves the GPU's SMs idle). The float32 partial outputs
    of the non-empty chunks, batch x heads x chunks x d_head numbers, must be computed."""
    batch, heads, d_head = 2, 3, 32
    q, k, v = qkv(batch, heads, S, d_head, seed=8)
    with AllocationCounter() as counter:
        split_kv_decode(q, k, v, n_splits)
    want = batch * heads * chunks * d_head
    found = [a for a in counter.log if a.dtype == torch.float32 and
             torch.Size(a.shape).numel() == want]
    assert found, (
        f"split_kv_decode(S={S}, n_splits={n_splits}) never held the partial outputs of its "
        f"{chunks} non-empty chunks ({want} float32 numbers, [batch, heads, chunks, d_head]): "
        f"compute one state per chunk and merge them.\n{counter.report()}")

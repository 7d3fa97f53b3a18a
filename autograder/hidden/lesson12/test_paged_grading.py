"""Hidden grader, lesson 12: paged decode attention - correctness under any layout, and cost.

Correctness is checked against dense SDPA over each sequence's own tokens (K/V heads
expanded with repeat_interleave: an independent path). Every slot that no sequence owns
holds large garbage, so reading past ``context_lens`` shows.
"""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from course.counting import AllocationCounter, count_ops
from course.paged import dense_decode_reference, make_paged_case
from course.testing import assert_close
from exercises.lesson12.paged_attention import paged_attention_decode, write_kv

REFERENCE = "dense SDPA over each sequence's own tokens"


def run(case, **kw):
    return paged_attention_decode(case.q, case.k_cache, case.v_cache, case.block_tables,
                                  case.context_lens, **kw)


@pytest.mark.points(4)
@given(lengths=st.lists(st.integers(0, 70), min_size=1, max_size=5),
       block_size=st.integers(1, 32), heads=st.sampled_from([(4, 4), (8, 2), (9, 3), (6, 1)]),
       spare=st.integers(0, 6), seed=st.integers(0, 2**20))
def test_paged_equals_dense_any_layout(lengths, block_size, heads, spare, seed):
    """Bugs: ignoring context_lens (attending to garbage past the end), indexing the cache
    by logical instead of physical block, a wrong GQA head mapping (h % n_kv instead of
    h // group), an off-by-one at block boundaries, NaN for an empty sequence."""
    case = make_paged_case(lengths, *heads, d_head=8, block_size=block_size,
                           spare_blocks=spare, seed=seed)
    assert_close(run(case), dense_decode_reference(case), atol=2e-5, rtol=2e-5,
                 what=f"paged decode, lengths {lengths}, block_size {block_size}, "
                      f"heads {heads}", reference=REFERENCE)


@pytest.mark.points(1)
def test_bfloat16_inputs_give_bfloat16_close_to_dense():
    """Bug: returning float32 for bf16 inputs, or accumulating the softmax in bf16."""
    case = make_paged_case([33, 200, 7], 8, 2, d_head=64, block_size=16,
                           dtype=torch.bfloat16, seed=3)
    got = run(case)
    assert_close(got, dense_decode_reference(case), atol=2e-2, rtol=2e-2,
                 what="paged decode in bfloat16", reference=REFERENCE)


@pytest.mark.points(1)
def test_block_table_padding_is_never_read():
    """Bug: reading every entry of block_tables (padding rows point at block 0, which here
    belongs to another sequence)."""
    case = make_paged_case([3, 40], 4, 2, d_head=8, block_size=4, seed=5)
    case.block_tables[0, 1:] = case.block_tables[1, 0]  # pad with someone else's block
    assert_close(run(case), dense_decode_reference(case), atol=2e-5, rtol=2e-5,
                 what="paged decode with padding entries that point at a used block",
                 reference=REFERENCE)


@pytest.mark.points(2)
def test_never_copies_the_whole_cache():
    """Bug: flattening or permuting the whole cache into a contiguous tensor (.contiguous(),
    .permute().reshape(), torch.cat of every block) - the memory of a serving engine's KV
    pool, copied on every decode step. Reading the blocks the batch uses is fine."""
    case = make_paged_case([20, 9, 31], 8, 2, d_head=16, block_size=4, spare_blocks=400)
    cache_bytes = case.k_cache.nbytes + case.v_cache.nbytes
    with AllocationCounter() as counter:
        run(case)
    assert counter.total_bytes < cache_bytes / 4, (
        f"one decode step allocated {counter.total_bytes:,} B; the whole K and V cache is "
        f"{cache_bytes:,} B but the batch uses under a tenth of it. Read only the blocks in "
        f"block_tables.\n{counter.report()}")


@pytest.mark.points(2)
def test_work_does_not_loop_over_tokens():
    """Bug: a Python loop over tokens or over blocks (the spec's loop, copied): the number
    of torch ops grows with context length. Vectorised code issues the same ops at any length."""
    short = make_paged_case([8, 8], 4, 2, d_head=8, block_size=4, seed=1)
    long = make_paged_case([64, 64], 4, 2, d_head=8, block_size=4, seed=1)
    n_short, n_long = count_ops(lambda: run(short)), count_ops(lambda: run(long))
    assert n_long <= n_short + 2, (
        f"{n_short} torch ops at 8 tokens per sequence but {n_long} at 64: the work loops over "
        "tokens or blocks in Python. Gather all blocks with one indexing op instead.")


@pytest.mark.points(1)
def test_write_kv_then_attend_roundtrip():
    """Bug: write_kv that writes [block, offset] transposed, or to slot // block_size."""
    torch.manual_seed(0)
    num_blocks, block_size, n_kv, d = 6, 4, 2, 8
    k_cache = torch.zeros(num_blocks, block_size, n_kv, d)
    v_cache = torch.zeros_like(k_cache)
    order = torch.randperm(num_blocks)[:3]
    n = 10
    slots = torch.tensor([int(order[i // block_size]) * block_size + i % block_size
                          for i in range(n)])
    k, v = torch.randn(n, n_kv, d), torch.randn(n, n_kv, d)
    write_kv(k_cache, v_cache, k, v, slots)
    for i in range(n):
        blk, off = int(order[i // block_size]), i % block_size
        assert torch.equal(k_cache[blk, off], k[i]) and torch.equal(v_cache[blk, off], v[i]), \
            f"token {i} (slot {int(slots[i])}) is not at block {blk}, offset {off}"


@pytest.mark.points(1)
@pytest.mark.parametrize("scale", [0.05, 1.7])
def test_non_default_scale_is_used(scale):
    """Bug: ``scale=`` accepted but never passed on (the softmax always uses 1/sqrt(d_head));
    every test that leaves scale at its default passes."""
    case = make_paged_case([5, 19, 2], 8, 2, d_head=16, block_size=4, seed=11)
    assert_close(run(case, scale=scale), dense_decode_reference(case, scale=scale), atol=2e-5,
                 rtol=2e-5, what=f"paged decode with scale={scale}", reference=REFERENCE)


@pytest.mark.points(1)
def test_logits_in_the_thousands_stay_finite():
    """Bug: a hand-written softmax, exp(scores) / sum(exp(scores)), without subtracting the
    row's maximum first: with scores in the thousands exp overflows to inf and the output is
    NaN. Legal inputs: large activations, or a large scale."""
    case = make_paged_case([9, 30, 1], 4, 2, d_head=8, block_size=4, seed=12)
    case.q.mul_(300.0)
    assert_close(run(case), dense_decode_reference(case), atol=1e-4, rtol=1e-4,
                 what="paged decode with scores in the thousands", reference=REFERENCE)


@pytest.mark.points(1)
def test_write_kv_rejects_slots_outside_the_cache():
    """Bug: no range check: a negative slot wraps around to the end of the cache and
    silently overwrites another sequence's token (torch indexing accepts -1). The docstring
    promises IndexError and nothing written."""
    k_cache = torch.zeros(3, 4, 2, 8)
    v_cache = torch.zeros_like(k_cache)
    k = torch.ones(2, 2, 8)
    for slots in ([0, -1], [11, 12], [-12, 3]):
        with pytest.raises(IndexError):
            write_kv(k_cache, v_cache, k, k, torch.tensor(slots))
        assert not k_cache.any() and not v_cache.any(), \
            f"write_kv with slots {slots} raised but had already written into the cache"
    write_kv(k_cache, v_cache, k, k, torch.tensor([0, 11]))  # both ends are legal
    assert k_cache[0, 0].eq(1).all() and k_cache[2, 3].eq(1).all()


@pytest.mark.points(1)
def test_write_kv_chunk_that_crosses_blocks():
    """Bug: writing a chunk of new tokens to consecutive slots from the first one
    (``cache[slots[0]:slots[0] + n]``): right for one token, or a chunk inside one block,
    wrong when the chunk's blocks are not adjacent in the cache."""
    k_cache = torch.zeros(5, 2, 1, 4)
    v_cache = torch.zeros_like(k_cache)
    slots = torch.tensor([7, 2, 3, 8])  # block 3 offset 1, block 1 (both), block 4 offset 0
    k = torch.arange(16.0).view(4, 1, 4) + 1
    write_kv(k_cache, v_cache, k, -k, slots)
    flat_k, flat_v = k_cache.view(10, 1, 4), v_cache.view(10, 1, 4)
    for i, s in enumerate(slots.tolist()):
        assert torch.equal(flat_k[s], k[i]) and torch.equal(flat_v[s], -k[i]), \
            f"token {i} of the chunk is not at slot {s}"
    assert int((k_cache != 0).sum()) == 16, "write_kv must touch only the given slots"

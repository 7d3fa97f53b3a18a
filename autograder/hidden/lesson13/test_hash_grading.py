"""Hidden grader, lesson 13: the chained block hash, the hash-table cache, and the
last-token rule."""

import hashlib
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exercises.lesson13.block_hash import (HashPrefixCache, InvalidBlock, OutOfBlocks,
                                           block_hash, hash_blocks)
from exercises.lesson13.radix_cache import tokens_to_compute


def sha(parent, tokens):
    data = (parent or 0).to_bytes(32, "big") + b"".join(t.to_bytes(4, "big") for t in tokens)
    return int.from_bytes(hashlib.sha256(data).digest(), "big")


@pytest.mark.points(2)
@given(parent=st.one_of(st.none(), st.integers(0, 2**256 - 1)),
       tokens=st.lists(st.one_of(st.integers(0, 300), st.just(2**32 - 1), st.integers(0, 2**32 - 1)),
                       max_size=8))
def test_block_hash_is_the_documented_sha256(parent, tokens):
    """Bug: Python's hash() (salted per process: two workers of one engine disagree), token
    ids packed in 2 bytes (Llama-3's vocabulary has 128,256 ids), the parent left out."""
    assert block_hash(parent, tokens) == sha(parent, tokens), \
        f"block_hash({parent}, {tokens}) is not sha256(parent as 32 bytes + tokens as 4 bytes each)"


@pytest.mark.points(2)
def test_equal_blocks_under_different_parents_get_different_keys():
    """Bug: a key from the block's own tokens only, so block [7, 7] after [1, 2] and after
    [3, 4] share a key and a prompt reuses KV computed under another prefix."""
    assert block_hash(1, [7, 7]) != block_hash(2, [7, 7])
    a, b = hash_blocks([1, 2, 7, 7], 2), hash_blocks([3, 4, 7, 7], 2)
    assert a[1] != b[1]
    assert a == [sha(None, [1, 2]), sha(sha(None, [1, 2]), [7, 7])]
    assert hash_blocks([], 4) == [] and hash_blocks([0, 0, 0], 4) == []
    c = HashPrefixCache(num_blocks=16, block_size=2)
    c.allocate([1, 2, 7, 7, 0])     # caches [1, 2] and [1, 2, 7, 7]
    table, _ = c.allocate([3, 4, 7, 7, 0])
    table2, cached = c.allocate([3, 4, 7, 7, 0])
    assert cached == 4 and table2[:2] == table[:2]
    c3, cached3 = c.allocate([5, 6, 7, 7, 0])
    assert cached3 == 0, "nothing cached starts with [5, 6]"


def replay_with_contents(seed, num_blocks, block_size, steps):
    """Random allocate / free, tracking what each block holds: the prompt prefix up to the
    end of the block. A block reused as a hit must hold exactly the prefix it stands for."""
    rng = random.Random(seed)
    c = HashPrefixCache(num_blocks, block_size)
    holds: dict[int, tuple] = {}
    running: list[list[int]] = []
    prefixes = [[rng.randrange(3) for _ in range(rng.randint(0, 6))] for _ in range(4)]
    for step in range(steps):
        if running and (rng.random() < 0.45 or c.num_free < 4):
            c.free(running.pop(rng.randrange(len(running))))
            continue
        prompt = rng.choice(prefixes) + [rng.randrange(3) for _ in range(rng.randint(1, 6))]
        need_max = -(-len(prompt) // block_size)
        try:
            table, cached = c.allocate(prompt)
        except OutOfBlocks:
            assert c.num_free < need_max, f"OutOfBlocks with {c.num_free} free for {need_max} blocks"
            continue
        assert len(table) == need_max and len(set(table)) == len(table)
        assert cached % block_size == 0 and cached <= len(prompt) - 1
        for i in range(cached // block_size):
            want = tuple(prompt[:(i + 1) * block_size])
            assert holds.get(table[i]) == want, \
                f"step {step}: prompt {prompt} reused block {table[i]} at position {i}, which " \
                f"holds the KV of {holds.get(table[i])}, not of {want} (a stale or wrong entry)"
        for i in range(cached // block_size, len(table)):
            holds[table[i]] = tuple(prompt[:(i + 1) * block_size])
        running.append(table)
    return c


@pytest.mark.points(4)
@pytest.mark.parametrize("block_size", [1, 2, 3])
def test_hits_hold_the_right_kv_after_blocks_are_reused(block_size):
    """Bug: the dangling-entry bug: a freed block handed out again keeps its old key in the
    table, and a later prompt with the old prefix gets a block now holding other tokens.
    Also: a hit run that does not stop at the first missing key; a hit block left in the
    free queue (handed out twice)."""
    for seed in range(3):
        replay_with_contents(seed, num_blocks=10, block_size=block_size, steps=150)


@pytest.mark.points(1)
def test_hit_blocks_leave_the_free_queue_and_count():
    """Bug: a cached block taken as a hit is not removed from the free queue (the next
    allocation hands it out again) or its reference is not counted."""
    c = HashPrefixCache(num_blocks=4, block_size=1)
    t1, _ = c.allocate([5, 6, 7])
    c.free(t1)
    t2, cached = c.allocate([5, 6, 8])
    assert cached == 2 and c.num_free == 1
    t3, _ = c.allocate([5, 9])
    assert t3[0] == t2[0] and c.ref_count(t2[0]) == 2
    assert t3[1] not in t2, "a block in use was handed out again"


@pytest.mark.points(1)
def test_freed_tail_blocks_are_reused_first():
    """Bug: freeing a table front to back, so a prompt's first blocks (the most shareable)
    are overwritten before its last ones."""
    c = HashPrefixCache(num_blocks=3, block_size=1)
    table, _ = c.allocate([1, 2, 3])
    c.free(table)
    new, cached = c.allocate([9])
    assert cached == 0 and new == [table[2]], f"the last block of the freed table goes first; got {new}"
    assert c.lookup([1, 2, 3]) == table[:2]


@pytest.mark.points(1)
def test_refused_calls_change_nothing():
    """Bug: allocate that takes the hit blocks (or pops some new ones) before finding that
    too few are free; free of a list with a bad id that frees part of it."""
    c = HashPrefixCache(num_blocks=4, block_size=1)
    t, _ = c.allocate([1, 2])
    c.free(t)
    held, _ = c.allocate([1, 2, 3])     # holds 3 blocks, one free
    before = (c.num_free, [c.ref_count(b) for b in range(4)], c.lookup([1, 2, 3]))
    with pytest.raises(OutOfBlocks):
        c.allocate([1, 7, 7])
    for bad in ([held[0], 99], [held[0], held[0]], [t for t in range(4) if t not in held]):
        with pytest.raises(InvalidBlock):
            c.free(bad)
    assert (c.num_free, [c.ref_count(b) for b in range(4)], c.lookup([1, 2, 3])) == before
    with pytest.raises(ValueError):
        c.allocate([])


@pytest.mark.points(2)
@given(block_size=st.integers(1, 16), blocks=st.integers(0, 8), extra=st.integers(0, 16))
def test_tokens_to_compute_keeps_the_last_token(block_size, blocks, extra):
    """Bug: a full-prefix hit that leaves zero tokens to compute (no logits for the first
    output token), or a reuse that is not a whole number of blocks."""
    n = blocks * block_size + extra
    if n == 0:
        return
    for k in range(0, n + 1, block_size):
        compute = tokens_to_compute(n, k, block_size)
        reuse = n - compute
        assert compute >= 1, f"prompt {n}, hit {k}, block {block_size}: computes {compute} tokens"
        assert reuse % block_size == 0 and reuse <= k, \
            f"prompt {n}, hit {k}, block {block_size}: reuses {reuse} tokens"
        assert reuse == min(k, (n - 1) // block_size * block_size), \
            f"prompt {n}, hit {k}, block {block_size}: reuses {reuse}, a block could be kept"


@pytest.mark.points(1)
def test_tokens_to_compute_tiny_prompts_and_bad_input():
    """Bug: a one-token prompt, or a prompt of exactly one cached block, left with nothing
    to compute; bad input (a hit longer than the prompt, or inside a block) accepted."""
    assert tokens_to_compute(1, 0, 4) == 1
    assert tokens_to_compute(4, 4, 4) == 4, "one full cached block: it must be recomputed"
    assert tokens_to_compute(5, 4, 4) == 1
    assert tokens_to_compute(1, 0, 1) == 1 and tokens_to_compute(2, 2, 1) == 1
    for args in [(0, 0, 4), (8, 12, 4), (8, 3, 4), (8, -4, 4)]:
        with pytest.raises(ValueError):
            tokens_to_compute(*args)

"""Lesson 13, part 1: the radix cache. Run: pytest exercises/lesson13"""

import random

import pytest

from exercises.lesson13.radix_cache import RadixCache, RadixError, tokens_to_compute


def oracle_match(inserted: list[list[int]], tokens: list[int], block_size: int) -> int:
    """Brute force: the longest common prefix with any inserted sequence, in whole blocks."""
    best = 0
    for seq in inserted:
        n = 0
        while n < min(len(seq), len(tokens)) and seq[n] == tokens[n]:
            n += 1
        best = max(best, n // block_size * block_size)
    return best


def test_insert_then_match_whole_blocks_only():
    c = RadixCache(block_size=4)
    assert c.insert(list(range(10)), [7, 8]) == [], "nothing was cached before"
    m = c.match_prefix(list(range(10)))
    assert (m.num_tokens, m.blocks) == (8, (7, 8)), \
        f"10 tokens, block size 4: 2 full blocks cached; got {m}"
    m = c.match_prefix([0, 1, 2, 3, 4, 5, 99, 7])
    assert (m.num_tokens, m.blocks) == (4, (7,)), f"diverges inside block 2; got {m}"
    assert c.match_prefix([5, 6, 7, 8]).num_tokens == 0


def test_shared_prefix_is_stored_once_and_duplicates_are_returned():
    c = RadixCache(block_size=2)
    c.insert([1, 2, 3, 4, 5, 6], [0, 1, 2])
    dup = c.insert([1, 2, 3, 4, 9, 9], [10, 11, 12])
    assert dup == [10, 11], f"blocks 10 and 11 repeat cached blocks 0 and 1; got {dup}"
    assert c.num_blocks == 4, f"cached blocks {sorted(c.cached_blocks())}, expected 0, 1, 2, 12"
    assert c.match_prefix([1, 2, 3, 4, 9, 9]).blocks == (0, 1, 12)
    assert c.match_prefix([1, 2, 3, 4, 5, 6]).blocks == (0, 1, 2)


def test_matches_a_brute_force_oracle():
    rng = random.Random(13)
    for block_size in (1, 2, 3):
        c, inserted, next_block = RadixCache(block_size), [], 0
        for _ in range(40):
            base = rng.choice(inserted) if inserted and rng.random() < 0.7 else []
            seq = base[:rng.randint(0, len(base))] + [rng.randint(0, 3) for _ in range(rng.randint(0, 7))]
            expected = oracle_match(inserted, seq, block_size)
            got = c.match_prefix(seq)
            assert got.num_tokens == expected, \
                f"block size {block_size}, prompt {seq}: matched {got.num_tokens} tokens, " \
                f"the brute-force oracle says {expected}"
            n_full = len(seq) // block_size
            blocks = list(got.blocks) + list(range(next_block, next_block + n_full - len(got.blocks)))
            next_block += n_full
            c.insert(seq, blocks)
            inserted.append(seq)


def test_evict_takes_least_recently_used_leaf_tail_first():
    c = RadixCache(block_size=1)
    c.insert([1, 2, 3], [0, 1, 2])
    c.insert([1, 5], [0, 5])
    c.match_prefix([1, 2, 3])           # [1, 2, 3] used last: [1, 5]'s leaf is older
    assert c.evict(1) == [5]
    assert c.evict(2) == [2, 1], "then the other leaf, from its end"
    assert c.evict(5) == [0], "only one block left to give"


def test_referenced_blocks_are_never_evicted():
    c = RadixCache(block_size=1)
    c.insert([1, 2, 3, 4], [0, 1, 2, 3])
    assert c.reference([1, 2]) == 2
    assert c.evict(10) == [3, 2], "blocks 0 and 1 are held by a running sequence"
    c.release([1, 2])
    assert sorted(c.evict(10)) == [0, 1]
    with pytest.raises(RadixError):
        c.release([1, 2])  # not cached any more


def test_last_token_is_always_computed():
    assert tokens_to_compute(33, 32, 16) == 1
    assert tokens_to_compute(32, 32, 16) == 16, \
        "a full hit must still compute the last token; reuse is in whole blocks"
    assert tokens_to_compute(40, 0, 16) == 40
    with pytest.raises(ValueError):
        tokens_to_compute(0, 0, 16)

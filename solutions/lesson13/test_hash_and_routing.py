"""Lesson 13, part 2: chained block hashes, the hash-table cache, and routing.
Run: pytest exercises/lesson13"""

import hashlib

import pytest

from exercises.lesson13.block_hash import HashPrefixCache, block_hash, hash_blocks
from exercises.lesson13.routing import Replica, route


def test_block_hash_is_the_documented_sha256():
    expected = int.from_bytes(hashlib.sha256(bytes(32) + bytes([0, 0, 0, 1, 0, 0, 1, 0]))
                              .digest(), "big")
    assert block_hash(None, [1, 256]) == expected


def test_the_same_block_under_different_parents_differs():
    a, b = hash_blocks([1, 2, 7, 7], 2), hash_blocks([3, 4, 7, 7], 2)
    assert len(a) == 2 and a[1] != b[1], "block [7, 7] follows different prefixes"
    assert hash_blocks([1, 2, 7], 2) == a[:1], "a partial block has no key"


def test_freed_blocks_stay_cached_until_reused():
    c = HashPrefixCache(num_blocks=3, block_size=2)
    table, cached = c.allocate([1, 2, 3, 4, 5])
    assert (len(table), cached) == (3, 0)
    c.free(table)
    table2, cached2 = c.allocate([1, 2, 3, 4, 5])
    assert cached2 == 4 and table2[:2] == table[:2], \
        f"the first two blocks were freed but still cached; got {table2}, {cached2} cached"


def test_a_full_hit_still_computes_the_last_block():
    c = HashPrefixCache(num_blocks=8, block_size=2)
    table, _ = c.allocate([1, 2, 3, 4])
    c.free(table)
    _, cached = c.allocate([1, 2, 3, 4])
    assert cached == 2, f"4 tokens fully cached: reuse 2, compute the last block; got {cached}"


class FakeCache:
    def __init__(self, hit):
        self.hit = hit

    def match_prefix(self, tokens, touch=True):
        class M:
            num_tokens = min(self.hit, len(tokens))
        return M()


def test_route_prefers_the_hit_within_the_load_bound():
    reps = [Replica(FakeCache(0), load=0), Replica(FakeCache(64), load=5),
            Replica(FakeCache(32), load=1)]
    assert route(list(range(100)), reps, max_load_gap=8) == 1
    assert route(list(range(100)), reps, max_load_gap=4) == 2, "replica 1 is 5 over the least loaded"
    cold = [Replica(FakeCache(0), load=3), Replica(FakeCache(0), load=2)]
    assert route([1, 2], cold) == 1, "no hit anywhere: the least loaded"
    with pytest.raises(ValueError):
        route([1], [])

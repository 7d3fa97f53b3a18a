"""Hidden grader, lesson 13: the radix cache's order of eviction, its edges, bad input, and
a multi-turn chat trace."""

import random

import pytest

from exercises.lesson13.radix_cache import RadixCache, RadixError, tokens_to_compute


@pytest.mark.points(2)
def test_lru_order_follows_matches_but_not_peeks():
    """Bug: evicting the most recently used leaf; a match that does not refresh its path;
    a peek (touch=False, as a router probes) that refreshes it and so keeps a prefix alive
    that no request used."""
    c = RadixCache(block_size=1)
    c.insert([1, 1], [0, 1])
    c.insert([2, 2], [2, 3])
    c.insert([3, 3], [4, 5])
    c.match_prefix([1, 1])                 # order of use now: [2, 2], [3, 3], [1, 1]
    c.match_prefix([2, 2], touch=False)    # a peek changes nothing
    assert c.evict(2) == [3, 2], "[2, 2] is the least recently used; a peek is not a use"
    assert c.evict(2) == [5, 4]
    assert c.evict(2) == [1, 0]


@pytest.mark.points(1)
def test_a_parent_becomes_a_leaf_within_one_evict():
    """Bug: evict that collects the leaves once and stops, so the parents they leave behind
    (now leaves) are never considered in the same call."""
    c = RadixCache(block_size=2)
    c.insert([0, 0, 1, 1], [0, 1])
    c.insert([0, 0, 2, 2], [0, 2])
    assert sorted(c.evict(3)) == [0, 1, 2] and c.num_blocks == 0
    assert c.match_prefix([0, 0]).num_tokens == 0


@pytest.mark.points(1)
def test_evict_zero_negative_and_empty():
    """Bug: evict on an empty cache (or asked for more than it holds) that crashes instead
    of returning what it could free; evict(0) that frees a block anyway; evict(-1) accepted."""
    assert RadixCache(block_size=4).evict(3) == []
    c = RadixCache(block_size=1)
    c.insert([0, 1], [0, 1])
    assert c.evict(0) == [] and c.num_blocks == 2
    with pytest.raises(ValueError):
        c.evict(-1)
    assert sorted(c.evict(5)) == [0, 1] and c.evict(1) == []


@pytest.mark.points(1)
def test_a_match_inside_a_long_edge_returns_only_the_matched_blocks():
    """Bug: a match that ends inside an edge of several blocks returns all of the edge's
    blocks (so the engine would read KV computed for other tokens), or walks on into that
    edge's children from the point where it left the edge."""
    c = RadixCache(block_size=2)
    c.insert([0, 1, 2, 3, 4, 5, 6, 7], [10, 11, 12, 13])
    m = c.match_prefix([0, 1, 2, 3, 9, 9, 6, 7])
    assert (m.num_tokens, m.blocks) == (4, (10, 11)), f"got {m}"
    m = c.match_prefix([0, 1, 2])
    assert (m.num_tokens, m.blocks) == (2, (10,)), f"the odd token is not a block; got {m}"
    d = RadixCache(block_size=1)
    d.insert([1, 2, 3, 4], [0, 1, 2, 3])
    d.insert([1, 2, 3, 4, 9], [0, 1, 2, 3, 4])
    m = d.match_prefix([1, 2, 9])
    assert (m.num_tokens, m.blocks) == (2, (0, 1)), \
        f"[1, 2, 9] leaves the edge [1, 2, 3, 4] after two tokens; the [9] below that edge " \
        f"follows [1, 2, 3, 4], not [1, 2]; got {m}"


@pytest.mark.points(1)
def test_reference_inside_an_edge_protects_only_the_prefix():
    """Bug: reference that marks a whole edge although the sequence holds only its start
    (blocks past the prefix could never be evicted), or that marks nothing at all."""
    c = RadixCache(block_size=1)
    c.insert([5, 6, 7, 8], [0, 1, 2, 3])
    c.reference([5, 6])
    assert [c.ref_count(b) for b in range(4)] == [1, 1, 0, 0]
    assert c.evict(4) == [3, 2]
    c.release([5, 6])
    assert [c.ref_count(b) for b in range(2)] == [0, 0]


@pytest.mark.points(1)
def test_a_split_keeps_reference_counts():
    """Bug: a split whose new upper node starts with no references, so a running
    sequence's first blocks become evictable as soon as another prompt diverges inside
    its edge."""
    c = RadixCache(block_size=1)
    c.insert([5, 6, 7, 8], [0, 1, 2, 3])
    c.reference([5, 6, 7, 8])
    c.insert([5, 6, 9], [0, 1, 4])      # splits the referenced edge after two blocks
    assert [c.ref_count(b) for b in range(5)] == [1, 1, 1, 1, 0]
    assert c.evict(5) == [4], "only the new block is unreferenced"


@pytest.mark.points(1)
def test_insert_hands_back_duplicate_blocks():
    """Bug: insert that keeps (or silently drops) the caller's blocks for a prefix cached
    already: the engine never frees them, and the pool leaks a block per duplicate."""
    c = RadixCache(block_size=2)
    c.insert([1, 2, 3, 4], [0, 1])
    assert c.insert([1, 2, 3, 4, 5, 6], [7, 8, 9]) == [7, 8]
    assert c.insert([1, 2, 3, 4, 5, 6], [0, 1, 9]) == [], "the cache's own blocks are matched"
    assert c.cached_blocks() == {0, 1, 9}


@pytest.mark.points(2)
def test_bad_calls_change_nothing():
    """Bug: insert that checks its block ids one by one while inserting (half an insert
    left behind on error), release of a prefix never referenced that drives a count below
    zero, insert that accepts a block id the cache holds elsewhere (one block, two owners)."""
    c = RadixCache(block_size=2)
    c.insert([1, 2, 3, 4], [0, 1])
    c.reference([1, 2])

    def state():
        return (c.num_blocks, sorted((b, c.ref_count(b)) for b in c.cached_blocks()),
                c.match_prefix([1, 2, 3, 4, 5, 6], touch=False))

    before = state()
    bad = [([1, 2, 9, 9, 8, 8], [0, 5, 1]),   # block 1 is cached at another position
           ([1, 2, 9, 9], [0]),               # too few ids
           ([1, 2, 9, 9], [0, 7, 8]),         # too many ids
           ([5, 5, 6, 6], [4, 4]),            # an id twice
           ([1, -2], [9]), ("ab", [])]        # not token ids
    for tokens, blocks in bad:
        with pytest.raises(RadixError):
            c.insert(tokens, blocks)
        assert state() == before, f"a refused insert({tokens!r}, {blocks}) changed the cache"
    with pytest.raises(RadixError):
        c.release([1, 2, 3, 4])   # [3, 4] was never referenced
    with pytest.raises(RadixError):
        c.reference([1, 2, 7, 7])  # not cached
    assert state() == before, "a refused release or reference changed the cache"


def chat_trace(seed: int, conversations: int = 6, turns: int = 4, system: int = 16):
    """Prompts of a multi-turn chat: a shared system prompt, then each turn's prompt is the
    whole conversation so far plus a new user message (token ids 0..49)."""
    rng = random.Random(seed)
    system_prompt = [rng.randrange(50) for _ in range(system)]
    history = [list(system_prompt) for _ in range(conversations)]
    trace = []
    for _ in range(turns):
        for c in rng.sample(range(conversations), conversations):
            history[c] += [rng.randrange(50) for _ in range(rng.randint(3, 9))]
            trace.append(list(history[c]))
            history[c] += [rng.randrange(50) for _ in range(rng.randint(2, 6))]  # the reply
    return trace, system_prompt


def replay(trace, block_size, capacity):
    """A small engine loop: match, compute the rest into new blocks, insert, and evict when
    the pool of ``capacity`` blocks runs short. Returns the tokens reused per request."""
    c, free, reused = RadixCache(block_size), list(range(capacity)), []
    for prompt in trace:
        hit = c.match_prefix(prompt)
        compute = tokens_to_compute(len(prompt), hit.num_tokens, block_size)
        keep = (len(prompt) - compute) // block_size
        c.reference(prompt[:keep * block_size])
        need = -(-len(prompt) // block_size) - keep
        if need > len(free):
            free += c.evict(need - len(free))
        assert need <= len(free), "the pool is too small for this trace"
        table = list(hit.blocks[:keep]) + [free.pop() for _ in range(need)]
        n_full = len(prompt) // block_size
        free += c.insert(prompt, table[:n_full])
        c.release(prompt[:keep * block_size])
        reused.append(len(prompt) - compute)
        free += table[n_full:]     # the partial last block is not cached
    return reused


@pytest.mark.points(2)
def test_multi_turn_chat_hit_rate():
    """Bug: any lost hit on the workload prefix caching exists for. With room for all, each
    turn reuses the longest earlier prompt it extends (the brute-force oracle, then the
    last-token rule); with a small pool, LRU on leaves keeps the shared system prompt: every
    request after the first still reuses it."""
    bs = 4
    trace, system = chat_trace(seed=13)
    reused = replay(trace, bs, capacity=10_000)
    for i, prompt in enumerate(trace):
        best = 0
        for earlier in trace[:i]:
            n = 0
            while n < min(len(earlier), len(prompt)) and earlier[n] == prompt[n]:
                n += 1
            best = max(best, n // bs * bs)
        expected = len(prompt) - max(len(prompt) - best, len(prompt) - (len(prompt) - 1) // bs * bs)
        assert reused[i] == expected, \
            f"request {i} ({len(prompt)} tokens): reused {reused[i]} tokens, expected {expected}"
    total = sum(len(p) for p in trace)
    assert sum(reused) / total > 0.5, "a chat trace reuses most of its tokens"
    small = replay(trace, bs, capacity=40)
    assert all(r >= len(system) for r in small[1:]), \
        f"with 40 blocks the 4-block system prompt must stay cached; reused per request: {small}"
    assert sum(small) < sum(reused), "a 40-block pool must force evictions in this trace"

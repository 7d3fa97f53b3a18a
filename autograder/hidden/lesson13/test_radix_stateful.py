"""Hidden grader, lesson 13: the radix cache under random sequences of operations.

A hypothesis state machine drives insert / match / reference / release / evict against a
model that knows, for every cached block id, the prompt prefix whose KV it holds (the
tokens up to the end of that block). From that model alone it checks every answer: a
match returns blocks holding exactly the prompt's prefix and is as long as any cached
prefix (the brute-force oracle); evict never returns a block a running sequence holds,
only leaves, and exactly as many as asked when that many are evictable.
"""

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from exercises.lesson13.radix_cache import RadixCache, RadixError

BS = 2
prompts = st.lists(st.integers(0, 2), min_size=0, max_size=9)


class RadixMachine(RuleBasedStateMachine):
    """Bugs this catches: evicting a block a running sequence holds (reference counts lost
    in a split, or ignored); evicting an inner node's block while its children stay (a
    dangling subtree); a match longer than what was cached, or one that returns a block
    holding other tokens; a match shorter than the oracle (a split that loses a child);
    a block id kept twice or leaked; insert that takes a duplicate block instead of
    returning it; evict that frees fewer blocks than asked while some are evictable."""

    def __init__(self):
        super().__init__()
        self.c = RadixCache(BS)
        self.content: dict[int, tuple] = {}  # block id -> the prefix whose KV it holds
        self.held: list[tuple] = []           # full-block prefixes referenced, one per ref
        self.inserted: list[tuple] = [()]     # every prompt inserted so far
        self.next_id = 0

    def full(self, tokens) -> tuple:
        return tuple(tokens[: len(tokens) // BS * BS])

    def oracle(self, tokens) -> int:
        cached = set(self.content.values())
        k = 0
        while (k + 1) * BS <= len(tokens) and tuple(tokens[:(k + 1) * BS]) in cached:
            k += 1
        return k * BS

    def fresh(self, n):
        ids = list(range(self.next_id, self.next_id + n))
        self.next_id += n
        return ids

    def check_match(self, tokens, m):
        assert m.num_tokens == len(m.blocks) * BS, \
            f"match of {tokens}: {m.num_tokens} tokens but {len(m.blocks)} blocks"
        expected = self.oracle(tokens)
        assert m.num_tokens == expected, \
            f"match of {list(tokens)}: {m.num_tokens} tokens, but a prefix of {expected} " \
            f"tokens is cached (brute-force oracle)"
        for i, b in enumerate(m.blocks):
            want = tuple(tokens[:(i + 1) * BS])
            assert self.content.get(b) == want, \
                f"match of {list(tokens)}: block {b} at position {i} holds " \
                f"{self.content.get(b)}, not the prefix {want}"

    @rule(tokens=prompts)
    def match(self, tokens):
        self.check_match(tokens, self.c.match_prefix(tokens))

    def variant(self, data):
        """A prompt that shares a prefix with one inserted before: the shape of real
        traffic, and what makes edges split."""
        base = data.draw(st.sampled_from(self.inserted))
        cut = data.draw(st.integers(0, len(base)))
        return list(base[:cut]) + data.draw(st.lists(st.integers(0, 1), max_size=6))

    @rule(data=st.data())
    def match_a_variant(self, data):
        self.match(self.variant(data))

    @rule(data=st.data(), reuse=st.booleans())
    def insert_a_variant(self, data, reuse):
        self.insert(self.variant(data), reuse)

    @rule(tokens=prompts, reuse=st.booleans())
    def insert(self, tokens, reuse):
        key = self.full(tokens)
        n = len(key) // BS
        hit = self.c.match_prefix(tokens, touch=False) if reuse else None
        blocks = (list(hit.blocks) if reuse else []) + self.fresh(n - (len(hit.blocks) if reuse else 0))
        cached_before = self.oracle(tokens) // BS
        dup = self.c.insert(tokens, blocks)
        expected_dup = [] if reuse else blocks[:cached_before]
        assert sorted(dup) == sorted(expected_dup), \
            f"insert of {list(tokens)} with blocks {blocks}: {cached_before} blocks were " \
            f"cached already, so {expected_dup} must come back; got {dup}"
        self.inserted.append(tuple(tokens))
        for i, b in enumerate(blocks):
            if b not in dup:
                self.content.setdefault(b, key[:(i + 1) * BS])
        m = self.c.match_prefix(tokens)
        assert m.num_tokens == len(key), \
            f"right after insert({list(tokens)}), match_prefix finds {m.num_tokens} of {len(key)} tokens"

    @rule(data=st.data())
    def reference_an_inserted_prefix(self, data):
        tokens = data.draw(st.sampled_from(self.inserted))
        self.reference(tokens[:data.draw(st.integers(0, len(tokens)))])

    @rule(tokens=prompts)
    def reference(self, tokens):
        key = self.full(tokens)
        if self.oracle(key) < len(key):
            before = self.snapshot()
            with pytest.raises(RadixError):
                self.c.reference(tokens)
            assert self.snapshot() == before, "a refused reference changed the cache"
            return
        assert self.c.reference(tokens) == len(key) // BS
        self.held.append(key)

    @precondition(lambda self: self.held)
    @rule(i=st.integers(0, 50))
    def release(self, i):
        key = self.held.pop(i % len(self.held))
        self.c.release(list(key))

    @rule(n=st.one_of(st.integers(0, 3), st.integers(4, 30)))
    def evict(self, n):
        protected = {b for b, pre in self.content.items()
                     if any(h[:len(pre)] == pre for h in self.held)}
        evictable = len(self.content) - len(protected)
        freed = self.c.evict(n)
        assert len(set(freed)) == len(freed), f"evict returned a block twice: {freed}"
        assert len(freed) == min(n, evictable), \
            f"evict({n}) with {evictable} evictable blocks returned {len(freed)}: {freed}"
        for b in freed:
            assert b in self.content, f"evict returned block {b}, which the cache did not hold"
            assert b not in protected, \
                f"evict returned block {b} (prefix {list(self.content[b])}), held by a running sequence"
            pre = self.content.pop(b)
            children = [c for c, p in self.content.items() if len(p) > len(pre) and p[:len(pre)] == pre]
            assert not children, \
                f"evict returned block {b} (prefix {list(pre)}) while blocks {children} below it stay cached"

    def snapshot(self):
        return (self.c.num_blocks, tuple(sorted((b, self.c.ref_count(b)) for b in self.content)))

    @invariant()
    def blocks_and_counts_match_the_model(self):
        assert self.c.cached_blocks() == set(self.content), \
            f"cache holds {sorted(self.c.cached_blocks())}, expected {sorted(self.content)}"
        assert self.c.num_blocks == len(self.content)
        for b, pre in self.content.items():
            want = sum(1 for h in self.held if h[:len(pre)] == pre)
            assert self.c.ref_count(b) == want, \
                f"block {b} (prefix {list(pre)}): ref_count {self.c.ref_count(b)}, expected {want}"


# Derandomized (the course profile); 200 runs of up to 40 steps pass in about 2 s here.
RadixMachine.TestCase.settings = settings(max_examples=200, stateful_step_count=40)
TestRadixMachine = pytest.mark.points(8)(RadixMachine.TestCase)

"""Hidden grader, lesson 12: the allocator under random sequences of operations.

A hypothesis state machine drives allocate / free / fork / copy_on_write (valid and
invalid calls mixed) against a plain-dict model of the reference counts, and checks the
invariants after every step. When an invariant breaks, hypothesis prints the shortest
sequence of calls that breaks it.
"""

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from exercises.lesson12.allocator import (AllocatorError, BlockAllocator, InvalidBlock,
                                          OutOfBlocks)

NUM_BLOCKS = 12


class AllocatorMachine(RuleBasedStateMachine):
    """Bugs this catches: a leaked or lost block (free + used != total); a block handed
    out twice; free() that frees a still-shared block (refcount ignored); a double free
    that corrupts the free list; a failed call that changes state half-way (partial
    allocate, or a free list of [ok, bad] that frees the ok one); copy-on-write that
    returns the shared block itself (a write in place) or leaks the old reference."""

    def __init__(self):
        super().__init__()
        self.a = BlockAllocator(NUM_BLOCKS)
        self.refs: dict[int, int] = {}  # the model: block -> count, used blocks only
        self.owners: list[list[int]] = []  # lists of blocks some owner holds

    def snapshot(self):
        return self.a.num_free, tuple(self.a.ref_count(b) for b in range(NUM_BLOCKS))

    @rule(n=st.integers(0, NUM_BLOCKS + 2))
    def allocate(self, n):
        free = NUM_BLOCKS - len(self.refs)
        before = self.snapshot()
        if n > free:
            with pytest.raises(OutOfBlocks):
                self.a.allocate(n)
            assert self.snapshot() == before, "a failed allocate changed the allocator"
            return
        blocks = self.a.allocate(n)
        assert len(blocks) == n and len(set(blocks)) == n, f"allocate({n}) gave {blocks}"
        for b in blocks:
            assert b not in self.refs, f"allocate handed out block {b}, which is in use"
            self.refs[b] = 1
        self.owners.append(blocks)

    @precondition(lambda self: self.owners)
    @rule(i=st.integers(0, 100))
    def free_owner(self, i):
        blocks = self.owners.pop(i % len(self.owners))
        self.a.free(blocks)
        for b in blocks:
            self.refs[b] -= 1
            if self.refs[b] == 0:
                del self.refs[b]

    @precondition(lambda self: self.owners)
    @rule(i=st.integers(0, 100))
    def fork_owner(self, i):
        blocks = self.owners[i % len(self.owners)]
        shared = self.a.fork(blocks)
        assert sorted(shared) == sorted(blocks)
        for b in blocks:
            self.refs[b] += 1
        self.owners.append(list(shared))

    @precondition(lambda self: any(self.owners))
    @rule(i=st.integers(0, 100), j=st.integers(0, 100))
    def write_into_a_block(self, i, j):
        owners = [o for o in self.owners if o]
        blocks = owners[i % len(owners)]
        k = j % len(blocks)
        old = blocks[k]
        before = self.snapshot()
        if self.refs[old] > 1 and len(self.refs) == NUM_BLOCKS:
            with pytest.raises(OutOfBlocks):
                self.a.copy_on_write(old)
            assert self.snapshot() == before, "a failed copy_on_write changed the allocator"
            return
        new, copied = self.a.copy_on_write(old)
        if self.refs[old] == 1:
            assert (new, copied) == (old, False), \
                f"block {old} has one owner: it must be written in place, got {(new, copied)}"
            return
        assert copied and new != old, f"block {old} is shared: writing it in place corrupts " \
                                      f"another sequence (got {(new, copied)})"
        assert new not in self.refs, f"copy_on_write gave block {new}, which is in use"
        self.refs[old] -= 1
        self.refs[new] = 1
        blocks[k] = new

    @rule(block=st.integers(-2, NUM_BLOCKS + 1))
    def misuse_is_refused(self, block):
        if block in self.refs:
            return
        before = self.snapshot() if 0 <= block < NUM_BLOCKS else None
        for call in (lambda: self.a.free([block]), lambda: self.a.fork([block])):
            with pytest.raises(AllocatorError):
                call()
        if before is not None:
            assert self.snapshot() == before, f"a refused call on free block {block} " \
                                              "changed the allocator"

    @precondition(lambda self: self.refs)
    @rule(data=st.data())
    def partly_bad_free_changes_nothing(self, data):
        good = data.draw(st.sampled_from(sorted(self.refs)))
        bad = data.draw(st.sampled_from([b for b in range(NUM_BLOCKS) if b not in self.refs]
                                        or [NUM_BLOCKS]))
        before = self.snapshot()
        with pytest.raises(InvalidBlock):
            self.a.free([good, bad])
        with pytest.raises(InvalidBlock):
            self.a.free([good, good])
        assert self.snapshot() == before, "free() of a list with a bad id freed part of it"

    @invariant()
    def counts_match_the_model(self):
        assert self.a.num_free + self.a.num_used == NUM_BLOCKS, "free + used != total"
        assert self.a.num_free == NUM_BLOCKS - len(self.refs), \
            f"{self.a.num_free} free, expected {NUM_BLOCKS - len(self.refs)}"
        for b in range(NUM_BLOCKS):
            assert self.a.ref_count(b) == self.refs.get(b, 0), \
                f"block {b}: ref_count {self.a.ref_count(b)}, expected {self.refs.get(b, 0)}"


TestAllocatorMachine = pytest.mark.points(6)(AllocatorMachine.TestCase)


@pytest.mark.points(1)
def test_allocate_zero_and_negative():
    """Bug: allocate(0) that raises or takes a block; allocate(-1) that 'frees' blocks."""
    a = BlockAllocator(3)
    assert a.allocate(0) == [] and a.num_free == 3
    with pytest.raises(ValueError):
        a.allocate(-1)
    assert a.num_free == 3


@pytest.mark.points(1)
def test_exactly_full_then_one_more():
    """Bug: an off-by-one at the boundary: allocating exactly all blocks must work, one
    more must fail, and can_allocate must agree with allocate at both points."""
    a = BlockAllocator(5)
    assert a.can_allocate(5) and not a.can_allocate(6)
    blocks = a.allocate(5)
    assert sorted(blocks) == list(range(5)) and a.num_free == 0
    assert a.can_allocate(0) and not a.can_allocate(1)
    with pytest.raises(OutOfBlocks):
        a.allocate(1)

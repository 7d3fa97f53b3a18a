"""Lesson 12, part 1: the KV block allocator. Run: pytest exercises/lesson12"""

import pytest

from exercises.lesson12.allocator import BlockAllocator, InvalidBlock, OutOfBlocks


def state(a: BlockAllocator) -> tuple:
    return a.num_free, tuple(a.ref_count(b) for b in range(a.num_blocks))


def test_allocate_gives_distinct_blocks_with_one_owner():
    a = BlockAllocator(8)
    blocks = a.allocate(3)
    assert len(blocks) == 3 and len(set(blocks)) == 3, f"expected 3 distinct ids, got {blocks}"
    assert all(0 <= b < 8 for b in blocks), f"ids must be in 0..7, got {blocks}"
    assert a.num_free == 5, f"8 blocks, 3 allocated: expected 5 free, got {a.num_free}"
    assert [a.ref_count(b) for b in blocks] == [1, 1, 1]


def test_allocate_too_many_raises_and_changes_nothing():
    a = BlockAllocator(4)
    a.allocate(3)
    before = state(a)
    with pytest.raises(OutOfBlocks):
        a.allocate(2)
    assert state(a) == before, "a failed allocate must leave the allocator unchanged"
    assert a.can_allocate(1) and not a.can_allocate(2)
    with pytest.raises(ValueError):
        a.allocate(-1)  # the docstring's contract: a negative count is an error, not []
    assert state(a) == before


def test_free_returns_blocks_and_double_free_is_refused():
    a = BlockAllocator(4)
    blocks = a.allocate(2)
    a.free(blocks)
    assert a.num_free == 4
    before = state(a)
    with pytest.raises(InvalidBlock):
        a.free([blocks[0]])  # already free: a double free
    assert state(a) == before, "a refused free must leave the allocator unchanged"


def test_fork_shares_and_last_owner_frees():
    a = BlockAllocator(4)
    blocks = a.allocate(2)
    shared = a.fork(blocks)
    assert shared == blocks and [a.ref_count(b) for b in blocks] == [2, 2]
    a.free(blocks)
    assert a.num_free == 2, "blocks still referenced by the fork must stay in use"
    a.free(shared)
    assert a.num_free == 4


def test_copy_on_write_moves_a_shared_block_only():
    a = BlockAllocator(4)
    (block,) = a.allocate(1)
    assert a.copy_on_write(block) == (block, False), "an unshared block is written in place"
    a.fork([block])
    new, copied = a.copy_on_write(block)
    assert copied and new != block, "a shared block must not be written in place"
    assert a.ref_count(block) == 1 and a.ref_count(new) == 1

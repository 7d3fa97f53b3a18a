"""Hidden grader, lesson 12: block tables at block boundaries, forks and shortages."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from exercises.lesson12.allocator import BlockAllocator, OutOfBlocks
from exercises.lesson12.block_table import BlockTable, slot_mapping


@pytest.mark.points(2)
@given(block_size=st.integers(1, 32), n=st.integers(0, 100))
def test_blocks_held_is_exactly_ceil(block_size, n):
    """Bug: allocating a new block one token early or late (an off-by-one at the block
    boundary), which holds a block ahead of need or writes past the end of a block."""
    a = BlockAllocator(200)
    t = BlockTable(a, block_size)
    for i in range(n):
        block, offset = t.append_token()
        assert offset == i % block_size, f"token {i}: offset {offset}, expected {i % block_size}"
        assert len(t.blocks) == i // block_size + 1, \
            f"after {i + 1} tokens of block size {block_size}: {len(t.blocks)} blocks held, " \
            f"expected {i // block_size + 1}"
    assert a.num_used == -(-n // block_size)
    slots = [t.slot(i) for i in range(n)]
    assert len(set(slots)) == n, "two tokens share a slot"
    assert all(s // block_size in t.blocks for s in slots), "a slot outside the table's blocks"


@pytest.mark.points(2)
def test_fork_then_both_append_never_write_a_shared_block():
    """Bug: copy-on-write that writes in place (the child's token overwrites the parent's
    K/V), or that copies although the block is no longer shared (a wasted block)."""
    a = BlockAllocator(16)
    parent = BlockTable(a, 4)
    for _ in range(6):
        parent.append_token()
    child = parent.fork()
    shared_last = parent.blocks[-1]
    cb, _ = child.append_token()
    pb, _ = parent.append_token()
    assert cb != shared_last or pb != shared_last
    assert cb != pb, "parent and child wrote their 7th token into the same block"
    assert parent.blocks[0] == child.blocks[0], "full prefix blocks stay shared (no copy)"
    copies = child.take_copies() + parent.take_copies()
    assert len(copies) == 1, f"exactly one copy is needed (the first writer's), got {copies}"
    assert a.ref_count(parent.blocks[0]) == 2
    assert all(a.ref_count(b) == 1 for b in (cb, pb))


@pytest.mark.points(1)
def test_fork_at_a_block_boundary_needs_no_copy():
    """Bug: copy-on-write of a full shared block although the next token goes into a new
    block anyway."""
    a = BlockAllocator(8)
    parent = BlockTable(a, 4)
    for _ in range(4):
        parent.append_token()
    child = parent.fork()
    child.append_token()
    assert child.take_copies() == [], "the shared block is full: the new token opens a new one"
    assert child.blocks[0] == parent.blocks[0]


@pytest.mark.points(1)
def test_shortage_during_copy_on_write_changes_nothing():
    """Bug: a failed append that already bumped num_tokens or replaced the last block."""
    a = BlockAllocator(1)
    parent = BlockTable(a, 4)
    parent.append_token()
    child = parent.fork()
    with pytest.raises(OutOfBlocks):
        child.append_token()
    assert child.num_tokens == 1 and child.blocks == parent.blocks
    assert a.ref_count(parent.blocks[0]) == 2


@pytest.mark.points(1)
def test_slot_mapping_for_ragged_batch():
    """Bug: slot_mapping that returns the slot of the next (unwritten) token, or of token 0."""
    a = BlockAllocator(64)
    tables = []
    for n in (1, 4, 5, 16, 17):
        t = BlockTable(a, 4)
        for _ in range(n):
            t.append_token()
        tables.append(t)
    got = slot_mapping(tables).tolist()  # called before the answer exists in this frame
    assert got == [t.blocks[(t.num_tokens - 1) // 4] * 4 + (t.num_tokens - 1) % 4
                   for t in tables]


@pytest.mark.points(1)
def test_slot_mapping_of_no_tables_and_of_an_empty_table():
    """Bugs: ``torch.tensor([...])`` without a dtype, which is int64 for a list of ints but
    float32 for an empty batch; an empty table quietly mapped to slot 0 (another sequence's
    token, overwritten by the next write) instead of raising IndexError."""
    got = slot_mapping([])
    assert got.shape == (0,) and got.dtype == torch.int64, (
        f"slot_mapping([]) must be an empty int64 tensor, got {got.dtype} of shape "
        f"{tuple(got.shape)}")
    a = BlockAllocator(4)
    full, empty = BlockTable(a, 2), BlockTable(a, 2)
    full.append_token()
    with pytest.raises(IndexError):
        slot_mapping([full, empty])

"""Lesson 12, part 2: block tables and slots. Run: pytest exercises/lesson12"""

import pytest
import torch

from exercises.lesson12.allocator import BlockAllocator, OutOfBlocks
from exercises.lesson12.block_table import BlockTable, block_table_tensor, slot_mapping


@pytest.mark.parametrize("block_size", [1, 2, 3, 16])
def test_tokens_fill_blocks_in_order(block_size):
    a = BlockAllocator(64)
    t = BlockTable(a, block_size)
    slots = [t.append_token() for _ in range(2 * block_size + 1)]
    offsets = [offset for _, offset in slots]
    assert offsets == [i % block_size for i in range(2 * block_size + 1)]
    assert len(t.blocks) == 3, f"{2 * block_size + 1} tokens of block size {block_size} " \
                               f"need 3 blocks, the table holds {len(t.blocks)}"
    assert [block for block, _ in slots] == [t.blocks[i // block_size]
                                             for i in range(2 * block_size + 1)]


def test_slot_is_block_times_size_plus_offset():
    a = BlockAllocator(8)
    a.allocate(3)  # so that the table's blocks are not 0, 1, 2
    t = BlockTable(a, block_size=4)
    for _ in range(6):
        t.append_token()
    assert [t.slot(i) for i in range(6)] == [t.blocks[i // 4] * 4 + i % 4 for i in range(6)]
    with pytest.raises(IndexError):
        t.slot(6)


def test_slot_mapping_points_at_each_newest_token():
    a = BlockAllocator(16)
    tables = [BlockTable(a, 4) for _ in range(3)]
    for n, t in zip([1, 4, 6], tables):
        for _ in range(n):
            t.append_token()
    got = slot_mapping(tables)
    assert got.dtype == torch.int64 and got.tolist() == [t.slot(t.num_tokens - 1) for t in tables]
    packed = block_table_tensor(tables)
    assert packed.shape == (3, 2) and packed[2].tolist() == tables[2].blocks


def test_append_to_a_shared_block_copies_it_first():
    a = BlockAllocator(8)
    parent = BlockTable(a, 4)
    for _ in range(2):
        parent.append_token()
    child = parent.fork()
    block, offset = child.append_token()
    assert offset == 2
    assert block != parent.blocks[-1], "the child wrote into the block it shares with its parent"
    assert child.take_copies() == [(parent.blocks[-1], block)]
    assert a.ref_count(parent.blocks[-1]) == 1


def test_out_of_blocks_leaves_the_table_unchanged():
    a = BlockAllocator(1)
    t = BlockTable(a, 2)
    t.append_token(), t.append_token()
    with pytest.raises(OutOfBlocks):
        t.append_token()
    assert t.num_tokens == 2 and len(t.blocks) == 1


def test_slot_mapping_of_no_tables_and_of_a_table_without_tokens():
    got = slot_mapping([])
    assert got.shape == (0,) and got.dtype == torch.int64, (
        f"slot_mapping([]) must be an empty int64 tensor, got {got.dtype} {tuple(got.shape)} "
        "(torch.tensor([]) is float32 unless given a dtype)")
    with pytest.raises(IndexError):
        slot_mapping([BlockTable(BlockAllocator(2), 4)])  # no token: no newest slot

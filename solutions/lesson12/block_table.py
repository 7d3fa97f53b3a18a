"""A sequence's block table: logical token positions -> (physical block, offset).

Token ``i`` of a sequence lives in logical block ``i // block_size`` at offset
``i % block_size``; the table maps logical block ``j`` to ``blocks[j]``, any physical block
id the allocator handed out, in any order. Its flat slot in a cache of shape
``[num_blocks, block_size, ...]`` is ``blocks[j] * block_size + offset``.

Invariants: ``len(blocks) == ceil(num_tokens / block_size)`` (no block is held ahead of
need, and at most the last block is partly empty: waste < one block per sequence); a block
that this table writes into has reference count 1 (copy-on-write happened first).

Read: learning/lesson12.md#the-block-table
"""

from __future__ import annotations

import torch

from .allocator import BlockAllocator


class BlockTable:
    """The physical blocks of one sequence, and where its next token goes.

    Example:
        >>> a = BlockAllocator(8)
        >>> t = BlockTable(a, block_size=2)
        >>> [t.append_token() for _ in range(3)] == [(0, 0), (0, 1), (1, 0)]
        True
        >>> t.num_tokens, t.blocks, t.slot(2)
        (3, [0, 1], 2)

    ``pending_copies`` lists ``(src_block, dst_block)`` pairs produced by copy-on-write;
    the engine must copy each src block's K/V into dst before writing the new token
    (``take_copies()`` returns and clears the list).

    Read: learning/lesson12.md#the-block-table
    """

    def __init__(self, allocator: BlockAllocator, block_size: int):
        if not isinstance(block_size, int) or block_size < 1:
            raise ValueError(f"block_size must be a positive int, got {block_size!r}")
        self.allocator = allocator
        self.block_size = block_size
        self.blocks: list[int] = []
        self.num_tokens = 0
        self.pending_copies: list[tuple[int, int]] = []

    def blocks_needed(self, num_new_tokens: int = 1) -> int:
        """New blocks that appending ``num_new_tokens`` tokens would allocate."""
        total = -(-(self.num_tokens + num_new_tokens) // self.block_size)
        return max(0, total - len(self.blocks))

    def append_token(self) -> tuple[int, int]:
        """Reserve the slot of the next token; returns ``(physical_block, offset)``.

        Allocates a block when the last one is full (or there is none). When the last block
        is shared with a forked sequence, copy-on-write gives this sequence its own block
        first and records the copy in ``pending_copies``. On OutOfBlocks nothing changes.
        About 12 lines.

        Read: learning/lesson12.md#the-block-table
        """
        ### BEGIN SOLUTION
        # hint: offset = num_tokens % block_size; offset 0 means a new block is needed
        offset = self.num_tokens % self.block_size
        if offset == 0:
            self.blocks.extend(self.allocator.allocate(1))
        else:
            last = self.blocks[-1]
            block, copied = self.allocator.copy_on_write(last)
            if copied:
                self.pending_copies.append((last, block))
                self.blocks[-1] = block
        self.num_tokens += 1
        return self.blocks[-1], offset
        ### END SOLUTION

    def slot(self, position: int) -> int:
        """Flat slot index of token ``position`` (0-based) in a ``[num_blocks * block_size]``
        view of the cache. Raises IndexError for a position the table does not hold.

        Read: learning/lesson12.md#the-block-table
        """
        ### BEGIN SOLUTION
        if not 0 <= position < self.num_tokens:
            raise IndexError(f"position {position} not in 0..{self.num_tokens - 1}")
        return self.blocks[position // self.block_size] * self.block_size \
            + position % self.block_size
        ### END SOLUTION

    def fork(self) -> "BlockTable":
        """A new table for a child sequence that shares every block of this one."""
        child = BlockTable(self.allocator, self.block_size)
        child.blocks = self.allocator.fork(self.blocks)
        child.num_tokens = self.num_tokens
        return child

    def take_copies(self) -> list[tuple[int, int]]:
        copies, self.pending_copies = self.pending_copies, []
        return copies

    def free(self) -> None:
        """Give every block back (drop this sequence's references)."""
        self.allocator.free(self.blocks)
        self.blocks, self.num_tokens = [], 0


def slot_mapping(tables: list[BlockTable]) -> torch.Tensor:
    """Flat slot of the newest token of each sequence: ``[len(tables)]`` int64.

    This is where a decode step writes each sequence's new K and V. An empty list gives an
    empty int64 tensor (shape ``[0]``, not float32); a table that holds no token has no
    newest token and raises IndexError (as ``slot`` does for a position it does not hold).

    Read: learning/lesson12.md#the-block-table
    """
    ### BEGIN SOLUTION
    return torch.tensor([t.slot(t.num_tokens - 1) for t in tables], dtype=torch.int64)
    ### END SOLUTION


def block_table_tensor(tables: list[BlockTable], pad: int = 0) -> torch.Tensor:
    """Pack the tables into ``[len(tables), max_blocks]`` int32, padded with ``pad``.

    Padding entries are never read by a correct kernel (``context_lens`` bounds the reads);
    pointing them at block 0 keeps any stray read in bounds.
    """
    width = max((len(t.blocks) for t in tables), default=0)
    out = torch.full((len(tables), max(width, 1)), pad, dtype=torch.int32)
    for row, table in enumerate(tables):
        out[row, :len(table.blocks)] = torch.tensor(table.blocks, dtype=torch.int32)
    return out

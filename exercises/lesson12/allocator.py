"""A KV-cache block allocator with reference counts (vLLM's block manager, in small).

The KV cache is carved into ``num_blocks`` fixed-size blocks. A block id is either free or
used; a used block has a reference count: the number of sequences whose block table lists
it (forked sequences share their prefix blocks). Invariants, after every call:

* every id in ``range(num_blocks)`` is exactly one of free or used;
* ``num_free + num_used == num_blocks``;
* a used block has ``ref_count >= 1``; a free block has ``ref_count == 0``;
* a failed call (it raises) leaves the allocator exactly as it was.

Read: learning/lesson12.md#the-block-allocator
"""

from __future__ import annotations

from collections import deque


class AllocatorError(Exception):
    """Misuse of the allocator. The allocator's state is unchanged when this is raised."""


class OutOfBlocks(AllocatorError):
    """More blocks were asked for than are free."""


class InvalidBlock(AllocatorError):
    """A block id that is out of range, already free (double free) or listed twice."""


class BlockAllocator:
    """Hands out KV-cache block ids, with reference counts for shared blocks.

    Example:
        >>> a = BlockAllocator(4)
        >>> blocks = a.allocate(2)
        >>> a.num_free, a.ref_count(blocks[0])
        (2, 1)
        >>> shared = a.fork(blocks)       # a second sequence shares both blocks
        >>> a.ref_count(blocks[0])
        2
        >>> a.free(blocks); a.num_free    # the first owner is done; still referenced
        2
        >>> a.free(shared); a.num_free
        4

    Read: learning/lesson12.md#the-block-allocator
    """

    def __init__(self, num_blocks: int):
        if not isinstance(num_blocks, int) or num_blocks < 1:
            raise ValueError(f"num_blocks must be a positive int, got {num_blocks!r}")
        self.num_blocks = num_blocks
        self._free: deque[int] = deque(range(num_blocks))
        self._ref: list[int] = [0] * num_blocks

    @property
    def num_free(self) -> int:
        return len(self._free)

    @property
    def num_used(self) -> int:
        return self.num_blocks - len(self._free)

    def ref_count(self, block: int) -> int:
        """How many owners ``block`` has (0 when free). Raises InvalidBlock if out of range."""
        self._check_range([block])
        return self._ref[block]

    def can_allocate(self, n: int) -> bool:
        """Whether ``allocate(n)`` would succeed now."""
        return 0 <= n <= len(self._free)

    def allocate(self, n: int) -> list[int]:
        """Take ``n`` free blocks, each with reference count 1. All or nothing.

        Raises OutOfBlocks (state unchanged) when fewer than ``n`` are free, ValueError
        when ``n`` is negative. About 6 lines.

        Read: learning/lesson12.md#the-block-allocator
        """
        # hint: check first, then pop n ids from the free list and set their counts to 1
        raise NotImplementedError('lesson12: BlockAllocator.allocate - read learning/lesson12.md#the-block-allocator')

    def free(self, blocks: list[int]) -> None:
        """Drop one reference to each block; a block whose count reaches 0 becomes free.

        Validates every id before changing anything: an id out of range, already free, or
        listed twice in ``blocks`` raises InvalidBlock and nothing is freed.

        Read: learning/lesson12.md#the-block-allocator
        """
        # hint: validate the whole list first (range, in use, no duplicates), then decrement
        raise NotImplementedError('lesson12: BlockAllocator.free - read learning/lesson12.md#the-block-allocator')

    def fork(self, blocks: list[int]) -> list[int]:
        """Share ``blocks`` with one more owner: each count goes up by one.

        Returns the same ids (a new list) for the new owner's block table. Raises
        InvalidBlock, state unchanged, if any id is not in use or appears twice.

        Read: learning/lesson12.md#copy-on-write
        """
        raise NotImplementedError('lesson12: BlockAllocator.fork - read learning/lesson12.md#copy-on-write')

    def copy_on_write(self, block: int) -> tuple[int, bool]:
        """Make ``block`` safe to write for one owner: ``(block_to_write, must_copy)``.

        If ``block`` has one owner it is returned as is: ``(block, False)``. If it is shared,
        the caller's reference moves to a fresh block: ``(new_block, True)``, and the caller
        must copy the old block's contents into the new one before writing. Raises
        OutOfBlocks (state unchanged) if a shared block needs a copy and none is free, and
        InvalidBlock if ``block`` is not in use.

        Read: learning/lesson12.md#copy-on-write
        """
        raise NotImplementedError('lesson12: BlockAllocator.copy_on_write - read learning/lesson12.md#copy-on-write')

    def _check_range(self, blocks: list[int]) -> None:
        for block in blocks:
            if not isinstance(block, int) or not 0 <= block < self.num_blocks:
                raise InvalidBlock(f"block {block!r} is not an id in 0..{self.num_blocks - 1}")

    def _check_used(self, blocks: list[int]) -> None:
        self._check_range(blocks)
        if len(set(blocks)) != len(blocks):
            raise InvalidBlock(f"a block id appears twice in {blocks}")
        for block in blocks:
            if self._ref[block] == 0:
                raise InvalidBlock(f"block {block} is free (double free, or never allocated)")

    def __repr__(self) -> str:
        return f"BlockAllocator(num_blocks={self.num_blocks}, num_free={self.num_free})"

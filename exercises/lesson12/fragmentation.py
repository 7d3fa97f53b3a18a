"""How much KV-cache memory holds no token: paging vs contiguous reservation.

A contiguous allocator must reserve, when a request starts, room for the longest sequence
it may become (the model's maximum length, or the request's prompt plus its token cap),
because the sequence's length is not known in advance. Paging allocates ``block_size``
slots at a time as the sequence grows, so only the last block of each sequence is partly
empty. Both are counted in token slots.

Read: learning/lesson12.md#measuring-fragmentation
"""

from __future__ import annotations

from collections.abc import Sequence


def _check_lengths(lengths: Sequence[int]) -> None:
    if any(int(n) < 0 for n in lengths):
        raise ValueError("sequence lengths must be >= 0")


def paged_waste(lengths: Sequence[int], block_size: int) -> int:
    """Slots allocated but unused when each sequence holds ``ceil(len / block_size)`` blocks.

    Each sequence wastes fewer than ``block_size`` slots. Example: lengths [5, 8], block 4
    -> blocks 2 and 2 -> 16 slots for 13 tokens -> 3.

    Read: learning/lesson12.md#measuring-fragmentation
    """
    _check_lengths(lengths)
    if block_size < 1:
        raise ValueError("block_size must be >= 1")
    raise NotImplementedError('lesson12: paged_waste - read learning/lesson12.md#measuring-fragmentation')


def contiguous_waste(lengths: Sequence[int], reserved: int | Sequence[int]) -> int:
    """Slots reserved but unused when sequence ``i`` reserved ``reserved[i]`` slots up front
    (or the same ``reserved`` for all). A length above its reservation is an error.

    Read: learning/lesson12.md#measuring-fragmentation
    """
    _check_lengths(lengths)
    raise NotImplementedError('lesson12: contiguous_waste - read learning/lesson12.md#measuring-fragmentation')


def utilization(lengths: Sequence[int], waste: int) -> float:
    """Fraction of allocated slots that hold a token: ``tokens / (tokens + waste)``."""
    tokens = sum(int(n) for n in lengths)
    return 1.0 if tokens + waste == 0 else tokens / (tokens + waste)

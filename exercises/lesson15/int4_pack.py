"""Packing 4-bit integers eight to an int32, along the K (input) axis.

A quantized weight ``q: [N, K]`` holds integers in ``0..15``, one per byte if stored as uint8:
half of each byte is wasted. Packed, eight consecutive entries of a row share one int32 word:

    word[n, i] = q[n, 8i] | q[n, 8i + 1] << 4 | ... | q[n, 8i + 7] << 28

Entry ``8i + j`` sits in bits ``4j .. 4j + 3`` (the first entry in the lowest nibble), so
unpacking entry j is ``(word >> 4j) & 0xF``: one shift and one mask per nibble. This is the
order GPTQ's checkpoints use along K. A word whose top nibble is 8 or more has bit 31 set and
is a negative int32; ``>>`` on a signed integer copies the sign bit in from the left, which is
why the mask is not optional.

Read: learning/lesson15.md#packing-eight-nibbles-into-an-int32
"""

from __future__ import annotations

import torch

NIBBLES_PER_WORD = 8
_INT_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


def check_nibbles(q: torch.Tensor) -> None:
    """Raise ValueError unless q is an integer tensor of values 0..15 whose last dim is a
    multiple of 8."""
    if q.dtype not in _INT_DTYPES:
        raise ValueError(f"q must hold integers (uint8 0..15), got {q.dtype}")
    if q.dim() < 1 or q.shape[-1] % NIBBLES_PER_WORD:
        raise ValueError(f"the last dim of q (K = {q.shape[-1] if q.dim() else 'none'}) must be a "
                         "multiple of 8: eight 4-bit values fill one int32. Pad K with zeros "
                         "(and the matching columns of x) first.")
    if q.numel() and (int(q.min()) < 0 or int(q.max()) > 15):
        raise ValueError(f"q must hold values in 0..15, got min {int(q.min())}, max {int(q.max())}")


def pack_int4(q: torch.Tensor) -> torch.Tensor:
    """Pack 4-bit values eight to an int32 word along the last axis.

    Args:
        q: ``[..., K]`` integers in ``0..15`` (uint8 usually), K a multiple of 8.
    Returns:
        ``[..., K // 8]`` int32 on q's device; entry ``8i + j`` of a row goes into bits
        ``4j .. 4j + 3`` of word i. Example: ``pack_int4(tensor([1, 2, 3, 4, 5, 6, 7, 8]))``
        is ``[0x87654321]``, which as an int32 is ``-2023406815`` (bit 31 is set).

    About 4 lines: view as ``[..., K // 8, 8]``, shift each column by ``4j`` and add, in
    int64 so that ``15 << 28`` does not overflow, then wrap words ``>= 2^31`` to negatives
    (subtract ``2^32``) before the cast to int32.

    Read: learning/lesson15.md#packing-eight-nibbles-into-an-int32
    """
    check_nibbles(q)
    raise NotImplementedError('lesson15: pack_int4 - read learning/lesson15.md#packing-eight-nibbles-into-an-int32')


def unpack_int4(packed: torch.Tensor) -> torch.Tensor:
    """Inverse of pack_int4.

    Args:
        packed: ``[..., K // 8]`` int32.
    Returns:
        ``[..., K]`` uint8 in ``0..15`` with ``unpack_int4(pack_int4(q)) == q``. About 3 lines:
        shift by ``[0, 4, ..., 28]`` on a new last axis, mask with ``0xF``, flatten the last two
        axes. The mask is what makes the top nibble of a negative word come out as 8..15.

    Read: learning/lesson15.md#packing-eight-nibbles-into-an-int32
    """
    if packed.dtype != torch.int32:
        raise ValueError(f"packed must be int32 (eight nibbles per word), got {packed.dtype}")
    raise NotImplementedError('lesson15: unpack_int4 - read learning/lesson15.md#packing-eight-nibbles-into-an-int32')

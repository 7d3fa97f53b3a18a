"""Serialising a sequence's KV blocks bit-exactly, and landing them in another cache.

A paged KV cache (lesson 12) here holds every layer: ``k_cache`` and ``v_cache`` are
``[n_layers, num_blocks, block_size, n_kv_heads, d_head]``; a sequence owns the blocks its
block table names, in order, and its ``n_tokens`` tokens fill them front to back (the last
block may be partly filled). Physical block ids mean nothing outside their own cache: the
receiver allocates its own blocks and writes block i of the message into ITS block i.

Wire format (little-endian), built by ``serialize_kv_blocks``:

    MAGIC                      4 bytes, b"KVB1"
    header length              4 bytes, unsigned (struct "<I")
    header                     UTF-8 JSON: {"dtype": "bfloat16", "block_shape": [n_layers,
                               block_size, n_kv_heads, d_head], "block_ids": [...],
                               "n_tokens": n}
    K payload                  the sequence's blocks of k_cache, [n_layers, n_blocks, ...],
                               raw bytes of the tensor (viewed as uint8)
    V payload                  the same for v_cache
    checksum                   4 bytes, zlib.crc32 of everything before it (struct "<I")

Raw bytes, not numbers: ``tensor.view(torch.uint8)`` reinterprets any dtype (bf16, fp16, fp32,
float8) without rounding, so the round trip is bit-exact; the dtype travels by name in the
header.

Read: learning/lesson22.md#kv-blocks-on-the-wire
"""

from __future__ import annotations

import json
import struct
import zlib

import torch

MAGIC = b"KVB1"
DTYPES = ("float32", "float16", "bfloat16", "float8_e4m3fn", "float8_e5m2")


def _check_cache_pair(k_cache: torch.Tensor, v_cache: torch.Tensor) -> None:
    if k_cache.dim() != 5:
        raise ValueError(f"k_cache must be [n_layers, num_blocks, block_size, n_kv_heads, d_head], "
                         f"got shape {tuple(k_cache.shape)}")
    if k_cache.shape != v_cache.shape or k_cache.dtype != v_cache.dtype:
        raise ValueError(f"k_cache and v_cache differ: {tuple(k_cache.shape)} {k_cache.dtype} "
                         f"vs {tuple(v_cache.shape)} {v_cache.dtype}")
    if str(k_cache.dtype).removeprefix("torch.") not in DTYPES:
        raise ValueError(f"cache dtype {k_cache.dtype} is not one of {DTYPES}")


def blocks_needed(n_tokens: int, block_size: int) -> int:
    """Blocks that hold ``n_tokens`` tokens, the last one possibly partial.

    Read: learning/lesson22.md#kv-blocks-on-the-wire
    """
    raise NotImplementedError('lesson22: blocks_needed - read learning/lesson22.md#kv-blocks-on-the-wire')


def serialize_kv_blocks(k_cache: torch.Tensor, v_cache: torch.Tensor, block_ids: list[int],
                        n_tokens: int) -> bytes:
    """The bytes of one sequence's KV: the wire format of this module's docstring.

    Args:
        k_cache, v_cache: ``[n_layers, num_blocks, block_size, n_kv_heads, d_head]``, any dtype
            of ``DTYPES``, on any device (the payload is copied to the host).
        block_ids: the sequence's block table row, in token order; it may be longer than
            needed (padding): only the first ``blocks_needed(n_tokens, block_size)`` are sent,
            whole, the partly filled last block included. Block id 0 is a block like any other.
        n_tokens: tokens the sequence holds (0 sends no block).
    Raises ``ValueError`` when ``block_ids`` holds fewer ids than the tokens need, or an id
    outside the cache. Only the sequence's blocks travel, never the whole cache. About 12
    lines: view the cache as uint8 (``cache.view(torch.uint8)``: float8 has few indexing
    kernels, bytes have all), gather the blocks (``index_select`` on axis 1), ``.cpu().numpy().tobytes()``; build the header
    with ``json.dumps`` and ``struct.pack("<I", ...)``; append the crc32.

    Read: learning/lesson22.md#kv-blocks-on-the-wire
    """
    _check_cache_pair(k_cache, v_cache)
    block_size = k_cache.shape[2]
    if n_tokens < 0:
        raise ValueError(f"n_tokens must be >= 0, got {n_tokens}")
    raise NotImplementedError('lesson22: serialize_kv_blocks - read learning/lesson22.md#kv-blocks-on-the-wire')


def deserialize_kv_blocks(data: bytes, k_dest: torch.Tensor, v_dest: torch.Tensor,
                          dest_block_ids: list[int]) -> int:
    """Write the blocks of ``data`` into ``k_dest``/``v_dest`` at ``dest_block_ids``; return n_tokens.

    Block i of the message (the sender's ``block_ids[i]``) lands in ``dest_block_ids[i]`` of the
    destination, a cache of the same dtype and block shape (its number of blocks may differ).
    Nothing else of the destination changes. Raises ``ValueError`` with a plain message, before
    writing anything, when: the magic is wrong; ``data`` is shorter or longer than its header
    says (truncated); the checksum does not match (corrupted); the header's dtype or block shape
    differ from the destination's; the header is not a KV block header (a field missing or of
    the wrong type, even under a valid checksum); ``dest_block_ids`` does not hold exactly one
    id per block, or holds an id twice or out of range. About 20 lines: ``struct.unpack_from``,
    ``json.loads``, ``torch.frombuffer(bytearray(...), dtype=torch.uint8).view(dtype)``,
    ``index_copy_`` on the block axis of ``cache.view(torch.uint8)``.

    Read: learning/lesson22.md#kv-blocks-on-the-wire
    """
    _check_cache_pair(k_dest, v_dest)
    data = bytes(data)
    raise NotImplementedError('lesson22: deserialize_kv_blocks - read learning/lesson22.md#kv-blocks-on-the-wire')

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
    ### BEGIN SOLUTION
    return -(-n_tokens // block_size)
    ### END SOLUTION


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
    ### BEGIN SOLUTION
    ids = [int(b) for b in block_ids[:blocks_needed(n_tokens, block_size)]]
    if len(ids) < blocks_needed(n_tokens, block_size):
        raise ValueError(f"{n_tokens} tokens in blocks of {block_size} need "
                         f"{blocks_needed(n_tokens, block_size)} blocks; block_ids has {len(ids)}")
    if any(not 0 <= b < k_cache.shape[1] for b in ids):
        raise ValueError(f"block ids {ids} out of range for a cache of {k_cache.shape[1]} blocks")
    header = json.dumps({"dtype": str(k_cache.dtype).removeprefix("torch."),
                         "block_shape": [k_cache.shape[0], *k_cache.shape[2:]],
                         "block_ids": ids, "n_tokens": n_tokens}).encode()
    index = torch.tensor(ids, dtype=torch.long, device=k_cache.device)
    parts = [MAGIC, struct.pack("<I", len(header)), header]
    for cache in (k_cache, v_cache):
        parts.append(cache.view(torch.uint8).index_select(1, index).cpu().numpy().tobytes())
    body = b"".join(parts)
    return body + struct.pack("<I", zlib.crc32(body))
    ### END SOLUTION


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
    ### BEGIN SOLUTION
    if len(data) < 12 or data[:4] != MAGIC:
        raise ValueError(f"not a KV block message: {len(data)} bytes starting {data[:4]!r}, "
                         f"expected the magic {MAGIC!r}")
    (header_len,) = struct.unpack_from("<I", data, 4)
    if 8 + header_len + 4 > len(data):
        raise ValueError(f"truncated message: header of {header_len} B in {len(data)} B")
    try:  # a damaged header must not surface as a KeyError or a JSON error
        header = json.loads(data[8:8 + header_len].decode())
        dtype = getattr(torch, header["dtype"]) if header["dtype"] in DTYPES else None
        shape = [int(n) for n in header["block_shape"]]
        n_blocks = len(header["block_ids"])
        numel = n_blocks * shape[0] * shape[1] * shape[2] * shape[3]
        n_tokens = header["n_tokens"]
        if type(n_tokens) is not int or n_tokens < 0:
            raise ValueError(f"n_tokens {n_tokens!r}")
    except (UnicodeDecodeError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise ValueError(f"corrupted message: the header is not a KV block header ({exc})") from None
    if dtype is None:
        raise ValueError(f"corrupted message: unknown dtype {header['dtype']!r} in the header")
    one = numel * torch.empty((), dtype=dtype).element_size()
    start = 8 + header_len
    if len(data) != start + 2 * one + 4:
        raise ValueError(f"truncated or padded message: {len(data)} B, the header announces "
                         f"{start + 2 * one + 4} B ({n_blocks} blocks of {shape} {header['dtype']})")
    (crc,) = struct.unpack_from("<I", data, start + 2 * one)
    if crc != zlib.crc32(data[:start + 2 * one]):
        raise ValueError("corrupted message: the crc32 checksum does not match the bytes")
    if dtype != k_dest.dtype:
        raise ValueError(f"the message holds {header['dtype']}, the destination cache is "
                         f"{k_dest.dtype}")
    if [k_dest.shape[0], *k_dest.shape[2:]] != shape:
        raise ValueError(f"the message's blocks are {shape} [n_layers, block_size, n_kv_heads, "
                         f"d_head], the destination's {[k_dest.shape[0], *k_dest.shape[2:]]}")
    dest = [int(b) for b in dest_block_ids]
    if len(dest) != n_blocks or len(set(dest)) != len(dest) \
            or any(not 0 <= b < k_dest.shape[1] for b in dest):
        raise ValueError(f"need {n_blocks} distinct destination block ids in "
                         f"[0, {k_dest.shape[1]}), got {dest}")
    index = torch.tensor(dest, dtype=torch.long, device=k_dest.device)
    for i, cache in enumerate((k_dest, v_dest)):
        raw = bytearray(data[start + i * one:start + (i + 1) * one])
        blocks = torch.frombuffer(raw, dtype=torch.uint8) if raw else torch.empty(0, dtype=torch.uint8)
        blocks = blocks.view(dtype).view(shape[0], n_blocks, *shape[1:])  # checks the dtype's size
        cache.view(torch.uint8).index_copy_(1, index, blocks.view(torch.uint8).to(cache.device))
    return n_tokens
    ### END SOLUTION

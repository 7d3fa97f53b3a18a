"""Lesson 22, part 2: KV blocks on the wire, bit-exact. Run: pytest exercises/lesson22

The reference is the source cache itself: a round trip must give back its bytes exactly
(compared as uint8, so even NaN payloads and -0.0 count).
"""

import json
import struct
import zlib

import pytest
import torch

from exercises.lesson22.kv_blocks import blocks_needed, deserialize_kv_blocks, serialize_kv_blocks


def cache_pair(num_blocks, dtype, seed=0, n_layers=2, block_size=4, n_kv=2, d_head=8):
    g = torch.Generator().manual_seed(seed)
    shape = (n_layers, num_blocks, block_size, n_kv, d_head)
    return (torch.randn(shape, generator=g).to(dtype), torch.randn(shape, generator=g).to(dtype))


def test_blocks_needed_counts_the_partial_last_block():
    assert [blocks_needed(n, 4) for n in (0, 1, 4, 5, 8, 9)] == [0, 1, 1, 2, 2, 3]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_round_trip_into_other_block_ids_is_bit_exact(dtype):
    k, v = cache_pair(8, dtype)
    # 10 tokens in blocks of 4: blocks 6, 2, 5 (the last holds 2 tokens); 7 is padding
    data = serialize_kv_blocks(k, v, [6, 2, 5, 7], 10)
    k2, v2 = torch.zeros(2, 5, 4, 2, 8, dtype=dtype), torch.zeros(2, 5, 4, 2, 8, dtype=dtype)
    assert deserialize_kv_blocks(data, k2, v2, [0, 3, 1]) == 10
    for src, dst in ((6, 0), (2, 3), (5, 1)):
        assert torch.equal(k2[:, dst].view(torch.uint8), k[:, src].view(torch.uint8)), \
            f"sender block {src} must land bit-exactly in receiver block {dst}"
        assert torch.equal(v2[:, dst].view(torch.uint8), v[:, src].view(torch.uint8))
    assert not k2[:, [2, 4]].any() and not v2[:, [2, 4]].any(), "other blocks must stay untouched"


def test_truncated_or_corrupted_message_is_refused():
    k, v = cache_pair(4, torch.float16)
    data = serialize_kv_blocks(k, v, [1, 3], 6)
    dest = torch.zeros_like(k), torch.zeros_like(v)
    with pytest.raises(ValueError):
        deserialize_kv_blocks(data[:-10], *dest, [0, 1])
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x01
    with pytest.raises(ValueError):
        deserialize_kv_blocks(bytes(flipped), *dest, [0, 1])
    assert not dest[0].any(), "a refused message must not write anything"


def test_header_missing_a_field_is_refused_even_with_a_valid_checksum():
    """A sender with another version of the format: the framing and the crc32 are right, the
    header lacks "n_tokens". A ValueError, not a KeyError, and nothing written."""
    k, v = cache_pair(3, torch.float32)
    data = serialize_kv_blocks(k, v, [2], 3)
    (n,) = struct.unpack_from("<I", data, 4)
    header = json.loads(data[8:8 + n])
    del header["n_tokens"]
    new = json.dumps(header).encode()
    body = data[:4] + struct.pack("<I", len(new)) + new + data[8 + n:-4]
    dest = torch.zeros_like(k), torch.zeros_like(v)
    with pytest.raises(ValueError):
        deserialize_kv_blocks(body + struct.pack("<I", zlib.crc32(body)), *dest, [0])
    assert not dest[0].any() and not dest[1].any(), "a refused message must not write anything"

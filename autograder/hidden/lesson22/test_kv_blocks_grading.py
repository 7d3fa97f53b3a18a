"""Hidden grader, lesson 22: KV blocks on the wire.

References: the source cache itself, compared byte for byte (``view(torch.uint8)``), so a round
trip must be bit-exact for every dtype, NaN payloads and -0.0 included; the message size
worked out from the wire format (4 + 4 + header + K + V + 4 bytes); receiver caches filled
with a sentinel so that a write to a wrong block, or any write on a refused message, shows.
"""

import json
import struct
import zlib

import pytest
import torch

from exercises.lesson22.kv_blocks import blocks_needed, deserialize_kv_blocks, serialize_kv_blocks

DTYPES = [torch.float32, torch.bfloat16, torch.float16, torch.float8_e4m3fn, torch.float8_e5m2]


def cache_pair(n_layers, num_blocks, block_size, n_kv, d_head, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    shape = (n_layers, num_blocks, block_size, n_kv, d_head)
    k, v = torch.randn(shape, generator=g) * 3, torch.randn(shape, generator=g) * 3
    return k.to(dtype), v.to(dtype)


def sentinel(shape, dtype):
    """A receiver cache whose bytes are all 0x5A: any write shows."""
    nbytes = shape[-1] * torch.empty((), dtype=dtype).element_size()
    return torch.full((*shape[:-1], nbytes), 0x5A, dtype=torch.uint8).view(dtype)


def same_bytes(a, b):
    return torch.equal(a.contiguous().view(torch.uint8), b.contiguous().view(torch.uint8))


def check_round_trip(k, v, src_blocks, n_tokens, dest_blocks, dest_num_blocks):
    data = serialize_kv_blocks(k, v, src_blocks, n_tokens)
    shape = (k.shape[0], dest_num_blocks, *k.shape[2:])
    k2, v2 = sentinel(shape, k.dtype), sentinel(shape, k.dtype)
    before = k2.clone()
    got = deserialize_kv_blocks(data, k2, v2, dest_blocks)
    assert got == n_tokens, f"deserialize_kv_blocks returned {got}, the message holds {n_tokens} tokens"
    for i, (s, d) in enumerate(zip(src_blocks, dest_blocks)):
        assert same_bytes(k2[:, d], k[:, s]), (
            f"K block {i} of the message (sender block {s}) is not bit-exact in receiver block "
            f"{d} ({k.dtype}, cache {tuple(k.shape)})")
        assert same_bytes(v2[:, d], v[:, s]), f"V block {i} (sender {s}) differs in receiver block {d}"
    untouched = [b for b in range(dest_num_blocks) if b not in dest_blocks]
    if untouched:
        assert same_bytes(k2[:, untouched], before[:, untouched]) and \
            same_bytes(v2[:, untouched], before[:, untouched]), \
            f"receiver blocks {untouched} belong to no one in the message and must not change"
    return data


@pytest.mark.points(3)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_round_trip_is_bit_exact_in_every_dtype(dtype):
    """Bugs: the dtype lost on the way (bf16 read back as fp16: two bytes per element either
    way, plausible but wrong numbers); values converted instead of bytes copied (through fp16,
    which holds ordinary bf16 values exactly but turns bf16's 3e38 into inf and its tiny values
    into 0; through numpy, which has no bf16); NaN and -0.0 payloads normalised."""
    k, v = cache_pair(3, 9, 4, 2, 8, dtype, seed=1)
    k[0, 2, 0, 0, :2] = torch.tensor([float("nan"), -0.0]).to(dtype)
    info = torch.finfo(dtype)  # the largest, smallest normal and smallest subnormal values
    v[1, 7, 1, 1, :4] = torch.tensor([info.max, -info.max, info.tiny, info.smallest_normal / 4],
                                     dtype=torch.float64).to(dtype)
    check_round_trip(k, v, [2, 7, 0], 11, [5, 1, 3], 6)


@pytest.mark.points(3)
def test_partial_last_block_padding_and_block_zero():
    """Bugs: floor instead of ceil, dropping the partly filled last block (9 tokens in blocks
    of 4 are 3 blocks); the whole padded block-table row sent; block id 0 treated as padding
    (on either side); the blocks gathered along the wrong axis (layers for blocks)."""
    k, v = cache_pair(2, 5, 4, 1, 4, torch.bfloat16, seed=2)
    data = check_round_trip(k, v, [3, 0, 4, 1, 2], 9, [0, 4, 2], 5)  # row padded with 1, 2
    (n,) = struct.unpack_from("<I", data, 4)
    header = json.loads(data[8:8 + n])
    assert header["block_ids"] == [3, 0, 4] and header["n_tokens"] == 9, \
        f"the header must list the 3 blocks sent and 9 tokens, got {header}"
    assert [blocks_needed(t, 4) for t in (0, 1, 3, 4, 5, 8, 9, 16, 17)] == [0, 1, 1, 1, 2, 2, 3, 4, 5]
    # exactly full blocks: nothing extra; one layer only; one block only
    k1, v1 = cache_pair(1, 3, 4, 2, 4, torch.float32, seed=3)
    check_round_trip(k1, v1, [2, 1], 8, [1, 0], 2)
    check_round_trip(k1, v1, [0], 1, [0], 1)


@pytest.mark.points(2)
def test_zero_tokens_is_an_empty_message():
    """Bugs: an empty block list crashes (torch.tensor([]) is float; frombuffer of 0 bytes
    raises); zero tokens still ships a block."""
    k, v = cache_pair(2, 3, 4, 2, 4, torch.float16, seed=4)
    data = check_round_trip(k, v, [1, 2], 0, [], 3)
    (n,) = struct.unpack_from("<I", data, 4)
    assert len(data) == 4 + 4 + n + 4, f"a message of 0 blocks is magic + header + crc, got {len(data)} B"


@pytest.mark.points(2)
def test_message_carries_only_the_sequence_blocks():
    """Bug: the whole cache (every block of every sequence) serialised and shipped: the right
    blocks arrive, at many times the bytes the link should carry."""
    k, v = cache_pair(4, 64, 16, 2, 16, torch.bfloat16, seed=5)
    data = serialize_kv_blocks(k, v, [40, 3, 17], 40)
    (n,) = struct.unpack_from("<I", data, 4)
    block_bytes = 4 * 16 * 2 * 16 * 2  # n_layers x block_size x n_kv x d_head x 2 B
    expected = 4 + 4 + n + 2 * 3 * block_bytes + 4
    assert len(data) == expected, (
        f"3 blocks of K and V ({2 * 3 * block_bytes:,} B) plus framing make {expected:,} B; the "
        f"message has {len(data):,} B")


def _refused(data, k2, v2, ids, what):
    before_k, before_v = k2.clone(), v2.clone()
    with pytest.raises(ValueError):
        deserialize_kv_blocks(data, k2, v2, ids)
    assert same_bytes(k2, before_k) and same_bytes(v2, before_v), \
        f"{what}: a refused message must leave the destination untouched"


@pytest.mark.points(3)
def test_bad_messages_are_refused_before_writing():
    """Bugs: a truncated or corrupted message accepted (no length check, no checksum), or
    refused only after writing some blocks; a dtype or block shape that differs from the
    destination's accepted; too few, too many, repeated or out-of-range destination ids."""
    k, v = cache_pair(2, 6, 4, 2, 8, torch.bfloat16, seed=6)
    data = serialize_kv_blocks(k, v, [5, 1, 2], 10)
    shape = (2, 4, 4, 2, 8)
    k2, v2 = sentinel(shape, torch.bfloat16), sentinel(shape, torch.bfloat16)
    for cut in (1, 4, 100, len(data) // 2, len(data) - 5):
        _refused(data[:len(data) - cut], k2, v2, [0, 1, 2], f"message cut by {cut} B")
    _refused(data + b"\0", k2, v2, [0, 1, 2], "one byte too many")
    for pos in (len(data) - 6, len(data) // 2, 9):
        bad = bytearray(data)
        bad[pos] ^= 0x10
        _refused(bytes(bad), k2, v2, [0, 1, 2], f"byte {pos} flipped")
    _refused(b"XXXX" + data[4:], k2, v2, [0, 1, 2], "wrong magic")
    f16 = sentinel(shape, torch.float16), sentinel(shape, torch.float16)
    _refused(data, *f16, [0, 1, 2], "bf16 message into an fp16 cache")
    other = sentinel((2, 4, 4, 1, 16), torch.bfloat16), sentinel((2, 4, 4, 1, 16), torch.bfloat16)
    _refused(data, *other, [0, 1, 2], "block shape [2, 4, 1, 16] for [2, 4, 2, 8]")
    for ids in ([0, 1], [0, 1, 2, 3], [0, 1, 1], [0, 1, 4], [-1, 0, 1]):
        _refused(data, k2, v2, ids, f"destination ids {ids} for 3 blocks in a 4-block cache")


def reframed(data, header: bytes):
    """``data`` with its header replaced by ``header`` and the framing made right again: the
    length field and the crc32 agree with the new bytes, so only the header's content is bad."""
    (n,) = struct.unpack_from("<I", data, 4)
    body = data[:4] + struct.pack("<I", len(header)) + header + data[8 + n:-4]
    return body + struct.pack("<I", zlib.crc32(body))


@pytest.mark.points(2)
def test_damaged_header_with_a_valid_checksum_is_refused():
    """Bugs: header fields read without a guard, so a header with a field missing, of the wrong
    type (n_tokens a string or negative), or naming no torch dtype surfaces as a KeyError,
    TypeError, IndexError or AttributeError from deep inside, not the ValueError the contract
    promises (and nothing may be written). The framing and checksum of each message are right:
    only the header is damaged, as a sender with another version of the format would send it."""
    k, v = cache_pair(2, 6, 4, 2, 8, torch.bfloat16, seed=7)
    data = serialize_kv_blocks(k, v, [4, 0], 7)
    (n,) = struct.unpack_from("<I", data, 4)
    header = json.loads(data[8:8 + n])
    shape = (2, 4, 4, 2, 8)
    k2, v2 = sentinel(shape, torch.bfloat16), sentinel(shape, torch.bfloat16)
    assert deserialize_kv_blocks(reframed(data, data[8:8 + n]), k2.clone(), v2.clone(),
                                 [1, 2]) == 7, "a re-framed but unchanged header must be accepted"
    damaged = {}
    for key in header:
        damaged[f"no {key!r}"] = {f: x for f, x in header.items() if f != key}
    damaged["dtype 'int3'"] = dict(header, dtype="int3")
    damaged["dtype 'Tensor'"] = dict(header, dtype="Tensor")
    damaged["block_shape of 3"] = dict(header, block_shape=header["block_shape"][:3])
    damaged["block_shape a string"] = dict(header, block_shape="2x4x2x8")
    damaged["block_ids a number"] = dict(header, block_ids=2)
    damaged["n_tokens a string"] = dict(header, n_tokens="7")
    damaged["n_tokens negative"] = dict(header, n_tokens=-1)
    for what, h in damaged.items():
        _refused(reframed(data, json.dumps(h).encode()), k2, v2, [1, 2], f"header with {what}")
    for what, raw in (("a JSON list", b"[1, 2, 3]"), ("not JSON", b"{dtype: bfloat16"),
                      ("not UTF-8", b"\xff\xfe\x00\x01")):
        _refused(reframed(data, raw), k2, v2, [1, 2], f"header that is {what}")


@pytest.mark.points(2)
def test_serialize_leaves_the_cache_alone_and_takes_a_strided_view():
    """Bug: serialising modifies the sender's cache (an in-place view written to) or depends on
    it being contiguous in memory: a cache sliced from a larger one must work the same."""
    k, v = cache_pair(2, 6, 4, 2, 8, torch.float32, seed=7)
    kb, vb = k.clone(), v.clone()
    a = serialize_kv_blocks(k, v, [4, 0], 6)
    assert same_bytes(k, kb) and same_bytes(v, vb), "serialize_kv_blocks must not modify the cache"
    big_k, big_v = cache_pair(2, 12, 4, 2, 8, torch.float32, seed=8)
    big_k[:, ::2], big_v[:, ::2] = k, v
    b = serialize_kv_blocks(big_k[:, ::2], big_v[:, ::2], [4, 0], 6)
    assert a == b, "a strided view of the same blocks must serialise to the same bytes"

"""Hidden grader, lesson 15: int4 packing against the bit formula, every nibble at every place."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from exercises.lesson15.int4_pack import pack_int4, unpack_int4


def word_of(nibbles):
    """The signed int32 value of eight nibbles, first in the lowest bits (Python integers)."""
    value = sum(int(v) << (4 * j) for j, v in enumerate(nibbles))
    return value - 2**32 if value >= 2**31 else value


@pytest.mark.points(3)
@settings(max_examples=25)
@given(lead=st.lists(st.integers(1, 3), min_size=0, max_size=2), words=st.integers(1, 5),
       seed=st.integers(0, 2**16), top=st.sampled_from([1, 8, 15]))
def test_pack_matches_bit_formula(lead, words, seed, top):
    """Bugs: nibbles in the reverse order inside a word (a round trip alone cannot see it),
    packing along the wrong axis, leading dims flattened, words that overflow or saturate at
    2^31 - 1 instead of wrapping to negative int32 when the top nibble is 8 or more."""
    shape = (*lead, 8 * words)
    q = torch.randint(0, top + 1, shape, generator=torch.Generator().manual_seed(seed),
                      dtype=torch.uint8)
    got = pack_int4(q)
    assert got.dtype == torch.int32 and got.shape == (*lead, words), (
        f"pack_int4 of {tuple(shape)} must give int32 {(*lead, words)}, got {got.dtype} "
        f"{tuple(got.shape)}")
    flat_q, flat_w = q.reshape(-1, 8 * words), got.reshape(-1, words)
    for r in range(flat_q.shape[0]):
        for i in range(words):
            want = word_of(flat_q[r, 8 * i: 8 * i + 8].tolist())
            assert flat_w[r, i].item() == want, (
                f"row {r}, word {i}: nibbles {flat_q[r, 8 * i: 8 * i + 8].tolist()} must pack "
                f"to {want} ({want & 0xFFFFFFFF:#010x}), got {flat_w[r, i].item()}")
    back = unpack_int4(got)
    assert back.dtype == torch.uint8 and torch.equal(back, q), "unpack_int4(pack_int4(q)) != q"


@pytest.mark.points(2)
def test_every_value_at_every_position():
    """Bugs: the top nibble unpacked with an arithmetic shift and no mask (8..15 come back as
    -8..-1, or 248..255 as uint8), a mask of 0x7 or 0xFF, nibbles 0 and 15 mishandled at the
    first or last position. All 16 values at each of the 8 positions, rest 0 or rest 15."""
    rows = []
    for fill in (0, 15):
        for v in range(16):
            for j in range(8):
                row = [fill] * 8
                row[j] = v
                rows.append(row)
    q = torch.tensor(rows, dtype=torch.uint8)                       # [256, 8]
    packed = pack_int4(q)
    want = torch.tensor([[word_of(r)] for r in rows], dtype=torch.int32)
    bad = (packed != want).nonzero()
    assert not len(bad), (f"{len(bad)} of 256 single words wrong; first: nibbles "
                          f"{rows[bad[0, 0]]} gave {packed[bad[0, 0], 0].item()}, expected "
                          f"{want[bad[0, 0], 0].item()}")
    back = unpack_int4(want)
    assert back.dtype == torch.uint8, f"unpack_int4 must return uint8, got {back.dtype}"
    bad = (back != q).any(dim=1).nonzero()
    assert not len(bad), (f"{len(bad)} of 256 words unpacked wrong; first: word "
                          f"{want[bad[0, 0], 0].item()} gave {back[bad[0, 0]].tolist()}, "
                          f"expected {rows[bad[0, 0]]}")


@pytest.mark.points(1)
def test_unpack_keeps_leading_dims_and_device():
    """Bugs: unpack_int4 that flattens leading dims or assumes 2-D input, or returns int32."""
    q = torch.randint(0, 16, (2, 3, 4, 16), generator=torch.Generator().manual_seed(5),
                      dtype=torch.uint8)
    back = unpack_int4(pack_int4(q))
    assert back.shape == q.shape and back.dtype == torch.uint8 and back.device == q.device
    assert torch.equal(back, q)

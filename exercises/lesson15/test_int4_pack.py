"""Lesson 15, part 1: packing int4 along K. Run: pytest exercises/lesson15"""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from exercises.lesson15.int4_pack import pack_int4, unpack_int4


def test_documented_nibble_order():
    # entry 8i + j sits in bits 4j .. 4j + 3: the first entry in the lowest nibble
    q = torch.tensor([[1, 2, 3, 4, 5, 6, 7, 8], [0, 0, 0, 0, 0, 0, 0, 1]], dtype=torch.uint8)
    got = pack_int4(q)
    assert got.dtype == torch.int32 and got.shape == (2, 1), \
        f"expected int32 of shape (2, 1), got {got.dtype} {tuple(got.shape)}"
    assert got[1, 0].item() == 1 << 28, f"entry 7 belongs in bits 28-31, got {got[1, 0].item():#x}"
    assert got[0, 0].item() == 0x87654321 - 2**32, (
        f"[1..8] packs to 0x87654321, the int32 {0x87654321 - 2**32}; got {got[0, 0].item()}")


def test_top_nibble_of_a_negative_word():
    # 15 in the top nibble sets bit 31: the word is negative, and >> copies the sign bit in
    q = torch.tensor([[0, 0, 0, 0, 0, 0, 0, 15]], dtype=torch.uint8)
    back = unpack_int4(pack_int4(q))
    assert back.dtype == torch.uint8, f"unpack_int4 must return uint8, got {back.dtype}"
    assert back.tolist() == q.tolist(), f"round trip of {q.tolist()} gave {back.tolist()}"


@settings(max_examples=30)
@given(rows=st.integers(1, 4), words=st.integers(1, 6), seed=st.integers(0, 2**16))
def test_round_trip(rows, words, seed):
    q = torch.randint(0, 16, (rows, 8 * words), generator=torch.Generator().manual_seed(seed),
                      dtype=torch.uint8)
    packed = pack_int4(q)
    assert packed.shape == (rows, words), f"expected K / 8 = {words} words per row"
    assert torch.equal(unpack_int4(packed), q), "unpack_int4(pack_int4(q)) must give q back"


def test_k_not_multiple_of_8_is_refused():
    assert pack_int4(torch.zeros(2, 16, dtype=torch.uint8)).shape == (2, 2)
    with pytest.raises(ValueError, match="multiple of 8"):
        pack_int4(torch.zeros(2, 12, dtype=torch.uint8))

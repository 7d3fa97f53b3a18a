"""Lesson 15, kernel track (optional): the int4 GEMV in Triton. Run: pytest exercises/lesson15

Without a GPU these run the kernel in Triton's interpreter on CPU tensors (small layers);
without Triton they skip, saying how to install it. The oracle is ``x @ dequant(W).T`` in
float32, with the weight dequantized here from its integers (not by the code under test).
"""

import pytest
import torch

from course.testing import assert_close
from course.triton_track import import_triton, kernel_device

triton = import_triton()
DEVICE = kernel_device()

from exercises.lesson15.triton_w4a16 import w4a16_gemv_triton  # noqa: E402

# Most tests pass pack_int4's layout: the wrapper re-packs it with repack_for_gemv, which uses
# your pack_int4 and unpack_int4. test_repacked_layout builds the kernel's layout itself.


def pack_words(q):
    """Eight nibbles per int32 along K, entry 8i + j in bits 4j..4j+3 (lesson 15's layout),
    built here so that these tests need only the kernel."""
    words = (q.to(torch.int64).view(q.shape[0], -1, 8) << torch.arange(0, 32, 4)).sum(dim=-1)
    return torch.where(words >= 2**31, words - 2**32, words).to(torch.int32)


def layer(n, k, group_size, seed=0, rows=1, bf16_scales=False):
    gen = torch.Generator().manual_seed(seed)
    q = torch.randint(0, 16, (n, k), generator=gen, dtype=torch.uint8)
    g = k if group_size == -1 else group_size
    scales = torch.rand(n, k // g, generator=gen) + 0.05
    if bf16_scales:                      # values a BF16 tensor holds exactly
        scales = scales.bfloat16().float()
    zeros = torch.randint(0, 16, (n, k // g), generator=gen).float()
    deq = ((q.float().view(n, -1, g) - zeros[..., None]) * scales[..., None]).view(n, k)
    x = torch.randn(rows, k, generator=gen)
    return (x.to(DEVICE), pack_words(q).to(DEVICE), scales.to(DEVICE), zeros.to(DEVICE),
            deq.to(DEVICE))


def test_batch_one_float32():
    x, packed, scales, zeros, deq = layer(48, 256, 64)
    got = w4a16_gemv_triton(x, packed, scales, zeros, 64, block_n=16, block_k=64)
    assert got.shape == (1, 48) and got.dtype == torch.float32
    assert_close(got, x @ deq.T, atol=1e-3, rtol=1e-4, what="w4a16_gemv_triton, 48 x 256, g64",
                 reference="x @ dequant(W).T")


def test_every_nibble_value_in_every_position():
    """Each row holds 0..15 in every nibble position: nibble order and the sign bit of the top
    nibble (a word with a top nibble >= 8 is a negative int32)."""
    n, k = 16, 128
    q = ((torch.arange(n)[:, None] + torch.arange(k)[None, :]) % 16).to(torch.uint8)
    scales = torch.ones(n, 1)
    zeros = torch.zeros(n, 1)
    x = torch.zeros(1, k)
    for j in (0, 7):                     # x picks out one entry per word position 0 and 7
        x.zero_()
        x[0, j::8] = 1.0
        want = q.float()[:, j::8].sum(dim=1, keepdim=True).T
        got = w4a16_gemv_triton(x.to(DEVICE), pack_words(q).to(DEVICE), scales.to(DEVICE),
                                zeros.to(DEVICE), -1, block_n=8, block_k=64)
        assert_close(got, want.to(DEVICE), atol=1e-4, rtol=0,
                     what=f"the sum of nibble {j} of every word", reference="the integers")


def test_tiles_smaller_and_larger_than_a_group_and_rows_not_a_multiple():
    x, packed, scales, zeros, deq = layer(40, 512, 128, seed=1, rows=2)
    for block_k in (32, 256):            # inside one group; spanning two groups
        got = w4a16_gemv_triton(x, packed, scales, zeros, 128, block_n=16, block_k=block_k)
        assert_close(got, x @ deq.T, atol=1e-3, rtol=1e-4,
                     what=f"w4a16_gemv_triton, N = 40 with block_n 16, block_k {block_k}",
                     reference="x @ dequant(W).T")


def test_repacked_layout():
    """The kernel's own layout, built here: in each run of 4 words (32 entries), nibble j of
    word v holds entry 4j + v. x is non-zero at the entries of nibble 3 only."""
    n, k = 8, 128
    q = ((torch.arange(n)[:, None] * 5 + torch.arange(k)[None, :] * 3) % 16).to(torch.uint8)
    words = pack_words(q.view(n, k // 32, 8, 4).transpose(-1, -2).reshape(n, k))
    x = torch.zeros(1, k)
    at = torch.arange(k).view(-1, 8, 4)[:, 3, :].reshape(-1)   # entries 12..15 of each run
    x[0, at] = torch.arange(1.0, at.numel() + 1)
    got = w4a16_gemv_triton(x.to(DEVICE), words.to(DEVICE), torch.ones(n, 1).to(DEVICE),
                            torch.zeros(n, 1).to(DEVICE), -1, repacked=True, block_n=8)
    assert_close(got, (x @ q.float().T).to(DEVICE), atol=1e-3, rtol=0,
                 what="w4a16_gemv_triton on the re-packed layout, x at nibble 3 only",
                 reference="x @ q.T")


def test_bf16_scales_and_zeros_read_as_they_are():
    """Scales and zeros kept in BF16 (what a layer stores, and what torch's int4 kernel reads:
    half the bytes of float32) give the product with those values, in float32 arithmetic."""
    x, packed, scales, zeros, deq = layer(24, 256, 128, seed=3, bf16_scales=True)
    got = w4a16_gemv_triton(x, packed, scales.bfloat16(), zeros.bfloat16(), 128, block_n=8,
                            block_k=128)
    assert_close(got, x @ deq.T, atol=1e-3, rtol=1e-4,
                 what="w4a16_gemv_triton with BF16 scales and zeros", reference="float32")
    with pytest.raises(ValueError, match="scales must be float"):
        w4a16_gemv_triton(x, packed, scales.to(torch.int32), zeros, 128)


def test_split_k_and_bf16_activations():
    x, packed, scales, zeros, deq = layer(32, 512, 64, seed=2)
    got = w4a16_gemv_triton(x.bfloat16(), packed, scales, zeros, 64, block_n=8, block_k=64,
                            split_k=3)
    assert got.dtype == torch.bfloat16
    assert_close(got.float(), x.bfloat16().float() @ deq.T, atol=0.5, rtol=2e-2,
                 what="w4a16_gemv_triton in bf16 with 3 K splits", reference="float32")
    # bad input is refused in plain words
    with pytest.raises(ValueError, match="K = 512"):
        w4a16_gemv_triton(x[:, :64], packed, scales, zeros, 64)
    with pytest.raises(ValueError, match="block_k"):
        w4a16_gemv_triton(x, packed, scales, zeros, 64, block_k=48)

"""Hidden grader, lesson 15 kernel track: the Triton int4 GEMV, run by Triton's interpreter on
the CPU (compiled on a GPU). The oracle is x @ W.T with W formed here in float64 from the
integers, scales and zeros; the packed words, plain and re-packed for the kernel, are built here
too, so only the kernel is graded (not pack_int4 or unpack_int4, which repack_for_gemv uses).
"""

import pytest
import torch

from course.testing import assert_close
from course.triton_track import import_triton, kernel_device

triton = import_triton()
DEVICE = kernel_device()

from exercises.lesson15.triton_w4a16 import w4a16_gemv_triton  # noqa: E402


def pack_words(q):
    words = (q.to(torch.int64).view(q.shape[0], -1, 8) << torch.arange(0, 32, 4)).sum(dim=-1)
    return torch.where(words >= 2**31, words - 2**32, words).to(torch.int32)


def run_length(k, g):
    """Words per run of the kernel's layout, from the lesson text: 4 if runs of 32 entries
    tile K and the group, else 2 (16 entries), else 1."""
    return next((v for v in (4, 2) if k % (8 * v) == 0 and g % (8 * v) == 0), 1)


def kernel_words(q, g):
    """The kernel's layout, built from the integers: nibble j of word v of each run of V words
    holds entry V j + v of the run."""
    n, k = q.shape
    v = run_length(k, g)
    return pack_words(q.view(n, k // (8 * v), 8, v).transpose(-1, -2).reshape(n, k))


def case(seed, n, k, group_size, rows=1, q=None, scale_dtype=None):
    gen = torch.Generator().manual_seed(seed)
    g = k if group_size == -1 else group_size
    if q is None:
        q = torch.randint(0, 16, (n, k), generator=gen, dtype=torch.uint8)
    scales = torch.rand(n, k // g, generator=gen) * 0.5 + 0.3    # never 1: a missing scale shows
    if scale_dtype is not None:                  # values that dtype holds exactly
        scales = scales.to(scale_dtype).float()
    zeros = torch.randint(0, 16, (n, k // g), generator=gen).float()
    w = ((q.double().view(n, -1, g) - zeros.double()[..., None])
         * scales.double()[..., None]).view(n, k)
    x = torch.randn(rows, k, generator=gen, dtype=torch.float64)
    return x, kernel_words(q, g), scales, zeros, w


def run(x, packed, scales, zeros, g, dtype=torch.float32, **launch):
    """The kernel on a weight already in its layout (repacked=True)."""
    return w4a16_gemv_triton(x.to(dtype).to(DEVICE), packed.to(DEVICE), scales.to(DEVICE),
                             zeros.to(DEVICE), g, repacked=True, **launch)


@pytest.mark.points(3)
@pytest.mark.parametrize("n,k,g,block_n,block_k,rows", [
    (40, 256, 64, 16, 32, 1),       # tiles inside a group; N not a multiple of block_n
    (24, 512, 64, 8, 256, 3),       # tiles of four whole groups; rows of x that differ
    (16, 264, -1, 8, 64, 1),        # one group per row, K not a multiple of block_k (runs of 8)
    (24, 1024, 128, 8, 512, 1),     # runs of 32 entries, two groups a tile
    (12, 192, 48, 4, 64, 1),        # groups of 48: runs of 16 entries
    (10, 96, 32, 4, 64, 2),         # runs of 32 and a last tile half full (masked K)
    (20, 240, 24, 8, 32, 1),        # groups of 24: tiles and groups do not nest
    (33, 128, 32, 4, 128, 2),
])
def test_matches_the_float64_product(n, k, g, block_n, block_k, rows):
    """Bugs: the group index taken from the word index or the tile index instead of the entry
    (wrong scale past the first group), the scale or the zero point applied twice or not at all,
    the zero added instead of subtracted, rows past N or a last partial K tile not masked, every
    row of x given the first row's result."""
    x, packed, scales, zeros, w = case(n + k, n, k, g, rows)
    got = run(x, packed, scales, zeros, g, block_n=block_n, block_k=block_k)
    assert got.shape == (rows, n) and got.dtype == torch.float32, (
        f"expected float32 {(rows, n)}, got {got.dtype} {tuple(got.shape)}")
    assert_close(got.double().cpu(), x @ w.T, atol=1e-3, rtol=1e-4,
                 what=f"w4a16_gemv_triton {n} x {k}, group {g}, block_n {block_n}, "
                      f"block_k {block_k}", reference="x @ W.T in float64")


@pytest.mark.points(1)
@pytest.mark.parametrize("scale_dtype", [torch.float16, torch.bfloat16], ids=str)
def test_16_bit_scales_and_zeros(scale_dtype):
    """Bugs: scales and zeros that arrive in 16 bits (as a layer keeps them, and as the GPU
    grader passes them) used in 16-bit arithmetic: s z or s (16 + z) rounded to 11 or 8 bits
    before it meets the float32 sums; a masked last tile or rows past N reading them wrongly.
    x is float32, so the product must be as exact as with float32 scales."""
    x, packed, scales, zeros, w = case(17, 20, 160, 32, rows=2, scale_dtype=scale_dtype)
    got = run(x, packed, scales.to(scale_dtype), zeros.to(scale_dtype), 32, block_n=8,
              block_k=64)
    assert_close(got.double().cpu(), x @ w.T, atol=1e-3, rtol=1e-4,
                 what=f"w4a16_gemv_triton with {scale_dtype} scales and zeros (20 x 160, "
                      "groups of 32, a half-full last tile)",
                 reference="x @ W.T in float64 with the same scales: convert them to float32 "
                           "in the kernel before any arithmetic")


@pytest.mark.points(2)
def test_every_nibble_value_at_every_position():
    """Bugs: nibbles read in the wrong order inside a word, the top nibble taken with an
    arithmetic shift and no mask (a word whose top nibble is 8..15 is a negative int32), the
    x of a nibble read at pack_int4's place instead of the re-packed one, the 1 + q / 16 float
    built from the wrong bits."""
    n, k = 16, 128
    q = ((torch.arange(n)[:, None] * 3 + torch.arange(k)[None, :] * 7) % 16).to(torch.uint8)
    assert q.view(n, -1, 8)[:, :, 7].max() == 15
    x, packed, scales, zeros, w = case(5, n, k, 32, q=q)
    for j in range(8):
        # x non-zero where nibble j of a word sits in the kernel's layout (entry 4 j + v of
        # each run of 32), with a different value for each
        xj = torch.zeros(1, k, dtype=torch.float64)
        at = (torch.arange(k).view(-1, 8, 4)[:, j, :]).reshape(-1)
        xj[0, at] = 1.0 + torch.arange(at.numel(), dtype=torch.float64) / 16
        got = run(xj, packed, scales, zeros, 32, block_n=8, block_k=64)
        assert_close(got.double().cpu(), xj @ w.T, atol=1e-3, rtol=1e-5,
                     what=f"w4a16_gemv_triton, x non-zero only at nibble {j} of each word",
                     reference="x @ W.T in float64")


@pytest.mark.points(2)
@pytest.mark.parametrize("split_k", [2, 3])
def test_split_k_adds_every_partial_sum(split_k):
    """Bugs: split-K partial sums stored instead of added (only one split's share survives),
    K ranges of the splits that overlap or leave a gap."""
    x, packed, scales, zeros, w = case(11, 24, 512, 64)
    got = run(x, packed, scales, zeros, 64, block_n=8, block_k=64, split_k=split_k)
    assert_close(got.double().cpu(), x @ w.T, atol=1e-3, rtol=1e-4,
                 what=f"w4a16_gemv_triton with split_k={split_k}", reference="x @ W.T in float64")


@pytest.mark.points(1)
def test_plain_pack_int4_weight_is_repacked_by_the_wrapper():
    """Bugs: the wrapper passing pack_int4's words to a kernel that reads the re-packed layout
    (repacked=False must re-pack first), the runs taken from the wrong axis."""
    x, _, scales, zeros, w = case(13, 16, 256, 64, rows=2)
    gen = torch.Generator().manual_seed(13)
    q = torch.randint(0, 16, (16, 256), generator=gen, dtype=torch.uint8)
    got = w4a16_gemv_triton(x.float().to(DEVICE), pack_words(q).to(DEVICE), scales.to(DEVICE),
                            zeros.to(DEVICE), 64)
    assert_close(got.double().cpu(), x @ w.T, atol=1e-3, rtol=1e-4,
                 what="w4a16_gemv_triton on pack_int4's layout (re-packed inside)",
                 reference="x @ W.T in float64")


@pytest.mark.points(1)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_activations_and_leading_dims(dtype):
    """Bugs: a result not in x's dtype, leading dims of x flattened in the output, x read as
    float32 from a 16-bit buffer."""
    x, packed, scales, zeros, w = case(7, 32, 256, 128, rows=2)
    x3 = x.view(2, 1, 256).to(dtype)
    got = w4a16_gemv_triton(x3.to(DEVICE), packed.to(DEVICE), scales.to(DEVICE),
                            zeros.to(DEVICE), 128, repacked=True)
    assert got.shape == (2, 1, 32) and got.dtype == dtype, (
        f"expected {dtype} (2, 1, 32), got {got.dtype} {tuple(got.shape)}")
    assert_close(got.double().cpu(), x3.double() @ w.T, atol=0.25, rtol=1e-2,
                 what=f"w4a16_gemv_triton with {dtype} activations", reference="float64")

"""Hidden grader, lesson 15: the W4A16 matmul, its cost, its bytes and torch's int4 layout."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course.counting import count_flops
from course.testing import assert_close
from exercises.lesson15.int4_pack import pack_int4
from exercises.lesson15.w4a16 import (W4Linear, int4pack_mm, tinygemm_nibbles,
                                      tinygemm_scales_and_zeros, w4_bytes, w4a16_matmul)


def case(seed, n, k, g):
    """Random integers, scales and zeros, and the weight they stand for (float64)."""
    gen = torch.Generator().manual_seed(seed)
    q = torch.randint(0, 16, (n, k), generator=gen, dtype=torch.uint8)
    scales = torch.rand(n, k // g, generator=gen) * 0.2 + 0.01
    zeros = torch.randint(0, 16, (n, k // g), generator=gen).float()
    w = (q.double() - zeros.double().repeat_interleave(g, 1)) * scales.double().repeat_interleave(g, 1)
    return q, scales, zeros, w


@pytest.mark.points(3)
@settings(max_examples=25)
@given(seed=st.integers(0, 2**16), lead=st.lists(st.integers(1, 3), min_size=1, max_size=3),
       n=st.integers(1, 24), words=st.sampled_from([2, 4, 8]), g=st.sampled_from([8, 16, -1]),
       dtype=st.sampled_from([torch.float32, torch.bfloat16, torch.float16]))
def test_matmul_equals_x_times_dequantized_weight(seed, lead, n, words, g, dtype):
    """Bugs: scales tiled across groups (repeat, not repeat_interleave), the zero point added
    instead of subtracted, the weight not transposed, leading dims of x flattened in the output,
    a result not in x's dtype, group_size=-1 not handled. Rows of x all differ."""
    k = 8 * words
    gs = k if g == -1 else g
    q, scales, zeros, w = case(seed, n, k, gs)
    x = torch.randn(*lead, k, generator=torch.Generator().manual_seed(seed + 1)).to(dtype)
    y = w4a16_matmul(x, pack_int4(q), scales, zeros, g)
    want = x.double() @ w.T
    assert y.shape == (*lead, n) and y.dtype == dtype, (
        f"x {tuple(x.shape)} {dtype} against N = {n} must give {(*lead, n)} {dtype}; got "
        f"{tuple(y.shape)} {y.dtype}")
    tol = 1e-4 if dtype == torch.float32 else 3e-2
    scale = want.abs().max().item() + 1.0
    assert_close(y.double(), want, atol=tol * scale, what=f"w4a16_matmul ({dtype})",
                 reference="x @ dequant(W).T in float64")


@pytest.mark.points(1)
def test_matmul_is_one_matmul():
    """Bug: the zero point handled with a second full matmul (x @ (q s).T - x @ (z s).T) or the
    weight dequantized through a matmul: FLOPs must be 2 x tokens x N x K, one matmul."""
    q, scales, zeros, _ = case(0, 32, 128, 32)
    x = torch.randn(4, 128)
    flops = count_flops(w4a16_matmul, x, pack_int4(q), scales, zeros, 32)
    assert flops == 2 * 4 * 32 * 128, f"w4a16_matmul did {flops:,} FLOPs; one matmul is {2 * 4 * 32 * 128:,}"


@pytest.mark.points(2)
@settings(max_examples=30)
@given(n=st.integers(1, 8192), words=st.integers(1, 2048), g=st.sampled_from([8, 32, 128, -1]),
       scale_bytes=st.sampled_from([1, 2, 4]), zero_bytes=st.sampled_from([0, 1, 2, 4]))
def test_bytes_formula(n, words, g, scale_bytes, zero_bytes):
    """Bugs: bits counted as bytes (4 bytes per weight), the zero's width ignored (scale_bytes
    used twice), one scale per group of the whole matrix instead of per row, group_size=-1 not
    read as one group per row."""
    k = 8 * words * (1 if g == -1 else g)
    groups = 1 if g == -1 else k // g
    want = n * k // 2 + n * groups * (scale_bytes + zero_bytes)
    got = w4_bytes(n, k, g, scale_bytes, zero_bytes)
    assert got == want, (f"w4_bytes({n}, {k}, {g}, {scale_bytes}, {zero_bytes}) = {got:,}; "
                         f"expected {want:,} (N K / 2 + groups x bytes)")


@pytest.mark.points(1)
def test_layer_bytes_match_its_tensors():
    """Bug: a byte count that is not what the layer stores: the packed int32 weight must hold
    N x K / 2 bytes, and nbytes(4, 4) must equal the bytes of its tensors (float32 scales and
    zeros)."""
    lin = W4Linear.from_weight(torch.randn(40, 256), group_size=64)
    assert lin.packed.nbytes == 40 * 256 // 2
    assert lin.nbytes(4, 4) == lin.packed.nbytes + lin.scales.nbytes + lin.zeros.nbytes


@pytest.mark.points(2)
@settings(max_examples=20)
@given(seed=st.integers(0, 2**16), n=st.integers(1, 6), words=st.integers(1, 4),
       dtype=st.sampled_from([torch.bfloat16, torch.float16, torch.float32]))
def test_tinygemm_conversions_match_formula(seed, n, words, dtype):
    """Bugs: the pair order of torch's uint8 layout swapped (our first nibble must go high),
    a plain copy of our int32 bytes, the float zero with the wrong sign ((zero - 8) x scale) or
    not multiplied by the scale, groups not moved first, the dtype argument ignored."""
    k = 8 * words
    q, scales, zeros, _ = case(seed, n, k, 8)
    pairs = tinygemm_nibbles(pack_int4(q))
    want = (q[:, 0::2].int() * 16 + q[:, 1::2].int()).to(torch.uint8)
    assert pairs.dtype == torch.uint8 and torch.equal(pairs, want), "tinygemm_nibbles layout"
    sz = tinygemm_scales_and_zeros(scales, zeros, 4, dtype)
    assert sz.dtype == dtype and sz.shape == (words, n, 2) and sz.is_contiguous(), (
        f"expected contiguous {dtype} {(words, n, 2)}, got {sz.dtype} {tuple(sz.shape)}")
    want_sz = torch.stack([scales, (8 - zeros) * scales], -1).transpose(0, 1).to(dtype)
    assert torch.equal(sz, want_sz), "scales_and_zeros must be [groups, N, (scale, (8 - zero) x scale)]"


@pytest.mark.points(2)
@pytest.mark.parametrize("g", [32, 128])
@pytest.mark.parametrize("symmetric", [False, True])
def test_torch_cpu_int4_kernel_on_your_layer(g, symmetric):
    """Bugs: anything in the chain from quantize_rtn to scales_and_zeros that torch's own int4
    kernel reads differently from your dequantization. Torch's CPU int4 kernel on the
    converted layer must equal x @ dequant(W).T."""
    w = torch.randn(32, 256, generator=torch.Generator().manual_seed(g))
    lin = W4Linear.from_weight(w, group_size=g, symmetric=symmetric)
    weight, sz = lin.int4pack(inner_k_tiles=2, dtype=torch.float32)
    x = torch.randn(5, 256, generator=torch.Generator().manual_seed(1))
    assert_close(int4pack_mm(x, weight, sz, g), x @ lin.dequantize().T, atol=1e-3, rtol=1e-4,
                 what="torch's CPU int4 kernel on the layer", reference="x @ dequant(W).T")
    assert_close(lin(x), x @ lin.dequantize().T, atol=1e-4, rtol=1e-5, what="W4Linear(x)",
                 reference="x @ dequant(W).T")

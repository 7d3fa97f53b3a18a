"""Lesson 15, part 3: the W4A16 matmul and torch's int4 layout. Run: pytest exercises/lesson15"""

import torch

from course.testing import assert_close
from exercises.lesson15.int4_pack import pack_int4
from exercises.lesson15.w4a16 import (W4Linear, int4pack_mm, tinygemm_nibbles,
                                      tinygemm_scales_and_zeros, w4_bytes, w4a16_matmul)


def layer(seed=0, n=48, k=256, group_size=64):
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(n, k, generator=gen)
    q = torch.randint(0, 16, (n, k), generator=gen, dtype=torch.uint8)
    scales = torch.rand(n, k // group_size, generator=gen) + 0.05
    zeros = torch.randint(0, 16, (n, k // group_size), generator=gen).float()
    deq = ((q.float().view(n, -1, group_size) - zeros[..., None]) * scales[..., None]).view(n, k)
    return w, pack_int4(q), scales, zeros, deq


def test_matmul_equals_x_times_dequantized_weight():
    _, packed, scales, zeros, deq = layer()
    x = torch.randn(5, 256, generator=torch.Generator().manual_seed(1))
    assert_close(w4a16_matmul(x, packed, scales, zeros, 64), x @ deq.T, atol=1e-4, rtol=1e-5,
                 what="w4a16_matmul in float32", reference="x @ dequant(W).T")


def test_bf16_activations_any_batch_shape():
    _, packed, scales, zeros, deq = layer()
    x = torch.randn(2, 3, 256, generator=torch.Generator().manual_seed(2)).bfloat16()
    y = w4a16_matmul(x, packed, scales, zeros, 64)
    assert y.dtype == torch.bfloat16 and y.shape == (2, 3, 48)
    assert_close(y.float(), x.float() @ deq.T, atol=0.5, rtol=2e-2,
                 what="w4a16_matmul in bf16", reference="x @ dequant(W).T in float32")


def test_bytes_of_a_4096_square_weight():
    assert w4_bytes(4096, 4096, 128) == 4096 * 4096 // 2 + 4096 * 32 * 4
    assert w4_bytes(4096, 4096, -1, 4, 4) == 4096 * 4096 // 2 + 4096 * 8


def test_tinygemm_layout():
    packed = pack_int4(torch.arange(16, dtype=torch.uint8)[None])
    assert tinygemm_nibbles(packed).tolist() == [[0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF]]
    sz = tinygemm_scales_and_zeros(torch.tensor([[2.0, 0.5]]), torch.tensor([[3.0, 8.0]]))
    assert sz.shape == (2, 1, 2) and sz.dtype == torch.bfloat16, f"got {sz.dtype} {tuple(sz.shape)}"
    assert sz.float().tolist() == [[[2.0, 10.0]], [[0.5, 0.0]]], "zero_f = (8 - zero) * scale"


def test_torch_int4_kernel_on_the_cpu_matches():
    w, *_ = layer()
    lin = W4Linear.from_weight(w, group_size=64)
    weight, sz = lin.int4pack(inner_k_tiles=2, dtype=torch.float32)
    x = torch.randn(3, 256, generator=torch.Generator().manual_seed(3))
    assert_close(int4pack_mm(x, weight, sz, 64), x @ lin.dequantize().T, atol=1e-3, rtol=1e-4,
                 what="torch's int4 kernel on your layer", reference="x @ dequant(W).T")

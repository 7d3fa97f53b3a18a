"""Lesson 08, part 1: FLOPs, bytes and arithmetic intensity. Run: pytest exercises/lesson08

The references are independent of the code under test: torch's own FLOP counter on real ops
(course.counting.count_flops), the bytes of the tensors themselves, and identities derived
by hand in the tests."""

import pytest
import torch

from course.counting import count_flops
from course.traffic import count_traffic
from exercises.lesson08.intensity import attention_cost, elementwise_cost, matmul_cost


def test_matmul_flops_and_bytes_of_a_real_matmul():
    a, b = torch.randn(5, 7), torch.randn(7, 3)
    cost = matmul_cost(5, 7, 3, 4, 4, 4)
    assert cost.flops == count_flops(torch.mm, a, b) == 2 * 5 * 7 * 3
    c = a @ b
    assert cost.bytes == a.nbytes + b.nbytes + c.nbytes  # each operand once, the output once


def test_decode_gemv_tends_to_one_flop_per_byte_at_16_bits():
    # One token through a d x d weight: 2 d^2 FLOPs over 2 d^2 + 4 d bytes -> 1 as d grows.
    previous = 0.0
    for d in (256, 1024, 4096, 16384):
        ai = matmul_cost(1, d, d, 2, 2, 2).intensity
        assert ai == pytest.approx(2 * d * d / (2 * d * d + 4 * d), rel=1e-12)
        assert previous < ai < 1.0
        previous = ai
    assert matmul_cost(1, 65536, 65536, 2, 2, 2).intensity > 0.9999
    # 4-bit weights (half a byte each) double it; fp32 weights halve it
    assert matmul_cost(1, 65536, 65536, 2, 0.5, 2).intensity == pytest.approx(4, rel=1e-3)
    assert matmul_cost(1, 65536, 65536, 4, 4, 4).intensity == pytest.approx(0.5, rel=1e-3)


def test_prefill_intensity_identity():
    # S tokens through a d x d weight at 2 bytes: 2 S d^2 FLOPs over 2 (S d + d^2 + S d) bytes,
    # so intensity = S d / (2 S + d): S for small S (weights dominate), d / 2 for huge S.
    for S, d in [(1, 4096), (64, 4096), (512, 4096), (4096, 4096), (100, 768)]:
        assert matmul_cost(S, d, d, 2, 2, 2).intensity == pytest.approx(S * d / (2 * S + d))


def test_attention_flops_match_torch_and_fused_reads_only_qkvo():
    q, k, v = torch.randn(2, 3, 4, 8), torch.randn(2, 3, 6, 8), torch.randn(2, 3, 6, 8)
    unfused = lambda: torch.softmax(q @ k.transpose(-1, -2), dim=-1) @ v  # noqa: E731
    fused = attention_cost(2, 3, 4, 6, 8, 4, fused=True)
    assert fused.flops == count_flops(unfused) == 4 * 2 * 3 * 4 * 6 * 8
    assert fused.bytes == q.nbytes + k.nbytes + v.nbytes + q.nbytes  # O is the size of Q
    assert attention_cost(2, 3, 4, 6, 8, 4, fused=False).bytes == count_traffic(unfused).total_bytes


def test_decode_attention_is_about_one_flop_per_byte_fused_or_not():
    # one query over 4096 keys, d_head 128, bf16: 4 S d FLOPs over about 4 S d bytes
    fused = attention_cost(1, 32, 1, 4096, 128, 2, fused=True)
    unfused = attention_cost(1, 32, 1, 4096, 128, 2, fused=False)
    assert 0.99 < fused.intensity < 1.0
    assert 0.9 < unfused.intensity < fused.intensity


def test_elementwise_chain_unfused_and_fused():
    x, w, b = torch.randn(100), torch.randn(100), torch.randn(100)
    chain = lambda: torch.sigmoid(x * w + b).neg()  # noqa: E731  mul, add, sigmoid, neg
    unfused = elementwise_cost(100, [2, 2, 1, 1], 4, fused=False)
    assert unfused.bytes == count_traffic(chain).total_bytes == (6 + 4) * 400
    assert unfused.flops == 4 * 100
    fused = elementwise_cost(100, [2, 2, 1, 1], 4, fused=True)
    assert fused.bytes == x.nbytes + w.nbytes + b.nbytes + x.nbytes  # three inputs, one output
    assert fused.flops == unfused.flops


def test_bad_sizes_are_refused():
    assert matmul_cost(1, 1, 1, 2, 2, 2) == (2, 6)
    for bad in [(-1, 4, 4, 2, 2, 2), (1, 0, 4, 2, 2, 2), (1, 4, 4, 2, 0, 2), (1, 4, 4, 2, 2, -2)]:
        with pytest.raises(ValueError):
            matmul_cost(*bad)
    assert attention_cost(1, 1, 1, 1, 1, 2, fused=True) == (4, 8)
    for bad in [(1, 1, 0, 4, 8, 2), (1, 1, 1, 4, 8, 0), (1, -2, 1, 4, 8, 2)]:
        with pytest.raises(ValueError):
            attention_cost(*bad, fused=False)
    assert elementwise_cost(1, [1], 2, fused=True) == (1, 4)
    for ops in ([], [1, 0]):
        with pytest.raises(ValueError):
            elementwise_cost(10, ops, 2, fused=True)
    with pytest.raises(ValueError):
        elementwise_cost(10, [1], 0, fused=True)

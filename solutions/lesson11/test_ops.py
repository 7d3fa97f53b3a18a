"""Lesson 11, part 2: counting the FLOPs and bytes of GEMV, GEMM, softmax and attention.
Run: pytest exercises/lesson11"""

import pytest

from exercises.lesson11.ops import gemm_op, sdpa_op, softmax_op


def test_gemm_counts():
    op = gemm_op(8192, 8192, 8192, "bf16")
    assert op.flops == 2 * 8192**3, f"FLOPs {op.flops}: a multiply-add is 2 FLOPs, 2*m*n*k"
    assert op.nbytes == 3 * 8192**2 * 2, (
        f"bytes {op.nbytes}: read A [m,k] and B [k,n], write C [m,n], 2 bytes each in bf16")
    assert op.dtype == "bf16" and op.name == "gemm 8192x8192x8192"


def test_a_gemv_does_about_one_flop_per_byte():
    op = gemm_op(1, 4096, 4096, "bf16")
    assert op.flops == 2 * 4096 * 4096
    assert op.nbytes == (4096 + 4096 * 4096 + 4096) * 2
    assert 0.99 < op.intensity < 1.0


def test_softmax_and_decode_attention_counts():
    sm = softmax_op(4, 1000, "bf16")
    assert (sm.flops, sm.nbytes) == (5 * 4000, 2 * 4000 * 2), \
        "softmax: 5 FLOPs per element; read once and write once, 2 bytes each"
    at = sdpa_op(2, 8, 1, 4096, 128, "bf16")
    assert at.flops == 4 * 2 * 8 * 1 * 4096 * 128, "two matmuls: 4 * b * h * q_len * kv_len * d"
    assert at.nbytes == 2 * 8 * 128 * (2 * 1 + 2 * 4096) * 2, "read q, k, v; write the output"


def test_fp32_elements_take_four_bytes():
    assert gemm_op(16, 16, 16, "fp32").nbytes == 3 * 16 * 16 * 4
    with pytest.raises(ValueError):
        gemm_op(0, 16, 16)

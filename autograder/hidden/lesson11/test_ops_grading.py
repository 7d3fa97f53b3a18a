"""Hidden grader, lesson 11: FLOPs and DRAM bytes of GEMM, softmax and attention.

References: the minimum-traffic formulas of the lesson, written out here: every input read and
every output written once, at the dtype's element size from torch (``element_size()``).
"""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from exercises.lesson11.ops import gemm_op, sdpa_op, softmax_op

DTYPES = {"bf16": 2, "fp32": 4, "fp8": 1, torch.float16: 2, torch.float32: 4}
sizes = st.integers(1, 300)


@pytest.mark.points(2)
@settings(max_examples=40)
@given(m=sizes, n=sizes, k=sizes, dtype=st.sampled_from(list(DTYPES)))
def test_gemm_counts_any_shape_and_dtype(m, n, k, dtype):
    """Bugs: 2 bytes per element whatever the dtype (an FP32 GEMM then seems twice as intense
    as it is, an FP8 one half); the output not written; m * n * k FLOPs (a multiply-add is 2)."""
    op = gemm_op(m, n, k, dtype)
    size = DTYPES[dtype]
    assert op.flops == 2 * m * n * k, f"gemm_op({m}, {n}, {k}): FLOPs {op.flops}, expected 2mnk"
    assert op.nbytes == (m * k + k * n + m * n) * size, (
        f"gemm_op({m}, {n}, {k}, {dtype}): {op.nbytes} bytes, expected (mk + kn + mn) x {size}")


@pytest.mark.points(1)
@settings(max_examples=30)
@given(rows=sizes, cols=sizes, dtype=st.sampled_from(list(DTYPES)))
def test_softmax_counts(rows, cols, dtype):
    """Bugs: bytes read only (the output is written too); the element size ignored."""
    op = softmax_op(rows, cols, dtype)
    assert op.flops == 5 * rows * cols, f"softmax FLOPs {op.flops}, expected 5 per element"
    assert op.nbytes == 2 * rows * cols * DTYPES[dtype], \
        f"softmax_op({rows}, {cols}, {dtype}): {op.nbytes} bytes, expected read + write"


@pytest.mark.points(2)
@settings(max_examples=40)
@given(b=st.integers(1, 4), h=st.integers(1, 8), q=st.integers(1, 64), kv=st.integers(1, 300),
       d=st.sampled_from([16, 64, 128]), dtype=st.sampled_from(list(DTYPES)))
def test_sdpa_counts(b, h, q, kv, d, dtype):
    """Bugs: only K and V counted (a prefill's q and output are as large as K and V); q_len and
    kv_len swapped; the T x T scores counted as DRAM traffic (a fused kernel keeps them on
    chip); the softmax's FLOPs added."""
    op = sdpa_op(b, h, q, kv, d, dtype)
    assert op.flops == 4 * b * h * q * kv * d, f"attention FLOPs {op.flops}, expected 4bhqkd"
    want = b * h * d * (2 * q + 2 * kv) * DTYPES[dtype]
    assert op.nbytes == want, (f"sdpa_op({b}, {h}, {q}, {kv}, {d}, {dtype}): {op.nbytes} bytes, "
                               f"expected q, k, v read and the output written: {want}")

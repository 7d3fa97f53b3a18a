"""Counting the FLOPs and DRAM bytes of the operators of a transformer, and timing them.

The counts are the minimum traffic: every input read once from DRAM and every output written
once, nothing re-read (a kernel whose tiles fit on chip achieves that; lesson text explains when
a real kernel moves more). FLOPs count a multiply-add as 2.

Read: learning/lesson11.md#counting-an-operator
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from course.bench import cuda_time
from .roofline import OpSpec

# Softmax FLOPs per element: max, subtract, exp, sum, divide. A convention (an exp costs more
# than an add on any hardware), stated so that every count in the course agrees.
SOFTMAX_FLOPS_PER_ELEMENT = 5

# The operators lesson 11 measures on a GPU: (name, kind, shape), all in bf16.
#   gemm: (m, n, k) for [m, k] @ [k, n]; m = 1 is a GEMV (one decode token through a weight)
#   softmax: (rows, cols) over the last axis
#   sdpa: (batch, heads, q_len, kv_len, d_head), no mask; q_len = 1 is a decode step
SUITE = (
    ("gemv 1x8192x8192", "gemm", (1, 8192, 8192)),
    ("gemm 1024^3", "gemm", (1024, 1024, 1024)),
    ("gemm 4096^3", "gemm", (4096, 4096, 4096)),
    ("gemm 8192^3", "gemm", (8192, 8192, 8192)),
    ("softmax 65536x1024", "softmax", (65536, 1024)),
    ("sdpa decode 64x32x4096", "sdpa", (64, 32, 1, 4096, 128)),
)


def bytes_per_element(dtype: object) -> int:
    """Bytes of one element: 2 for torch.bfloat16 or "bf16", 4 for float32, 1 for fp8."""
    names = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32,
             "fp8": torch.float8_e4m3fn, "int8": torch.int8, "tf32": torch.float32}
    if isinstance(dtype, str):
        from hardware_fixtures.spec import canonical_dtype
        if canonical_dtype(dtype) not in names:
            raise ValueError(f"unknown dtype {dtype!r}; use one of {sorted(names)} "
                             "or a torch dtype")
        dtype = names[canonical_dtype(dtype)]
    return torch.empty((), dtype=dtype).element_size()


def _check_sizes(**sizes: int) -> None:
    bad = {k: v for k, v in sizes.items() if isinstance(v, bool) or not isinstance(v, int) or v < 1}
    if bad:
        raise ValueError(f"sizes must be whole numbers >= 1, got {bad}")


def gemm_op(m: int, n: int, k: int, dtype: object = "bf16") -> OpSpec:
    """``[m, k] @ [k, n] -> [m, n]``, every matrix in ``dtype``.

    Returns an ``OpSpec`` named ``f"gemm {m}x{n}x{k}"`` with ``flops = 2 * m * n * k`` and
    ``nbytes`` the two inputs read and the output written once, at ``bytes_per_element(dtype)``
    each. A GEMV is ``m = 1``.

    Example: a bf16 8192^3 GEMM: 1.1e12 FLOP over 3 x 134,217,728 B, about 2731 FLOP/byte.

    Read: learning/lesson11.md#counting-an-operator
    """
    _check_sizes(m=m, n=n, k=k)
    raise NotImplementedError('lesson11: gemm_op - read learning/lesson11.md#counting-an-operator')


def softmax_op(rows: int, cols: int, dtype: object = "bf16") -> OpSpec:
    """Softmax over the last axis of a ``[rows, cols]`` tensor, output in the same dtype.

    Returns an ``OpSpec`` named ``f"softmax {rows}x{cols}"`` with ``SOFTMAX_FLOPS_PER_ELEMENT``
    FLOPs per element and ``nbytes`` the input read and the output written once.

    Read: learning/lesson11.md#counting-an-operator
    """
    _check_sizes(rows=rows, cols=cols)
    raise NotImplementedError('lesson11: softmax_op - read learning/lesson11.md#counting-an-operator')


def sdpa_op(batch: int, heads: int, q_len: int, kv_len: int, d_head: int,
            dtype: object = "bf16") -> OpSpec:
    """Attention without a mask: ``softmax(q @ k^T * scale) @ v`` per (sequence, head).

    Shapes: q and the output ``[batch, heads, q_len, d_head]``, k and v ``[batch, heads,
    kv_len, d_head]``. Returns an ``OpSpec`` named ``f"sdpa {batch}x{heads}x{q_len}x{kv_len}x
    {d_head}"`` whose FLOPs are the two matmuls, ``4 * batch * heads * q_len * kv_len * d_head``
    (the softmax's are fewer by a factor of about d_head and left out), and whose ``nbytes``
    are q, k and v read and the output written once (the score matrix never reaches DRAM in a
    fused kernel).

    Example: a decode step (q_len 1) over 4096 cached tokens does about 1 FLOP per byte.

    Read: learning/lesson11.md#counting-an-operator
    """
    _check_sizes(batch=batch, heads=heads, q_len=q_len, kv_len=kv_len, d_head=d_head)
    raise NotImplementedError('lesson11: sdpa_op - read learning/lesson11.md#counting-an-operator')


def measure_suite(device: str = "cuda", dtype: torch.dtype = torch.bfloat16, *,
                  iters: int = 50) -> tuple[list[OpSpec], list[float]]:
    """Run and time every operator of ``SUITE`` on the GPU.

    For each ``(name, kind, shape)``: build random inputs of ``shape`` in ``dtype`` on
    ``device`` (``torch.randn``), count the op with ``gemm_op`` / ``softmax_op`` / ``sdpa_op``
    (the same ``dtype``), and time one call of ``torch.mm``, ``torch.softmax(x, dim=-1)`` or
    ``F.scaled_dot_product_attention`` with ``course.bench.cuda_time(fn, iters=iters)``
    (CUDA events, L2 flushed before each call); keep the median in seconds.

    Returns:
        ``(ops, times_s)``, in the order of ``SUITE``, ready for ``roofline_report``.

    Never time with ``time.perf_counter`` around an asynchronous launch: without a
    synchronize it measures the launch, and the report then puts the point above its roof.

    Read: learning/lesson11.md#measuring-on-the-gpu
    """
    raise NotImplementedError('lesson11: measure_suite - read learning/lesson11.md#measuring-on-the-gpu')

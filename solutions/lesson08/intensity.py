"""FLOPs and bytes of the operators of a transformer, and their ratio: arithmetic intensity.

Every function returns a ``Cost``: the FLOPs an operator does and the bytes it moves between
memory (HBM) and the chip, under one stated model of the traffic:

* each input is read from memory once and each output written once (perfect on-chip reuse:
  no tile is read twice); an UNFUSED chain of operators writes every intermediate result
  and reads it back in the next operator;
* a multiply-add counts as 2 FLOPs; element sizes are in bytes (2 for bf16/fp16, 1 for fp8,
  0.5 for a packed 4-bit weight).

Intensity = FLOPs / bytes (FLOP/byte). Williams, Waterman and Patterson (2009) call it
operational intensity; it decides whether memory bandwidth or compute limits an operator.

Read: learning/lesson08.md#flops-per-byte
"""

from __future__ import annotations

from typing import NamedTuple, Sequence


class Cost(NamedTuple):
    """FLOPs done and bytes moved (read + written) by one operator."""

    flops: float
    bytes: float

    @property
    def intensity(self) -> float:
        """Arithmetic intensity in FLOP/byte."""
        return self.flops / self.bytes


def check_sizes(**sizes: float) -> None:
    """Raise ValueError, in plain words, for a size or an element size that is not positive."""
    for name, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{name} must be a number, got {value!r}")
        if not value > 0:
            raise ValueError(f"{name} must be positive, got {value}")
        if not name.endswith("_bytes") and int(value) != value:
            raise ValueError(f"{name} must be a whole number, got {value}")


def matmul_cost(M: int, K: int, N: int, a_bytes: float, b_bytes: float,
                c_bytes: float) -> Cost:
    """FLOPs and bytes of ``C[M, N] = A[M, K] @ B[K, N]``.

    Args:
        M, K, N: the sizes (for a linear layer: M tokens, K input features, N outputs).
        a_bytes, b_bytes, c_bytes: bytes per element of A, B and C (e.g. 2 for bf16 activations,
            0.5 for 4-bit weights, 2 for a bf16 output).
    Returns:
        ``Cost(flops, bytes)``: ``2 M K N`` FLOPs; bytes = A read once + B read once + C
        written once.

    Example: one token through a 4096 x 4096 bf16 weight (a decode step), about 1 FLOP/byte.
    Two lines.

        >>> cost = matmul_cost(1, 4096, 4096, 2, 2, 2)
        >>> cost.flops, cost.bytes, round(cost.intensity, 4)
        (33554432, 33570816, 0.9995)

    Read: learning/lesson08.md#matrix-multiplication
    """
    check_sizes(M=M, K=K, N=N, a_bytes=a_bytes, b_bytes=b_bytes, c_bytes=c_bytes)
    ### BEGIN SOLUTION
    flops = 2 * M * K * N
    return Cost(flops, M * K * a_bytes + K * N * b_bytes + M * N * c_bytes)
    ### END SOLUTION


def attention_cost(batch: int, heads: int, q_len: int, kv_len: int, d_head: int,
                   dtype_bytes: float, fused: bool) -> Cost:
    """FLOPs and bytes of softmax attention ``O = softmax(Q K^T) V``, without a mask.

    Args:
        batch, heads: independent problems (multi-head attention: every query head has its own
            K and V head).
        q_len, kv_len: query tokens and key/value tokens per problem (decode: ``q_len = 1``).
            No mask: every query sees all ``kv_len`` keys.
        d_head: channels per head.
        dtype_bytes: bytes per element of Q, K, V, O and (unfused) of the scores.
        fused: False for three kernels, ``S = Q K^T`` (writes S), ``P = softmax(S)`` (reads S,
            writes P; the scale is folded into Q beforehand) and ``O = P V`` (reads P); True for
            one kernel that keeps S and P on chip (FlashAttention).
    Returns:
        ``Cost(flops, bytes)``. FLOPs are the two matrix products only, ``2 x 2 x q_len x
        kv_len x d_head`` per problem (the softmax's few operations per score are left out,
        as torch's FLOP counter does). Bytes: Q, K, V read and O written once; unfused adds
        S written, S read, P written, P read, each ``q_len x kv_len`` per problem.

    Example: 4 queries over 4 keys, d_head 8, bf16; unfused moves S and P (16 scores each)
    twice, 4 x 16 x 2 = 128 more bytes. About 5 lines.

        >>> attention_cost(1, 1, 4, 4, 8, 2, fused=True)
        Cost(flops=512, bytes=256)
        >>> attention_cost(1, 1, 4, 4, 8, 2, fused=False)
        Cost(flops=512, bytes=384)

    Read: learning/lesson08.md#attention-fused-and-unfused
    """
    check_sizes(batch=batch, heads=heads, q_len=q_len, kv_len=kv_len, d_head=d_head,
                dtype_bytes=dtype_bytes)
    ### BEGIN SOLUTION
    problems = batch * heads
    flops = problems * 4 * q_len * kv_len * d_head
    elements = problems * (2 * q_len * d_head + 2 * kv_len * d_head)  # Q, O and K, V
    if not fused:
        elements += problems * 4 * q_len * kv_len  # S written, read; P written, read
    return Cost(flops, elements * dtype_bytes)
    ### END SOLUTION


def elementwise_cost(numel: int, operands_per_op: Sequence[int], dtype_bytes: float,
                     fused: bool) -> Cost:
    """FLOPs and bytes of a chain of elementwise operators over tensors of ``numel`` elements.

    Args:
        numel: elements of every tensor in the chain (all the same shape).
        operands_per_op: one entry per operator, in order: how many tensors it takes (1 for
            ``exp`` or ``neg``, 2 for ``add`` or ``mul``). The first operator's operands are all
            inputs of the chain; every later operator takes the previous result as its first
            operand and its other operands are further inputs of the chain.
        dtype_bytes: bytes per element of every tensor.
        fused: False when each operator is its own kernel (reads all its operands, writes its
            result); True for one kernel that reads each input of the chain once and writes
            the final result once.
    Returns:
        ``Cost(flops, bytes)`` with one FLOP per element per operator.

    Example: ``silu(gate) * up`` is ``operands_per_op=[1, 2]``: 2 inputs; unfused it moves
    ``(1 + 1) + (2 + 1) = 5`` tensors, fused ``2 + 1 = 3``. About 6 lines.

        >>> elementwise_cost(1000, [1, 2], 2, fused=False)
        Cost(flops=2000, bytes=10000)
        >>> elementwise_cost(1000, [1, 2], 2, fused=True)
        Cost(flops=2000, bytes=6000)

    Read: learning/lesson08.md#elementwise-chains
    """
    ops = list(operands_per_op)
    if not ops or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in ops):
        raise ValueError("operands_per_op must list at least one operator, each taking a whole "
                         f"number >= 1 of tensors; got {operands_per_op!r}")
    check_sizes(numel=numel, dtype_bytes=dtype_bytes)
    ### BEGIN SOLUTION
    flops = len(ops) * numel
    if fused:
        inputs = ops[0] + sum(n - 1 for n in ops[1:])
        tensors = inputs + 1
    else:
        tensors = sum(ops) + len(ops)  # every operand read, every result written
    return Cost(flops, tensors * numel * dtype_bytes)
    ### END SOLUTION

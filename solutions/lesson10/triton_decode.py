"""The kernel track: split-KV decode (Flash-Decoding) in Triton, two kernels.

The same contract as ``split_kv_decode`` (flash_decoding.py): one query token per sequence,
``q: [batch, heads, 1, d_head]`` over ``k, v: [batch, kv_heads, S, d_head]``, sequence ``b``
holding ``lengths[b]`` valid keys at positions ``0 .. lengths[b] - 1``. Here ``kv_heads`` may
divide ``heads`` (grouped-query attention, lesson 05): query head ``h`` reads KV head
``h // (heads // kv_heads)``; with ``kv_heads == heads`` it is lesson 10's layout.

1. ``_split_kv_partial_kernel``, grid ``(batch, kv_heads, n_splits)``: a program takes one
   chunk of consecutive key positions of one sequence and one KV head, and all the query heads
   that share that KV head (so K and V are read once per group). It walks its chunk in tiles of
   ``BLOCK_S`` keys with the online softmax (running maximum ``m``, running sum ``l``, running
   output ``acc``, float32) and writes the chunk's normalised output ``acc / l`` and its
   log-sum-exp ``m + log(l)``: float32 partials ``[batch, heads, n_splits, d_head]`` and
   ``[batch, heads, n_splits]``. A chunk past the sequence's length writes ``lse = -inf``.
2. ``_merge_kernel``, grid ``(batch, heads)``: ``M = max(lse)`` over the splits, weights
   ``exp(lse - M)``, output ``sum(w o) / sum(w)`` in q's dtype; no non-empty split (length 0)
   gives zeros.

Read: learning/lesson10.md#the-kernel-track-split-kv-decode-in-triton
"""

from __future__ import annotations

import math
import os

import torch
import triton
import triton.language as tl

DEFAULT_BLOCK_S = 64
DEFAULT_NUM_WARPS = 4
DEFAULT_NUM_STAGES = 2
PROGRAMS_PER_SM = 4           # default split: about this many programs per SM
CPU_SMS = 4                   # "SMs" assumed by the default split under the interpreter


@triton.jit
def _split_kv_partial_kernel(q_ptr, k_ptr, v_ptr, len_ptr, o_ptr, lse_ptr,
                             S, chunk, scale, group,
                             sq_b, sq_h, sq_d, sk_b, sk_h, sk_s, sk_d, sv_b, sv_h, sv_s, sv_d,
                             so_b, so_h, so_n, sl_b, sl_h,
                             HAS_LENGTHS: tl.constexpr, BLOCK_H: tl.constexpr,
                             BLOCK_S: tl.constexpr, BLOCK_D: tl.constexpr, D: tl.constexpr,
                             DOT_F32: tl.constexpr, PRECISION: tl.constexpr):
    """One program: sequence ``pid_b``, KV head ``pid_kv`` and its ``group`` query heads
    (``pid_kv * group ..``, padded to BLOCK_H rows for ``tl.dot``), key positions
    ``[pid_n * chunk, min((pid_n + 1) * chunk, length))``. ``DOT_F32``: cast the operands of
    each ``tl.dot`` to float32 first (set under the interpreter, see ``interpreted``);
    ``PRECISION``: the ``input_precision`` of each ``tl.dot`` ("ieee" for float32 inputs, so
    that they are not rounded to TF32).

    Read: learning/lesson10.md#the-kernel-track-split-kv-decode-in-triton
    """
    ### BEGIN SOLUTION
    pid_b = tl.program_id(0)
    pid_kv = tl.program_id(1)
    pid_n = tl.program_id(2)
    if HAS_LENGTHS:
        length = tl.load(len_ptr + pid_b).to(tl.int32)
    else:
        length = S
    start = pid_n * chunk
    end = tl.minimum(start + chunk, length)
    heads = pid_kv * group + tl.arange(0, BLOCK_H)         # the query heads of this KV head
    head_ok = tl.arange(0, BLOCK_H) < group
    dims = tl.arange(0, BLOCK_D)
    dim_ok = dims < D
    q = tl.load(q_ptr + pid_b * sq_b + heads[:, None] * sq_h + dims[None, :] * sq_d,
                mask=head_ok[:, None] & dim_ok[None, :], other=0.0)
    if DOT_F32:
        q = q.to(tl.float32)
    k_base = k_ptr + pid_b * sk_b + pid_kv * sk_h
    v_base = v_ptr + pid_b * sv_b + pid_kv * sv_h
    m = tl.full([BLOCK_H], float("-inf"), dtype=tl.float32)
    l = tl.zeros([BLOCK_H], dtype=tl.float32)
    acc = tl.zeros([BLOCK_H, BLOCK_D], dtype=tl.float32)
    for s0 in range(start, end, BLOCK_S):
        pos = s0 + tl.arange(0, BLOCK_S)
        pos_ok = pos < end
        kv_mask = pos_ok[:, None] & dim_ok[None, :]
        k = tl.load(k_base + pos[:, None] * sk_s + dims[None, :] * sk_d, mask=kv_mask, other=0.0)
        v = tl.load(v_base + pos[:, None] * sv_s + dims[None, :] * sv_d, mask=kv_mask, other=0.0)
        if DOT_F32:                       # the interpreter's tl.dot on bf16 operands is wrong
            k = k.to(tl.float32)
        s = tl.dot(q, tl.trans(k), input_precision=PRECISION) * scale       # [BLOCK_H, BLOCK_S]
        s = tl.where(pos_ok[None, :], s, float("-inf"))
        m_new = tl.maximum(m, tl.max(s, axis=1))          # finite: the tile has a valid key
        alpha = tl.exp(m - m_new)                         # 0 on the first tile (m = -inf)
        p = tl.exp(s - m_new[:, None])
        l = l * alpha + tl.sum(p, axis=1)
        pv = p.to(v.dtype)
        if DOT_F32:
            pv = pv.to(tl.float32)
            v = v.to(tl.float32)
        acc = acc * alpha[:, None] + tl.dot(pv, v, input_precision=PRECISION)
        m = m_new
    nonempty = l > 0
    out = tl.where(nonempty[:, None], acc / tl.where(nonempty, l, 1.0)[:, None], 0.0)
    lse = tl.where(nonempty, m + tl.log(tl.where(nonempty, l, 1.0)), float("-inf"))
    o_rows = o_ptr + pid_b * so_b + heads * so_h + pid_n * so_n
    tl.store(o_rows[:, None] + dims[None, :], out, mask=head_ok[:, None] & dim_ok[None, :])
    tl.store(lse_ptr + pid_b * sl_b + heads * sl_h + pid_n, lse, mask=head_ok)
    ### END SOLUTION


@triton.jit
def _merge_kernel(o_ptr, lse_ptr, out_ptr, n_splits,
                  so_b, so_h, so_n, sl_b, sl_h, sout_b, sout_h, sout_d,
                  BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, D: tl.constexpr):
    """One program: merge the ``n_splits`` partial states of one (sequence, query head).

    Read: learning/lesson10.md#the-kernel-track-split-kv-decode-in-triton
    """
    ### BEGIN SOLUTION
    pid_b = tl.program_id(0)
    pid_h = tl.program_id(1)
    splits = tl.arange(0, BLOCK_N)
    split_ok = splits < n_splits
    dims = tl.arange(0, BLOCK_D)
    dim_ok = dims < D
    lse = tl.load(lse_ptr + pid_b * sl_b + pid_h * sl_h + splits, mask=split_ok,
                  other=float("-inf"))
    top = tl.max(lse, axis=0)
    top = tl.where(top == float("-inf"), 0.0, top)        # every split empty: weights all 0
    w = tl.exp(lse - top)
    o = tl.load(o_ptr + pid_b * so_b + pid_h * so_h + splits[:, None] * so_n + dims[None, :],
                mask=split_ok[:, None] & dim_ok[None, :], other=0.0)
    total = tl.sum(w, axis=0)
    merged = tl.sum(w[:, None] * o, axis=0) / tl.where(total > 0, total, 1.0)
    tl.store(out_ptr + pid_b * sout_b + pid_h * sout_h + dims * sout_d,
             merged.to(out_ptr.dtype.element_ty), mask=dim_ok)
    ### END SOLUTION


def interpreted() -> bool:
    """Whether kernels run in Triton's interpreter (``TRITON_INTERPRET=1``). There the kernel
    multiplies in float32: the interpreter's ``tl.dot`` gets bf16 operands wrong (Triton 3.9);
    bf16 products are exact in float32, so the result is what the GPU computes."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def check_triton_decode_inputs(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                               lengths: torch.Tensor | None, n_splits: int | None) -> None:
    """Raise ValueError, in plain words, for inputs split_kv_decode_triton cannot take."""
    if q.dim() != 4 or k.dim() != 4 or k.shape != v.shape:
        raise ValueError("q must be [batch, heads, 1, d_head] and k, v [batch, kv_heads, S, "
                         f"d_head]; got {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
    if q.shape[2] != 1:
        raise ValueError(f"decode takes one query token per sequence; got {q.shape[2]}")
    batch, heads, _, d_head = q.shape
    if k.shape[0] != batch or k.shape[3] != d_head:
        raise ValueError(f"batch and d_head of q {tuple(q.shape)} and k {tuple(k.shape)} "
                         "must agree")
    if k.shape[1] < 1 or heads % k.shape[1]:
        raise ValueError(f"kv_heads ({k.shape[1]}) must divide heads ({heads})")
    if k.shape[2] == 0:
        raise ValueError("need at least one key position")
    if not (q.dtype == k.dtype == v.dtype) or q.dtype not in (torch.float32, torch.bfloat16,
                                                               torch.float16):
        raise ValueError(f"q, k and v must share one dtype of float32, bfloat16, float16; got "
                         f"{q.dtype}, {k.dtype}, {v.dtype}")
    if n_splits is not None and (isinstance(n_splits, bool) or int(n_splits) != n_splits
                                 or n_splits < 1):
        raise ValueError(f"n_splits must be a whole number >= 1 (or None), got {n_splits!r}")
    tensors = [q, k, v] + ([lengths] if lengths is not None else [])
    devices = {t.device for t in tensors}
    if len(devices) != 1:
        raise ValueError(f"q, k, v and lengths must be on one device, got "
                         f"{sorted(str(d) for d in devices)}")
    device = devices.pop()
    if device.type != "cuda" and not (device.type == "cpu" and interpreted()):
        raise ValueError(f"tensors must be on a CUDA device, or on the CPU under "
                         f"TRITON_INTERPRET=1; got {device}")
    if lengths is not None and (lengths.shape != (batch,) or lengths.dtype.is_floating_point
                                or lengths.dtype == torch.bool):
        raise ValueError(f"lengths must be integers of shape ({batch},), one per sequence; "
                         f"got {tuple(lengths.shape)} {lengths.dtype}")


def default_splits(batch: int, kv_heads: int, S: int, block_s: int, device: torch.device) -> int:
    """Splits that give about PROGRAMS_PER_SM programs per SM, at least one tile of keys each."""
    sms = (torch.cuda.get_device_properties(device).multi_processor_count
           if device.type == "cuda" else CPU_SMS)
    want = -(-PROGRAMS_PER_SM * sms // (batch * kv_heads))
    return max(1, min(want, -(-S // block_s)))


def split_kv_decode_triton(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                           lengths: torch.Tensor | None = None, scale: float | None = None, *,
                           n_splits: int | None = None, block_s: int = DEFAULT_BLOCK_S,
                           num_warps: int = DEFAULT_NUM_WARPS,
                           num_stages: int = DEFAULT_NUM_STAGES) -> torch.Tensor:
    """Decode attention for one query token per sequence, keys split across programs.

    Args:
        q: ``[batch, heads, 1, d_head]``; k, v: ``[batch, kv_heads, S, d_head]`` (kv_heads
            divides heads), one dtype (float32, bf16 or fp16), any strides.
        lengths: ``[batch]`` integers in ``0 .. S`` (valid keys per sequence; None: all S).
            Values are not checked on the host (that would synchronise and break CUDA-graph
            capture): a length above S reads past the cache.
        scale: softmax scale, default ``1 / sqrt(d_head)``.
        n_splits: key chunks per (sequence, KV head); None chooses from the batch, the KV
            heads and the GPU's SM count. Each chunk is a whole number of ``block_s`` tiles.
        block_s, num_warps, num_stages: launch parameters (block_s a power of 2, >= 16).
    Returns:
        ``[batch, heads, 1, d_head]`` in q's dtype; a sequence of length 0 gets zeros.

    Read: learning/lesson10.md#the-kernel-track-split-kv-decode-in-triton
    """
    check_triton_decode_inputs(q, k, v, lengths, n_splits)
    if block_s < 16 or block_s & (block_s - 1):
        raise ValueError(f"block_s must be a power of 2 >= 16, got {block_s}")
    batch, heads, _, d_head = q.shape
    kv_heads, S = k.shape[1], k.shape[2]
    scale = 1.0 / math.sqrt(d_head) if scale is None else float(scale)
    if n_splits is None:
        n_splits = default_splits(batch, kv_heads, S, block_s, q.device)
    group = heads // kv_heads
    out = torch.empty(batch, heads, 1, d_head, dtype=q.dtype, device=q.device)
    if batch == 0:
        return out
    ### BEGIN SOLUTION
    # hint: chunk = a whole number of block_s tiles; float32 partials o and lse per split
    chunk = triton.cdiv(triton.cdiv(S, n_splits), block_s) * block_s
    n_splits = triton.cdiv(S, chunk)                      # drop splits that start past S
    o_part = torch.empty(batch, heads, n_splits, d_head, dtype=torch.float32, device=q.device)
    lse = torch.empty(batch, heads, n_splits, dtype=torch.float32, device=q.device)
    block_d = max(16, triton.next_power_of_2(d_head))   # tl.dot wants >= 16 columns
    block_h = max(16, triton.next_power_of_2(group))     # tl.dot wants >= 16 rows
    len_arg = lengths if lengths is not None else lse    # unused pointer when HAS_LENGTHS=False
    _split_kv_partial_kernel[(batch, kv_heads, n_splits)](
        q, k, v, len_arg, o_part, lse, S, chunk, scale, group,
        q.stride(0), q.stride(1), q.stride(3), k.stride(0), k.stride(1), k.stride(2),
        k.stride(3), v.stride(0), v.stride(1), v.stride(2), v.stride(3),
        o_part.stride(0), o_part.stride(1), o_part.stride(2), lse.stride(0), lse.stride(1),
        HAS_LENGTHS=lengths is not None, BLOCK_H=block_h, BLOCK_S=block_s, BLOCK_D=block_d,
        D=d_head, DOT_F32=interpreted(), PRECISION="ieee" if q.dtype == torch.float32 else "tf32",
        num_warps=num_warps, num_stages=num_stages)
    _merge_kernel[(batch, heads)](
        o_part, lse, out, n_splits, o_part.stride(0), o_part.stride(1), o_part.stride(2),
        lse.stride(0), lse.stride(1), out.stride(0), out.stride(1), out.stride(3),
        BLOCK_N=max(2, triton.next_power_of_2(n_splits)), BLOCK_D=block_d, D=d_head)
    return out
    ### END SOLUTION

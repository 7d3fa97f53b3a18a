"""The kernel track (optional): paged decode attention reading an FP8 KV cache.

Lesson 12's split-KV paged decode kernel with two more loads. The cache is this lesson's
FP8 KV cache (``kv_fp8.py``: flat ``[num_slots, n_kv_heads, d_head]`` e4m3 plus
``[num_slots, n_kv_heads]`` float32 scales) viewed by block: ``k_cache, v_cache:
[num_blocks, block_size, n_kv_heads, d_head]`` float8_e4m3fn and ``k_scales, v_scales:
[num_blocks, block_size, n_kv_heads]`` float32; key (value) ``i`` of a sequence is
``k_cache[blk, off, h].float() * k_scales[blk, off, h]``.

Dequantisation happens in registers, on the scores rather than on the tiles: a token's scale
is one number for all ``d_head`` elements of its row, so ``q . (s_k k) = s_k (q . k)`` and
``sum_t p_t (s_v,t v_t) = sum_t (p_t s_v,t) v_t``. Scaling a ``[BLOCK_H, BLOCK_N]`` score
tile (and the probabilities) costs ``BLOCK_H x BLOCK_N`` multiplies instead of
``BLOCK_N x d_head`` per tile, and leaves the e4m3 -> 16-bit conversion as the only work on
the K and V tiles. The softmax sum ``l`` uses the probabilities before the V scale.

Runs compiled on CUDA tensors, or on CPU tensors in Triton's interpreter
(``TRITON_INTERPRET=1``, set before this module is imported).

Read: learning/lesson16.md#the-kernel-track-paged-decode-over-fp8-kv
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from course.triton_track import (choose_num_splits, interpreting, sm_count,  # noqa: F401
                                 tokens_per_split)

LOG2E = 1.4426950408889634  # log2(e): exp(x) == exp2(x * LOG2E)
# Measured on an H200 (2026-12-01, Triton 3.6): a tile of 128 tokens (as many bytes as lesson
# 12's 64 in bf16), 4 warps, 5 stages. With 3 or 4 stages Triton keeps one K and one V tile in
# shared memory per program and the next tile's copy starts only after this one is used; with
# 5 it keeps two, so a copy is always in flight (1.05x bf16 SDPA at 16 x 16k against 0.96x).
DEFAULT_BLOCK_N = 128
DEFAULT_NUM_WARPS = 4
DEFAULT_NUM_STAGES = 5


def check_fp8_paged_inputs(q, k_cache, v_cache, k_scales, v_scales, block_tables,
                           context_lens, *, check_lengths: bool = True) -> None:
    """Raise ValueError, in plain words, for inputs the kernel cannot take.

    Shapes, dtypes and devices are checked on the host for free; the values of
    ``context_lens`` only when ``check_lengths`` (reading them waits for the GPU).
    """
    tensors = {"q": q, "k_cache": k_cache, "v_cache": v_cache, "k_scales": k_scales,
               "v_scales": v_scales, "block_tables": block_tables,
               "context_lens": context_lens}
    for name, t in tensors.items():
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if q.dim() != 3:
        raise ValueError(f"q must be [batch, n_heads, d_head], got shape {tuple(q.shape)}")
    if k_cache.dim() != 4 or k_cache.shape != v_cache.shape:
        raise ValueError("k_cache and v_cache must both be [num_blocks, block_size, "
                         f"n_kv_heads, d_head]; got {tuple(k_cache.shape)} and "
                         f"{tuple(v_cache.shape)}")
    batch, n_heads, d_head = q.shape
    n_kv_heads = k_cache.shape[2]
    if k_cache.shape[3] != d_head:
        raise ValueError(f"d_head differs: q has {d_head}, the cache {k_cache.shape[3]}")
    if n_kv_heads == 0 or n_heads % n_kv_heads:
        raise ValueError(f"n_heads ({n_heads}) must be a multiple of n_kv_heads ({n_kv_heads})")
    if block_tables.dim() != 2 or block_tables.shape[0] != batch:
        raise ValueError(f"block_tables must be [batch={batch}, max_blocks], got "
                         f"{tuple(block_tables.shape)}")
    if context_lens.shape != (batch,):
        raise ValueError(f"context_lens must be [batch={batch}], got {tuple(context_lens.shape)}")
    if block_tables.dtype.is_floating_point or context_lens.dtype.is_floating_point:
        raise ValueError("block_tables and context_lens must be integer tensors")
    if q.dtype not in (torch.float16, torch.bfloat16, torch.float32):
        raise ValueError(f"q must be float16, bfloat16 or float32, got {q.dtype}")
    if k_cache.dtype != torch.float8_e4m3fn or v_cache.dtype != torch.float8_e4m3fn:
        raise ValueError(f"k_cache and v_cache must be float8_e4m3fn, got {k_cache.dtype} and "
                         f"{v_cache.dtype}")
    for name, sc in (("k_scales", k_scales), ("v_scales", v_scales)):
        if sc.shape != k_cache.shape[:3] or sc.dtype != torch.float32:
            raise ValueError(f"{name} must be float32 [num_blocks, block_size, n_kv_heads] = "
                             f"{list(k_cache.shape[:3])}, got {sc.dtype} {tuple(sc.shape)}")
    devices = {t.device for t in tensors.values()}
    if len(devices) != 1:
        raise ValueError(f"all tensors must be on one device, got {sorted(map(str, devices))}")
    device = q.device
    if device.type != "cuda" and not (device.type == "cpu" and interpreting()):
        raise ValueError(f"tensors are on {device}: they must be on a CUDA device, or on the "
                         "CPU under TRITON_INTERPRET=1")
    if q.stride(2) != 1 or k_cache.stride(3) != 1 or v_cache.stride(3) != 1:
        raise ValueError("the last (d_head) axis of q, k_cache and v_cache must be contiguous")
    if not (check_lengths and batch):
        return
    lo, hi = torch.aminmax(context_lens.long())
    lo, hi = int(lo), int(hi)
    capacity = block_tables.shape[1] * k_cache.shape[1]
    if hi > capacity:
        raise ValueError(f"a context length ({hi}) exceeds what the block table holds "
                         f"({block_tables.shape[1]} blocks x {k_cache.shape[1]} tokens)")
    if lo < 0:
        raise ValueError(f"context lengths must be >= 0, got {lo}")


def _dot_dtype(q: torch.Tensor):
    """The dtype of tl.dot's operands: float16 on a GPU, whatever q's 16-bit dtype (e4m3
    converts to float16 exactly, in one instruction per pair of values; to bfloat16 it takes
    several, and that conversion, not the bytes, then bounds the kernel), float32 for float32
    queries and on the CPU, where tl.dot in Triton's interpreter multiplies bfloat16 wrongly
    (Triton 3.9)."""
    if q.device.type == "cpu" or q.dtype == torch.float32:
        return tl.float32
    return tl.float16


@triton.jit
def _fp8_paged_decode_split_kernel(
        q_ptr, k_ptr, v_ptr, ks_ptr, vs_ptr, tables_ptr, lens_ptr, part_out_ptr, part_lse_ptr,
        qk_scale,  # softmax scale x log2(e): scores come out in base 2
        split_len,  # tokens per split, a multiple of BLOCK_N
        max_len,  # tokens any sequence may attend to (at most the table's capacity)
        stride_qb, stride_qh,
        stride_kb, stride_kt, stride_kh,  # k_cache: block, token in block, KV head (d is 1)
        stride_vb, stride_vt, stride_vh,
        stride_sb, stride_st, stride_sh,  # k_scales and v_scales: block, token, KV head
        stride_tb,  # block_tables: row
        stride_ob, stride_oh, stride_os,  # part_out [batch, n_heads, splits, d] (d is 1)
        stride_lb, stride_lh,  # part_lse [batch, n_heads, splits] (split is 1)
        GROUP: tl.constexpr, BLOCK_H: tl.constexpr, D: tl.constexpr, BLOCK_D: tl.constexpr,
        BLOCK_SIZE: tl.constexpr, BLOCK_N: tl.constexpr, DOT_DTYPE: tl.constexpr,
        DOT_PRECISION: tl.constexpr):
    """Lesson 12's split kernel over an e4m3 cache: the K scale multiplies the scores, the
    V scale the probabilities (after they are summed into l).

    Read: learning/lesson16.md#the-kernel-track-paged-decode-over-fp8-kv
    """
    ### BEGIN SOLUTION
    # hint: rows = query heads kv_head * GROUP + arange(BLOCK_H) (mask rows >= GROUP);
    # hint: token t lies in block block_tables[b, t // block_size] at offset t % block_size
    # hint: DOT_DTYPE is float16 on a GPU: scale each q row by a power of two into [2^13, 2^14)
    # hint: and each tile's V scales into [1, 2), undo both in float32 (lesson text: "Float16")
    b = tl.program_id(0)
    kv_head = tl.program_id(1)
    split = tl.program_id(2)
    length = tl.minimum(tl.load(lens_ptr + b).to(tl.int32), max_len)  # never past the table
    start = split * split_len
    end = tl.minimum(start + split_len, length)

    rows = tl.arange(0, BLOCK_H)
    row_ok = rows < GROUP
    heads = kv_head * GROUP + rows
    dims = tl.arange(0, BLOCK_D)
    dim_ok = dims < D
    q = tl.load(q_ptr + b * stride_qb + heads[:, None] * stride_qh + dims[None, :],
                mask=row_ok[:, None] & dim_ok[None, :], other=0.0).to(tl.float32)
    # e4m3 converts to float16 in one instruction per pair (to bfloat16 it takes several), so
    # the dots run in float16; each query row is scaled by a power of two (exact) so that its
    # largest entry lands in [2^13, 2^14), far inside float16's range, and the scores are
    # scaled back in float32.
    q_max = tl.max(tl.abs(q), axis=1)
    q_exp = tl.where(q_max > 0, 13.0 - tl.floor(tl.log2(tl.where(q_max > 0, q_max, 1.0))), 0.0)
    q = (q * tl.exp2(q_exp)[:, None]).to(DOT_DTYPE)
    row_scale = tl.exp2(-q_exp) * qk_scale

    m = tl.full([BLOCK_H], float("-inf"), tl.float32)  # running max (base 2)
    l = tl.zeros([BLOCK_H], tl.float32)  # running sum of 2^(s - m)
    acc = tl.zeros([BLOCK_H, BLOCK_D], tl.float32)  # running sum of 2^(s - m) v
    table_row = tables_ptr + b * stride_tb
    for n0 in range(start, end, BLOCK_N):
        tokens = n0 + tl.arange(0, BLOCK_N)
        tok_ok = tokens < end
        # Physical block of each token (tokens of one block share an entry); masked tokens
        # read nothing, so padding entries of the table are never touched.
        block = tl.load(table_row + tokens // BLOCK_SIZE, mask=tok_ok, other=0).to(tl.int64)
        slot = tokens % BLOCK_SIZE
        kv_mask = tok_ok[:, None] & dim_ok[None, :]
        k = tl.load(k_ptr + block[:, None] * stride_kb + slot[:, None] * stride_kt
                    + kv_head * stride_kh + dims[None, :], mask=kv_mask, other=0.0)
        scale_at = block * stride_sb + slot * stride_st + kv_head * stride_sh
        k_scale = tl.load(ks_ptr + scale_at, mask=tok_ok, other=0.0)  # [BLOCK_N] float32
        s = tl.dot(q, tl.trans(k.to(DOT_DTYPE)), input_precision=DOT_PRECISION)
        s = s * row_scale[:, None] * k_scale[None, :]  # [BLOCK_H, BLOCK_N], base 2
        s = tl.where(tok_ok[None, :], s, float("-inf"))
        m_new = tl.maximum(m, tl.max(s, axis=1))  # finite: every tile has a valid token
        alpha = tl.exp2(m - m_new)  # rescales what was summed under the old max
        p = tl.exp2(s - m_new[:, None])
        l = l * alpha + tl.sum(p, axis=1)
        v = tl.load(v_ptr + block[:, None] * stride_vb + slot[:, None] * stride_vt
                    + kv_head * stride_vh + dims[None, :], mask=kv_mask, other=0.0)
        v_scale = tl.load(vs_ptr + scale_at, mask=tok_ok, other=0.0)
        # The tile's V scales, brought up by one power of two so that the largest is in [1, 2):
        # p x scale then stays in float16's range whatever the values' size, and the power of
        # two comes off again in float32.
        v_top = tl.max(v_scale, axis=0)
        v_exp = tl.where(v_top > 0, -tl.floor(tl.log2(tl.where(v_top > 0, v_top, 1.0))), 0.0)
        pv = (p * (v_scale * tl.exp2(v_exp))[None, :]).to(DOT_DTYPE)
        pv_v = tl.dot(pv, v.to(DOT_DTYPE), input_precision=DOT_PRECISION)
        acc = acc * alpha[:, None] + pv_v * tl.exp2(-v_exp)
        m = m_new

    # An empty split (start >= length) writes lse = -inf and zeros: stage 2 gives it no weight.
    has = l > 0
    out = acc / tl.where(has, l, 1.0)[:, None]
    lse = tl.where(has, m + tl.log2(tl.where(has, l, 1.0)), float("-inf"))
    tl.store(part_out_ptr + b * stride_ob + heads[:, None] * stride_oh + split * stride_os
             + dims[None, :], out, mask=row_ok[:, None] & dim_ok[None, :])
    tl.store(part_lse_ptr + b * stride_lb + heads * stride_lh + split, lse, mask=row_ok)
    ### END SOLUTION


@triton.jit
def _fp8_paged_decode_merge_kernel(
        part_out_ptr, part_lse_ptr, out_ptr, num_splits,
        stride_ob, stride_oh, stride_os, stride_lb, stride_lh, stride_yb, stride_yh,
        D: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_S: tl.constexpr):
    """One (sequence, query head): merge its splits' partial outputs by their log-sum-exp.

    Read: learning/lesson16.md#the-kernel-track-paged-decode-over-fp8-kv
    """
    ### BEGIN SOLUTION
    # hint: weight of split s = 2^(lse_s - max lse); an all-empty row (length 0) gives zeros
    b = tl.program_id(0)
    h = tl.program_id(1)
    splits = tl.arange(0, BLOCK_S)
    split_ok = splits < num_splits
    dims = tl.arange(0, BLOCK_D)
    dim_ok = dims < D
    lse = tl.load(part_lse_ptr + b * stride_lb + h * stride_lh + splits, mask=split_ok,
                  other=float("-inf"))
    top = tl.max(lse, axis=0)
    top = tl.where(top == float("-inf"), 0.0, top)  # every split empty: all weights 0
    w = tl.exp2(lse - top)  # 0 for empty splits
    part = tl.load(part_out_ptr + b * stride_ob + h * stride_oh + splits[:, None] * stride_os
                   + dims[None, :], mask=split_ok[:, None] & dim_ok[None, :], other=0.0)
    total = tl.sum(w, axis=0)
    y = tl.sum(part * w[:, None], axis=0) / tl.where(total > 0, total, 1.0)
    tl.store(out_ptr + b * stride_yb + h * stride_yh + dims,
             y.to(out_ptr.dtype.element_ty), mask=dim_ok)
    ### END SOLUTION


def paged_decode_fp8_triton(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
                            k_scales: torch.Tensor, v_scales: torch.Tensor,
                            block_tables: torch.Tensor, context_lens: torch.Tensor,
                            scale: float | None = None, *, num_splits: int | None = None,
                            max_context_len: int | None = None, validate: bool | None = None,
                            block_n: int | None = None, num_warps: int | None = None,
                            num_stages: int | None = None) -> torch.Tensor:
    """Paged decode attention over an FP8 KV cache, in two Triton launches (split-KV).

    Args:
        q: ``[batch, n_heads, d_head]`` float16, bfloat16 or float32.
        k_cache, v_cache: ``[num_blocks, block_size, n_kv_heads, d_head]`` float8_e4m3fn.
        k_scales, v_scales: ``[num_blocks, block_size, n_kv_heads]`` float32.
        block_tables, context_lens, scale: as lesson 12's ``paged_attention_decode``.
        num_splits: pieces each sequence is cut into (stage 1's third grid axis); default
            ``choose_num_splits`` from the batch, the longest length and the SM count.
        max_context_len: the longest ``context_lens`` entry, if the caller knows it on the
            host (an engine does); default: what the block table can hold. Splits are cut
            from it; a sequence attends to at most this many tokens.
        validate: check the values of ``context_lens`` (0 ... the table's capacity) before
            the launch. Default: on the CPU only. On a GPU, reading them waits for the device
            (a sync), which leaves the GPU idle while the host launches the kernels; out of
            range lengths are clamped to the table's capacity instead, so nothing outside
            the cache is ever read.
        block_n: tokens per tile (a power of two >= 16); num_warps, num_stages: Triton's
            launch options. Defaults: ``DEFAULT_BLOCK_N``, ``DEFAULT_NUM_WARPS``,
            ``DEFAULT_NUM_STAGES``. They change speed, never the answer.
    Returns:
        ``[batch, n_heads, d_head]`` in q's dtype.

    Read: learning/lesson16.md#the-kernel-track-paged-decode-over-fp8-kv
    """
    validate = q.device.type == "cpu" if validate is None else bool(validate)
    check_fp8_paged_inputs(q, k_cache, v_cache, k_scales, v_scales, block_tables, context_lens,
                           check_lengths=validate)
    block_n = DEFAULT_BLOCK_N if block_n is None else int(block_n)
    if block_n < 16 or block_n & (block_n - 1):
        raise ValueError(f"block_n must be a power of two >= 16, got {block_n}")
    if num_splits is not None and int(num_splits) < 1:
        raise ValueError(f"num_splits must be >= 1, got {num_splits}")
    num_warps = DEFAULT_NUM_WARPS if num_warps is None else int(num_warps)
    num_stages = DEFAULT_NUM_STAGES if num_stages is None else int(num_stages)
    batch, n_heads, d_head = q.shape
    num_blocks, block_size, n_kv_heads, _ = k_cache.shape
    scale = 1.0 / math.sqrt(d_head) if scale is None else float(scale)
    longest = block_tables.shape[1] * block_size  # the table's capacity: no device sync
    if max_context_len is not None:
        if validate and batch and int(context_lens.max()) > max_context_len:
            raise ValueError(f"max_context_len={max_context_len} is below the longest "
                             f"context length ({int(context_lens.max())})")
        longest = min(int(max_context_len), longest)
    out = torch.empty_like(q)
    if batch == 0 or n_heads == 0:
        return out
    if longest <= 0:
        return out.zero_()
    ### BEGIN SOLUTION
    # hint: splits = num_splits or choose_num_splits(...); split_len = tokens_per_split(...)
    # hint: float32 workspaces [batch, n_heads, splits, d] and [batch, n_heads, splits]
    group = n_heads // n_kv_heads
    if num_splits is None:
        num_splits = choose_num_splits(batch, n_kv_heads, longest, sm_count(q.device), block_n)
    split_len = tokens_per_split(longest, int(num_splits), block_n)
    splits = max(-(-longest // split_len), 1)  # no split that starts past every sequence
    part_out = torch.empty(batch, n_heads, splits, d_head, dtype=torch.float32, device=q.device)
    part_lse = torch.empty(batch, n_heads, splits, dtype=torch.float32, device=q.device)
    block_d = max(16, triton.next_power_of_2(d_head))
    dot_dtype = _dot_dtype(q)
    if k_scales.stride() != v_scales.stride():
        v_scales = v_scales.contiguous().view(k_scales.shape)
        k_scales = k_scales.contiguous()
    _fp8_paged_decode_split_kernel[(batch, n_kv_heads, splits)](
        q, k_cache, v_cache, k_scales, v_scales, block_tables, context_lens, part_out, part_lse,
        scale * LOG2E, split_len, longest,
        q.stride(0), q.stride(1),
        k_cache.stride(0), k_cache.stride(1), k_cache.stride(2),
        v_cache.stride(0), v_cache.stride(1), v_cache.stride(2),
        k_scales.stride(0), k_scales.stride(1), k_scales.stride(2),
        block_tables.stride(0),
        part_out.stride(0), part_out.stride(1), part_out.stride(2),
        part_lse.stride(0), part_lse.stride(1),
        GROUP=group, BLOCK_H=max(16, triton.next_power_of_2(group)), D=d_head, BLOCK_D=block_d,
        BLOCK_SIZE=block_size, BLOCK_N=block_n,
        DOT_DTYPE=dot_dtype, DOT_PRECISION="ieee" if dot_dtype == tl.float32 else "tf32",
        num_warps=num_warps, num_stages=num_stages)
    _fp8_paged_decode_merge_kernel[(batch, n_heads)](
        part_out, part_lse, out, splits,
        part_out.stride(0), part_out.stride(1), part_out.stride(2),
        part_lse.stride(0), part_lse.stride(1), out.stride(0), out.stride(1),
        D=d_head, BLOCK_D=block_d, BLOCK_S=max(2, triton.next_power_of_2(splits)),
        num_warps=4)
    return out
    ### END SOLUTION

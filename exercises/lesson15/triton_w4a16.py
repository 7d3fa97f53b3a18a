"""The kernel track: a W4A16 GEMV in Triton that dequantizes in registers.

``w4a16_matmul`` (w4a16.py) is the contract: the same operands (``packed [N, K // 8]`` int32
from pack_int4, ``scales`` and ``zeros [N, K // group_size]``), the same result
``x @ dequant(W).T`` in x's dtype. It gets there by writing the whole dequantized weight to
memory first. This kernel never does: each program of the grid owns ``BLOCK_N`` output rows,
walks along K in tiles of ``BLOCK_K`` entries, loads the packed words of its rows (``BLOCK_K / 8``
int32 per row, contiguous in memory), takes the eight nibbles of each word apart with a shift
and a mask, and multiplies them with x in float32. The weight is read once, at half a byte per
entry, and nothing else of its size is written: at batch 1 the time is the time to read those
bytes.

Two choices make the inner loop cheap:

* the group's zero point comes out of the sum: ``sum_k x_k (q_k - z) s = s (sum_k x_k q_k
  - z sum_k x_k)``, so per word of eight nibbles the kernel does eight multiply-adds with the
  raw nibbles, and applies the scale and zero once per group of the tile (once per tile when
  the tile lies inside one group; once per word when groups and tiles do not nest);
* nibble ``j`` of every word is taken at once (``(word >> 4j) & 0xF`` on a whole tile) and
  multiplied with the eight x values ``x[8w + j]`` of the tile's words: eight passes over a
  ``[BLOCK_N, BLOCK_K / 8]`` tile, no reshuffling of nibbles.

Launch parameters (``block_n``, ``block_k``, ``num_warps``, ``num_stages``, ``split_k``) are
keyword arguments, so a tuning script can sweep them (tools/tune_w4a16.py). ``split_k > 1``
cuts K into that many ranges, one per program of a second grid axis, and adds the partial
sums with float32 atomics: more programs when N alone gives too few to fill the GPU.

Triton is the optional ``kernels`` extra. On the CPU the kernel runs in Triton's interpreter
(``TRITON_INTERPRET=1``, set by ``course.triton_track.import_triton`` before this module is
imported).

Read: learning/lesson15.md#the-kernel-track-an-int4-gemv-in-triton
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

from .w4a16 import check_packed

# The best launch at batch 1 on an H200 for all four of tools/tune_w4a16.py's shapes (4096 and
# 14336 by 4096 and 14336, 8192 by 8192; 2026-12-01, torch 2.11.0+cu130, Triton 3.6): eight rows
# a program, 1024 entries of K a step, two warps. split_k stays 1 unless asked: 4 was best only
# at 4096x14336 (36.0 us; every split_k=1 launch there took over 37.7 us).
DEFAULT_BLOCK_N = 8
DEFAULT_BLOCK_K = 1024
DEFAULT_NUM_WARPS = 2
DEFAULT_NUM_STAGES = 3


@triton.jit
def _w4a16_gemv_kernel(x_ptr, w_ptr, s_ptr, z_ptr, out_ptr,
                       N, K, k_per_split,
                       stride_xm, stride_wn, stride_sn, stride_zn, stride_om,
                       GROUP: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                       SPLIT_K: tl.constexpr):
    """One program: rows ``[pid_n * BLOCK_N, + BLOCK_N)`` of the output row ``pid_m``, over
    the K range ``[pid_s * k_per_split, + k_per_split)``.

    Read: learning/lesson15.md#the-kernel-track-an-int4-gemv-in-triton
    """
    raise NotImplementedError('lesson15: _w4a16_gemv_kernel - read learning/lesson15.md#the-kernel-track-an-int4-gemv-in-triton')


def _check_device(*tensors: torch.Tensor) -> None:
    devices = {t.device for t in tensors}
    if len(devices) != 1:
        raise ValueError(f"x, packed, scales and zeros must be on one device, got "
                         f"{sorted(str(d) for d in devices)}")
    device = devices.pop()
    interpreted = os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")
    if device.type != "cuda" and not (device.type == "cpu" and interpreted):
        raise ValueError(f"tensors must be on a CUDA device, or on the CPU under "
                         f"TRITON_INTERPRET=1; got {device}")


def w4a16_gemv_triton(x: torch.Tensor, packed: torch.Tensor, scales: torch.Tensor,
                      zeros: torch.Tensor, group_size: int = 128, *,
                      block_n: int = DEFAULT_BLOCK_N, block_k: int = DEFAULT_BLOCK_K,
                      num_warps: int = DEFAULT_NUM_WARPS, num_stages: int = DEFAULT_NUM_STAGES,
                      split_k: int = 1) -> torch.Tensor:
    """``x @ dequant(W).T`` for few rows of x, dequantizing W in registers.

    Args:
        x: ``[..., K]`` float32, bf16 or fp16; made for 1 to 16 rows (batch-1 decode is the
            case that matters: each row reads the whole weight once).
        packed: ``[N, K // 8]`` int32 from pack_int4 (entry ``8i + j`` in bits ``4j..4j+3`` of
            word i); scales, zeros: ``[N, K // group_size]`` float (lesson 15's quantize_rtn).
        group_size: as in w4a16_matmul (-1: one group per row); a multiple of 8, so that a
            packed word never straddles two groups.
        block_n: output rows per program (a power of 2); block_k: entries of K per step (a
            power of 2, at least 8); num_warps, num_stages: Triton's launch options;
            split_k: programs along K per block of rows (partial sums added with atomics).
    Returns:
        ``[..., N]`` in x's dtype: what w4a16_matmul returns, accumulated in float32.

    Read: learning/lesson15.md#the-kernel-track-an-int4-gemv-in-triton
    """
    n, k, g = check_packed(packed, scales, zeros, group_size)
    if x.shape[-1:] != (k,):
        raise ValueError(f"x must be [..., K] with K = {k} (packed {list(packed.shape)} has "
                         f"{packed.shape[1]} words of 8 per row), got {list(x.shape)}")
    if x.dtype not in (torch.float32, torch.bfloat16, torch.float16):
        raise ValueError(f"x must be float32, bfloat16 or float16, got {x.dtype}")
    if g % 8:
        raise ValueError(f"group_size ({g}) must be a multiple of 8 for this kernel: a packed "
                         "int32 word holds 8 entries and must lie in one group")
    for name, value, least in (("block_n", block_n, 1), ("block_k", block_k, 8)):
        if value < least or value & (value - 1):
            raise ValueError(f"{name} must be a power of 2 >= {least}, got {value}")
    if split_k < 1:
        raise ValueError(f"split_k must be >= 1, got {split_k}")
    _check_device(x, packed, scales, zeros)
    lead = x.shape[:-1]
    x2 = x.reshape(-1, k)
    m = x2.shape[0]
    if m == 0 or n == 0:
        return torch.zeros(*lead, n, dtype=x.dtype, device=x.device)
    x2 = x2.contiguous()
    packed = packed.contiguous()
    scales = scales.float().contiguous()
    zeros = zeros.float().contiguous()
    raise NotImplementedError('lesson15: w4a16_gemv_triton - read learning/lesson15.md#the-kernel-track-an-int4-gemv-in-triton')

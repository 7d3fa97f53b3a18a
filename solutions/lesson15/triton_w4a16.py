"""The kernel track: a W4A16 GEMV in Triton that dequantizes in registers.

``w4a16_matmul`` (w4a16.py) is the contract: the same operands (``packed [N, K // 8]`` int32
from pack_int4, ``scales`` and ``zeros [N, K // group_size]``), the same result
``x @ dequant(W).T`` in x's dtype. It gets there by writing the whole dequantized weight to
memory first. This kernel never does: each program of the grid owns ``BLOCK_N`` output rows,
walks along K in tiles of ``BLOCK_K`` entries, loads its rows' packed words (16 bytes per
thread at a time) with their scales and zeros, turns each nibble into a float with one and a
half integer instructions, and multiplies it with x in float32. The weight is read once, at half
a byte per entry: at batch 1 the time is the time to read those bytes, provided the arithmetic
per nibble stays small and the loads are issued early.

Four choices get it there:

* **A float without a conversion.** OR-ing a nibble ``q`` into bits 19..22 of the float 1.0
  (``0x3F800000``) gives the float ``1 + q / 16`` exactly; into bits 15..18, ``1 + q / 256``.
  One shift moves nibble J (odd) to bits 19..22 and so nibble J - 1 to bits 15..18: four shifts
  and eight AND-ORs (one ``LOP3`` instruction each on NVIDIA GPUs) for a word's eight nibbles,
  no int-to-float conversion. The kernel multiplies x by these floats and removes the ``1`` and
  the ``1/16`` or ``1/256`` once per run of words: ``sum x q = 16 (sum x (1 + q/16) - sum x)``.
* **The zero point comes out of the sum.** Within one group, ``sum_k x_k (q_k - z) s = s (sum_k
  x_k q_k - z sum_k x_k)``, so the inner loop never sees the scale or the zero point.
* **A layout for the loads (``repack_for_gemv``).** A thread loads 16 bytes, four words, 32
  nibbles. In pack_int4's order those are 32 consecutive entries, and the x values that
  nibble j of the four words needs (``x[8w + j]``) are four numbers 8 apart. Re-packed once,
  ahead of time (as torch's own int4 kernel re-packs with ``_convert_weight_to_int4pack``),
  nibble j of word v of each run of four words holds entry ``4j + v`` of the run's 32: the
  four x values for nibble j are then contiguous, one 8-byte load in the same place in every
  thread as the words they multiply. The run is the unit of everything: a group holds whole
  runs, so each thread applies one scale and zero per run.
* **Loads first.** A tile's words, scales and zeros are all requested before its arithmetic,
  and a barrier keeps the compiler from moving the scale loads down to their first use (which
  made each tile wait for memory twice). Scales and zeros are read in their own dtype: BF16
  ones, as torch's int4 kernel keeps them, are half the bytes of float32 ones.

Launch parameters (``block_n``, ``block_k``, ``num_warps``, ``num_stages``, ``split_k``) are
keyword arguments, so a tuning script can sweep them (tools/tune_w4a16.py). ``split_k > 1``
cuts K into that many ranges, one per program of a third grid axis, and adds the partial sums
with float32 atomics: more programs when N alone gives too few to fill the GPU.

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

from .int4_pack import pack_int4, unpack_int4
from .w4a16 import check_packed

# The launch at batch 1 on an H200 (2026-12-01, torch 2.11.0+cu130, Triton 3.6; swept over
# N x K = 4096 and 14336 by 4096, 4096 by 14336, 8192 by 8192, 2048 by 8192, 1024 by 4096):
# eight rows a program, tiles of up to 4096 entries of K (the largest power of two up to 4096
# that divides K), one warp per ENTRIES_PER_WARP entries of a tile (four warps on 8 x 4096),
# so that each thread has eight 16-byte loads in flight.
DEFAULT_BLOCK_N = 8
DEFAULT_MAX_BLOCK_K = 4096
DEFAULT_NUM_STAGES = 1
ENTRIES_PER_WARP = 8192
ONE_BITS = 0x3F800000  # the bits of the float32 1.0


def run_words(k: int, group_size: int) -> int:
    """Words one thread loads at a time (a "run" of 8 x this many entries): 4 (16 bytes) when
    runs of 32 entries tile both K and the group, else 2, else 1 (pack_int4's own order)."""
    g = k if group_size == -1 else group_size
    for words in (4, 2):
        if k % (8 * words) == 0 and g % (8 * words) == 0:
            return words
    return 1


def repack_for_gemv(packed: torch.Tensor, group_size: int) -> torch.Tensor:
    """pack_int4's layout -> the kernel's: in each run of ``V = run_words(K, group_size)``
    words, nibble j of word v holds entry ``V j + v`` of the run (pack_int4: entry ``8 v + j``).

    Done once per weight, like torch's ``_convert_weight_to_int4pack``. Built from this
    lesson's unpack_int4 and pack_int4, so it needs them implemented.
    """
    if packed.dtype != torch.int32 or packed.dim() != 2:
        raise ValueError(f"packed must be int32 [N, K // 8], got {packed.dtype} "
                         f"{tuple(packed.shape)}")
    n, k = packed.shape[0], packed.shape[1] * 8
    v = run_words(k, group_size)
    q = unpack_int4(packed).view(n, k // (8 * v), 8, v)      # [.., j, v]: entry V j + v
    return pack_int4(q.transpose(-1, -2).reshape(n, k))      # word v, nibble j


@triton.jit
def _two_nibbles(u, J: tl.constexpr, one_bits):
    """Nibbles J and J - 1 (J odd) of each uint32 word as the float32s ``1 + q_J / 16`` and
    ``1 + q_(J-1) / 256``: one shift moves nibble J to bits 19..22, which puts nibble J - 1 at
    bits 15..18; each AND-OR keeps one of the two and sets the bits of 1.0 (``one_bits``, a
    kernel argument so that the compiler keeps it in a register and emits one LOP3)."""
    if 4 * J <= 19:
        r = u << (19 - 4 * J)
    else:
        r = u >> (4 * J - 19)
    hi = ((r & 0x00780000) | one_bits).to(tl.float32, bitcast=True)
    lo = ((r & 0x00078000) | one_bits).to(tl.float32, bitcast=True)
    return hi, lo


@triton.jit
def _w4a16_gemv_kernel(x_ptr, w_ptr, s_ptr, z_ptr, out_ptr,
                       N, K, k_per_split, one_bits,
                       stride_xm, stride_wn, stride_sn, stride_zn, stride_om,
                       GROUP: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                       V: tl.constexpr, SPLIT_K: tl.constexpr, EVEN_N: tl.constexpr,
                       EVEN_K: tl.constexpr):
    """One program: rows ``[pid_n * BLOCK_N, + BLOCK_N)`` of the output row ``pid_m``, over
    the K range ``[pid_s * k_per_split, + k_per_split)``, on the re-packed weight (runs of V
    words; nibble j of word v of a run holds entry ``V j + v`` of the run).

    Read: learning/lesson15.md#the-kernel-track-an-int4-gemv-in-triton
    """
    ### BEGIN SOLUTION
    # hint: load a [BLOCK_N, BLOCK_K // 8] tile of words and its scales and zeros first (then
    # hint: .to(tl.float32): they may come in BF16); the x of nibble j of word w of the tile
    # hint: is entry (w // V) * 8V + w % V + V j
    # hint: _two_nibbles(u, J, one_bits), J = 1, 3, 5, 7: 1 + q/16 of nibble J, 1 + q/256 of J - 1
    # hint: sum x q = 16 (sum x (1 + q/16) - sum x) for one kind, 256 (...) for the other
    # hint: SPLIT_K > 1: tl.atomic_add the partial sums into a float32 output zeroed first
    pid_n = tl.program_id(0)
    pid_m = tl.program_id(1)
    pid_s = tl.program_id(2)
    WORDS: tl.constexpr = BLOCK_K // 8
    RUNS: tl.constexpr = WORDS // V
    rows = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    row_ok = rows < N
    words = tl.arange(0, WORDS)
    runs = tl.arange(0, RUNS)
    first = (words // V) * (8 * V) + words % V       # entry of nibble 0 of each word, in the tile
    # tiles start at multiples of BLOCK_K (k_per_split is whole tiles); saying so lets Triton
    # load each thread's four words as one 16-byte access
    k_start = tl.multiple_of(pid_s * k_per_split, BLOCK_K)
    k_end = tl.minimum(k_start + k_per_split, K)
    x_row = x_ptr + pid_m * stride_xm
    w_rows = w_ptr + rows[:, None] * stride_wn + words[None, :]
    acc = tl.zeros([BLOCK_N, RUNS], dtype=tl.float32)
    for k0 in range(k_start, k_end, BLOCK_K):
        # the tile's words, scales and zeros, all requested before any arithmetic
        group = (k0 + runs * (8 * V)) // GROUP      # a run's group is that of its first entry
        g_mask = row_ok[:, None] & (k0 + runs * (8 * V) < k_end)[None, :]
        if EVEN_K:
            if EVEN_N:
                packed = tl.load(w_rows + k0 // 8)
            else:
                packed = tl.load(w_rows + k0 // 8, mask=row_ok[:, None], other=0)
        else:
            word_ok = k0 + (words // V) * (8 * V) < k_end   # runs lie wholly inside or outside
            packed = tl.load(w_rows + k0 // 8, mask=row_ok[:, None] & word_ok[None, :], other=0)
        s = tl.load(s_ptr + rows[:, None] * stride_sn + group[None, :], mask=g_mask, other=0.0)
        z = tl.load(z_ptr + rows[:, None] * stride_zn + group[None, :], mask=g_mask, other=0.0)
        # without it the compiler moves the scale loads down to their first use, after the
        # arithmetic: two memory round trips a tile, not one
        tl.debug_barrier()
        u = packed.to(tl.uint32, bitcast=True)
        d16 = tl.zeros([BLOCK_N, WORDS], dtype=tl.float32)    # sum of x (1 + q/16), odd nibbles
        d256 = tl.zeros([BLOCK_N, WORDS], dtype=tl.float32)   # sum of x (1 + q/256), even ones
        x16 = tl.zeros([WORDS], dtype=tl.float32)             # their sums of x
        x256 = tl.zeros([WORDS], dtype=tl.float32)
        for p in tl.static_range(4):
            J = 2 * p + 1
            at = x_row + k0 + first + V * J                    # x of nibble J of every word
            if EVEN_K:
                x_hi = tl.load(at).to(tl.float32)
                x_lo = tl.load(at - V).to(tl.float32)                # x of nibble J - 1
            else:
                x_hi = tl.load(at, mask=word_ok, other=0.0).to(tl.float32)
                x_lo = tl.load(at - V, mask=word_ok, other=0.0).to(tl.float32)
            hi, lo = _two_nibbles(u, J, one_bits)
            d16 += hi * x_hi[None, :]
            d256 += lo * x_lo[None, :]
            x16 += x_hi
            x256 += x_lo
        # a thread's V words are one run: sum them in registers, then one scale and zero per
        # (row, run). sum x (q - z) = 16 (d16 - x16) + 256 (d256 - x256) - z (x16 + x256)
        d16_r = tl.sum(tl.reshape(d16, [BLOCK_N, RUNS, V]), axis=2)
        d256_r = tl.sum(tl.reshape(d256, [BLOCK_N, RUNS, V]), axis=2)
        x16_r = tl.sum(tl.reshape(x16, [RUNS, V]), axis=1)
        x256_r = tl.sum(tl.reshape(x256, [RUNS, V]), axis=1)
        ones = (16.0 * x16_r + 256.0 * x256_r)[None, :]      # what the 1s added, scaled
        xs_r = (x16_r + x256_r)[None, :]
        s = s.to(tl.float32)
        z = z.to(tl.float32)
        acc += s * (16.0 * d16_r + 256.0 * d256_r - ones - z * xs_r)
    y = tl.sum(acc, axis=1)
    out = out_ptr + pid_m * stride_om + rows
    if SPLIT_K == 1:
        tl.store(out, y.to(out_ptr.dtype.element_ty), mask=row_ok)
    else:
        tl.atomic_add(out, y, mask=row_ok)
    ### END SOLUTION


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


def default_num_warps(block_n: int, block_k: int) -> int:
    """One warp per ENTRIES_PER_WARP entries of a tile, at least one, at most eight."""
    return min(8, max(1, block_n * block_k // ENTRIES_PER_WARP))


def default_block_k(k: int, words: int) -> int:
    """The largest power of two up to DEFAULT_MAX_BLOCK_K that divides K (at least one run)."""
    block_k = DEFAULT_MAX_BLOCK_K
    while block_k > 8 * words and k % block_k:
        block_k //= 2
    return block_k


def w4a16_gemv_triton(x: torch.Tensor, packed: torch.Tensor, scales: torch.Tensor,
                      zeros: torch.Tensor, group_size: int = 128, *, repacked: bool = False,
                      block_n: int = DEFAULT_BLOCK_N, block_k: int | None = None,
                      num_warps: int | None = None, num_stages: int = DEFAULT_NUM_STAGES,
                      split_k: int = 1) -> torch.Tensor:
    """``x @ dequant(W).T`` for few rows of x, dequantizing W in registers.

    Args:
        x: ``[..., K]`` float32, bf16 or fp16; made for 1 to 16 rows (batch-1 decode is the
            case that matters: each row reads the whole weight once).
        packed: ``[N, K // 8]`` int32 from pack_int4 (entry ``8i + j`` in bits ``4j..4j+3`` of
            word i), or, with ``repacked=True``, that weight after ``repack_for_gemv`` (what a
            layer does once, ahead of time; re-packing on every call costs more than the GEMV).
            scales, zeros: ``[N, K // group_size]`` float (lesson 15's quantize_rtn).
        group_size: as in w4a16_matmul (-1: one group per row); a multiple of 8, so that a
            packed word never straddles two groups.
        block_n: output rows per program (a power of 2); block_k: entries of K per step (a
            power of 2, at least one run: 8 x ``run_words(K, group_size)``; default
            ``default_block_k``); num_warps (default ``default_num_warps``), num_stages:
            Triton's launch options; split_k: programs along K per block of rows (partial sums
            added with atomics).
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
    for name, t in (("scales", scales), ("zeros", zeros)):
        if t.dtype not in (torch.float32, torch.bfloat16, torch.float16):
            raise ValueError(f"{name} must be float32, bfloat16 or float16, got {t.dtype}")
    if g % 8:
        raise ValueError(f"group_size ({g}) must be a multiple of 8 for this kernel: a packed "
                         "int32 word holds 8 entries and must lie in one group")
    words = run_words(k, g)
    block_k = default_block_k(k, words) if block_k is None else int(block_k)
    for name, value, least in (("block_n", block_n, 1), ("block_k", block_k, 8 * words)):
        if value < least or value & (value - 1):
            raise ValueError(f"{name} must be a power of 2 >= {least} for this weight, got "
                             f"{value}" + (f" (runs of {8 * words} entries)" if name == "block_k"
                                           else ""))
    if split_k < 1:
        raise ValueError(f"split_k must be >= 1, got {split_k}")
    _check_device(x, packed, scales, zeros)
    lead = x.shape[:-1]
    x2 = x.reshape(-1, k)
    m = x2.shape[0]
    if m == 0 or n == 0:
        return torch.zeros(*lead, n, dtype=x.dtype, device=x.device)
    x2 = x2.contiguous()
    packed = packed.contiguous() if repacked else repack_for_gemv(packed, g)
    scales = scales.contiguous()      # read in their own dtype: bf16 ones are half the bytes
    zeros = zeros.contiguous()
    ### BEGIN SOLUTION
    # K range per split: whole tiles, so that tiles start at multiples of block_k
    k_per_split = triton.cdiv(triton.cdiv(k, split_k), block_k) * block_k
    n_splits = triton.cdiv(k, k_per_split)
    if n_splits == 1:
        out = torch.empty(m, n, dtype=x.dtype, device=x.device)
    else:
        out = torch.zeros(m, n, dtype=torch.float32, device=x.device)
    grid = (triton.cdiv(n, block_n), m, n_splits)
    if num_warps is None:
        num_warps = default_num_warps(block_n, block_k)
    _w4a16_gemv_kernel[grid](
        x2, packed, scales, zeros, out, n, k, k_per_split, ONE_BITS,
        x2.stride(0), packed.stride(0), scales.stride(0), zeros.stride(0), out.stride(0),
        GROUP=g, BLOCK_N=block_n, BLOCK_K=block_k, V=words, SPLIT_K=n_splits,
        EVEN_N=n % block_n == 0, EVEN_K=k % block_k == 0,
        num_warps=num_warps, num_stages=num_stages)
    return out.to(x.dtype).reshape(*lead, n)
    ### END SOLUTION

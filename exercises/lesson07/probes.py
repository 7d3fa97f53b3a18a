"""Measuring the memory hierarchy: a copy-bandwidth probe, an L2 probe, and finding the knee.

A copy much larger than the L2 cache runs at the speed of device memory (HBM). Copying a
working set that fits in L2 over and over runs at the speed of the L2; once the working set
outgrows the L2, the rate falls to the HBM rate. The size where it falls is the knee.

Read: learning/lesson07.md#measuring-the-hierarchy
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from course.bench import capture_cuda_graph, ensure_cuda


def copy_bandwidth(n_bytes: int, *, iters: int = 20) -> float:
    """Device-to-device copy rate in bytes/s, counting bytes read plus bytes written.

    Args:
        n_bytes: bytes to copy; make it many times the L2 (1 GiB) so the copy runs from HBM.
        iters: timed copies.
    Returns:
        ``2 x n_bytes x iters / seconds`` over ``iters`` back-to-back copies of one uint8
        tensor into another, timed with a pair of CUDA events around all of them after a few
        untimed copies (the first call pays for lazy initialisation). A copy reads each byte
        once and writes it once: count both, as the datasheet's bandwidth does.

    About 12 lines: ``torch.cuda.Event(enable_timing=True)``, ``record()``,
    ``torch.cuda.synchronize()`` before ``elapsed_time`` (milliseconds).

    Read: learning/lesson07.md#copy-bandwidth
    """
    ensure_cuda("copy_bandwidth")
    if n_bytes < 1 or iters < 1:
        raise ValueError(f"need n_bytes >= 1 and iters >= 1, got {n_bytes=}, {iters=}")
    raise NotImplementedError('lesson07: copy_bandwidth - read learning/lesson07.md#copy-bandwidth')


def l2_probe(sizes_bytes: Sequence[int], *, bytes_per_size: int = 1 << 30) -> list[float]:
    """Copy rate (bytes read + written per second) for each working-set size.

    For a working set of ``size`` bytes, copy one half (``size // 2`` bytes) into the other half
    again and again without clearing the cache, so a working set that fits stays in L2. Copy
    with an elementwise kernel, ``torch.neg(src, out=dst)`` on int32 views of the two halves,
    not with ``dst.copy_(src)``: captured in a CUDA graph, ``copy_`` becomes a memcpy node,
    which on an H200 (torch 2.11, CUDA 13.0) ran at about 2.7 TB/s for every size that is not
    a power of two, in L2 or not, and hid the knee. Repeat the copy
    ``max(4, bytes_per_size // size)`` times inside one CUDA graph
    (``course.bench.capture_cuda_graph``): small copies take a few microseconds, as long as
    launching them from Python, and a graph replay launches them all at once. Replay once
    untimed, then time one replay with CUDA events. Rate = ``size x repeats / seconds``.

    Args:
        sizes_bytes: working-set sizes in bytes, each >= 256 and a multiple of 8 (two halves
            of whole int32 elements).
        bytes_per_size: bytes to move per size, so every size is timed over a similar span.

    Returns:
        One rate per size, bytes/s, in the order given.

    Read: learning/lesson07.md#the-l2-knee
    """
    ensure_cuda("l2_probe")
    if any(size < 256 or size % 8 for size in sizes_bytes):
        raise ValueError("every working set must be at least 256 bytes and a multiple of 8 "
                         f"(two halves of whole int32 elements), got {list(sizes_bytes)}")
    raise NotImplementedError('lesson07: l2_probe - read learning/lesson07.md#the-l2-knee')


def find_knee(sizes_bytes: Sequence[float], bandwidths: Sequence[float], *,
              min_drop_ratio: float = 1.25) -> float | None:
    """The working-set size at which the bandwidth falls off its plateau, or None.

    Let ``peak`` be the largest bandwidth (the first one, if several tie) and ``floor`` the
    smallest bandwidth at or after the peak. If ``peak < min_drop_ratio x floor`` there is no
    knee: return None. Otherwise let ``half = (peak + floor) / 2``; walking from the peak to
    larger sizes, find the first point ``j`` whose bandwidth is below ``half``; point ``i = j - 1``
    is still at or above it. The knee is where the straight line between ``i`` and ``j``, drawn
    against ``log2(size)``, crosses ``half``:

        t = (bw[i] - half) / (bw[i] - bw[j])
        knee = 2 ** (log2(size[i]) + t x (log2(size[j]) - log2(size[i])))

    Small working sets measure low (launch overhead), so the curve may rise before its plateau;
    only what comes after the peak counts.

    Args:
        sizes_bytes: working-set sizes, strictly increasing, > 0.
        bandwidths: one rate per size (any unit), > 0.
        min_drop_ratio: how many times the floor the peak must be to call the fall a knee
            (above 1).
    Returns:
        The knee in bytes (a float), or None when the curve does not fall far enough.

    >>> find_knee([16, 32, 64, 128], [10.0, 10.0, 3.0, 3.0])   # sqrt(32 x 64)
    45.254833995939045

    Read: learning/lesson07.md#the-l2-knee
    """
    if len(sizes_bytes) != len(bandwidths) or len(sizes_bytes) < 2:
        raise ValueError("need at least two (size, bandwidth) pairs, as many sizes as "
                         f"bandwidths; got {len(sizes_bytes)} sizes, {len(bandwidths)} bandwidths")
    if any(not b > a for a, b in zip(sizes_bytes, sizes_bytes[1:])) or sizes_bytes[0] <= 0:
        raise ValueError(f"sizes must be positive and strictly increasing, got {list(sizes_bytes)}")
    if any(not (math.isfinite(b) and b > 0) for b in bandwidths):
        raise ValueError(f"bandwidths must be finite and positive, got {list(bandwidths)}")
    if not min_drop_ratio > 1:
        raise ValueError(f"min_drop_ratio must be above 1, got {min_drop_ratio}")
    raise NotImplementedError('lesson07: find_knee - read learning/lesson07.md#the-l2-knee')

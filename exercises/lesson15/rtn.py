"""Round-to-nearest (RTN) weight quantization with groups and zero points.

A weight ``w: [N, K]`` (N = d_out rows, K = d_in; torch's ``nn.Linear`` layout, the layer computes
``x @ w.T``) is cut into groups of ``group_size`` consecutive entries of one row. Each group gets
a float scale and an integer zero point, and each entry an integer ``q`` in ``0 .. 2^bits - 1``:

    w ~ (q - zero) * scale

Asymmetric (the default): the group's range is ``[lo, hi]`` with ``lo = min(min(w), 0)``,
``hi = max(max(w), 0)`` (widened to include 0, as lesson 16 explains), ``scale = (hi - lo) /
(2^bits - 1)``, ``zero = round(-lo / scale)``. Symmetric: ``zero = 2^(bits - 1)`` for every group
and ``scale = max|w| / (2^(bits - 1) - 1)``. Either way every entry comes back within half a step,
``|dequantize(...) - w| <= scale / 2``. A group whose entries are all 0 has no range; it gets
``scale = 1`` (any positive scale stores zeros exactly) instead of a division by zero.

Read: learning/lesson15.md#round-to-nearest-with-groups-and-zero-points
"""

from __future__ import annotations

import torch


def resolve_group_size(k: int, group_size: int) -> int:
    """The group size in entries: ``-1`` (or K) means one group per row (per channel)."""
    g = k if group_size == -1 else group_size
    if g < 1 or k % g:
        raise ValueError(f"group_size ({group_size}) must divide K ({k}) or be -1 for one group "
                         "per row")
    return g


def quantize_rtn(w: torch.Tensor, bits: int = 4, group_size: int = 128,
                 symmetric: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Quantize each group of ``group_size`` entries of each row to ``bits``-bit integers.

    Args:
        w: ``[N, K]`` float (float32, bf16 or fp16).
        bits: 2..8. group_size: divides K, or -1 for one group per row.
        symmetric: zero point fixed at ``2^(bits - 1)`` and ``scale = max|w| / (2^(bits-1) - 1)``;
            otherwise asymmetric min/max over the range widened to include 0.
    Returns:
        ``(q, scales, zeros)``: q ``[N, K]`` uint8 in ``[0, 2^bits - 1]``; scales, zeros
        ``[N, K // group_size]`` float32, zeros holding whole numbers in ``[0, 2^bits - 1]``.
        ``q = clamp(round(w / scale) + zero, 0, 2^bits - 1)``. An all-zero group gets scale 1.
        Computed in float32 whatever w's dtype. Each entry is within ``scale / 2`` of w.

    Example: ``[1, 2, 3, 4]`` at 2 bits, one group: range ``[0, 4]``, scale 4/3, zero 0,
    q = ``[1, 2, 2, 3]``. Vectorised over ``[N, n_groups, group_size]``; about 12 lines.

    Read: learning/lesson15.md#round-to-nearest-with-groups-and-zero-points
    """
    if w.dim() != 2 or not w.dtype.is_floating_point:
        raise ValueError(f"w must be a float [N, K] tensor, got {w.dtype} {tuple(w.shape)}")
    if not 2 <= bits <= 8:
        raise ValueError(f"bits must be in 2..8, got {bits}")
    g = resolve_group_size(w.shape[1], group_size)
    raise NotImplementedError('lesson15: quantize_rtn - read learning/lesson15.md#round-to-nearest-with-groups-and-zero-points')


def dequantize(q: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor,
               group_size: int) -> torch.Tensor:
    """``(q - zero) * scale`` with each group's own scale and zero.

    Args:
        q: ``[N, K]`` integers; scales, zeros: ``[N, K // group_size]``; group_size as in
            quantize_rtn (-1: one group per row).
    Returns:
        ``[N, K]`` float32. Entry ``(n, k)`` uses group ``k // group_size`` of row n: the
        groups run along K, so a scale covers ``group_size`` neighbours in a row, not every
        ``n_groups``-th entry. About 3 lines (a view ``[N, n_groups, group_size]``).

    Read: learning/lesson15.md#round-to-nearest-with-groups-and-zero-points
    """
    if q.dim() != 2:
        raise ValueError(f"q must be [N, K], got {tuple(q.shape)}")
    g = resolve_group_size(q.shape[1], group_size)
    want = (q.shape[0], q.shape[1] // g)
    if tuple(scales.shape) != want or tuple(zeros.shape) != want:
        raise ValueError(f"scales and zeros must be [N, K // group_size] = {list(want)}, got "
                         f"{list(scales.shape)} and {list(zeros.shape)}")
    raise NotImplementedError('lesson15: dequantize - read learning/lesson15.md#round-to-nearest-with-groups-and-zero-points')

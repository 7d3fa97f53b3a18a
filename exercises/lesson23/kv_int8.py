"""Int8 KV cache: symmetric absmax quantization with a scale per token or per channel.

``kv_quant_int8(x, axis)`` maps a float tensor ``[..., T, d]`` (T tokens of d channels) to
int8 codes in ``[-127, 127]`` and float32 scales: ``axis="token"`` gives each token its own
scale (shape ``[..., T, 1]``, the max over its d channels), ``axis="channel"`` each channel
(shape ``[..., 1, d]``, the max over the T tokens). Reading multiplies back. Rounding to the
nearest code makes every element's error at most half a step, ``scale / 2``.

KIVI (Liu et al., ICML 2024) quantizes keys per channel and values per token: a few key
channels are large for every token (outlier channels), and a per-token scale set by them
flattens the small channels to zero.

Read: learning/lesson23.md#int8-kv
"""

from __future__ import annotations

import torch

QMAX = 127          # symmetric: -128 is never used, so q and -q are both codes
SCALE_FLOOR = 1e-12  # scale of an all-zero (or nearly zero) row: finite, so 0 / scale is 0
AXES = {"token": -1, "channel": -2}  # the dimension the absmax runs over


def kv_quant_int8(x: torch.Tensor, axis: str = "token") -> tuple[torch.Tensor, torch.Tensor]:
    """Quantize ``x: [..., T, d]`` to ``(q, scale)``: int8 ``q`` of x's shape, float32 ``scale``.

    ``scale = max(absmax / 127, SCALE_FLOOR)`` over d channels per token (``axis="token"``,
    scale ``[..., T, 1]``) or over T tokens per channel (``axis="channel"``, scale
    ``[..., 1, d]``); absmax is the largest MAGNITUDE (a row whose outlier is negative counts
    it). ``q = round(x / scale)`` (round half to even, as ``torch.round``), which stays within
    ``[-127, 127]``. Compute in float32 whatever x's dtype. About 4 lines.

    Read: learning/lesson23.md#int8-kv
    """
    if axis not in AXES:
        raise ValueError(f"axis must be one of {sorted(AXES)}, got {axis!r}")
    if x.dim() < 2 or not x.is_floating_point():
        raise ValueError(f"x must be a float tensor [..., T, d], got {x.dtype} {tuple(x.shape)}")
    raise NotImplementedError('lesson23: kv_quant_int8 - read learning/lesson23.md#int8-kv')


def kv_dequant_int8(q: torch.Tensor, scale: torch.Tensor,
                    dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``q * scale`` computed in float32, returned in ``dtype``. About 1 line.

    Read: learning/lesson23.md#int8-kv
    """
    if q.dtype != torch.int8 or scale.dtype != torch.float32:
        raise ValueError(f"need int8 codes and float32 scales, got {q.dtype} and {scale.dtype}")
    raise NotImplementedError('lesson23: kv_dequant_int8 - read learning/lesson23.md#int8-kv')


def int8_kv_bytes(n_tokens: int, n_kv_heads: int, d_head: int, axis: str = "token") -> int:
    """Bytes of one K (or V) int8 cache of n_tokens: one byte per element plus float32 scales
    (one per token and head for ``"token"``, one per channel and head for ``"channel"``)."""
    scales = n_tokens * n_kv_heads if axis == "token" else n_kv_heads * d_head
    return n_tokens * n_kv_heads * d_head + 4 * scales

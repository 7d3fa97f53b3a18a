"""FP8 quantization: the two OCP formats, their limits from the bit layout, and scales.

An FP8 number is ``sign | exponent (E bits) | mantissa (M bits)``. E4M3 ("e4m3fn", bias 7)
gives up infinities to gain range: only the all-ones pattern S.1111.111 is NaN, so the
largest finite value is 1.75 x 2^8 = 448. E5M2 (bias 15) keeps IEEE rules: an all-ones
exponent means inf or NaN, so the largest finite value is 1.75 x 2^15 = 57344.

Quantizing: ``scale = amax / fmt_max`` (per tensor, per token or per channel), then
``q = cast(clamp(x / scale, -fmt_max, fmt_max))``; dequantizing is ``q * scale``. The clamp
matters: torch 2.13 saturates e4m3fn casts at 448 but turns e5m2 overflow into inf.

Read: learning/lesson16.md#fp8-formats-from-the-bits
"""

from __future__ import annotations

import torch

FORMATS = {  # name -> (exponent bits, mantissa bits, bias, all-ones exponent reserved for inf/NaN)
    "e4m3": (4, 3, 7, False),
    "e5m2": (5, 2, 15, True),
}
DTYPES = {"e4m3": torch.float8_e4m3fn, "e5m2": torch.float8_e5m2}
GRANULARITIES = ("per_tensor", "per_token", "per_channel")


def check_format(fmt: str) -> None:
    """Raise ValueError unless fmt is 'e4m3' or 'e5m2'."""
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {sorted(FORMATS)}, got {fmt!r}")


def fp8_limits(fmt: str) -> dict[str, float]:
    """Largest finite value, smallest normal and smallest subnormal of an FP8 format.

    Derive them from ``FORMATS[fmt] = (exponent_bits, mantissa_bits, bias, ieee)``, not from
    ``torch.finfo``. With ``ieee`` True the all-ones exponent holds inf/NaN (so the largest
    finite number uses the exponent below it, with all mantissa bits set). With ``ieee``
    False (e4m3fn) the all-ones exponent holds numbers too; only its all-ones mantissa is
    NaN, so the largest finite mantissa there is ``1.110`` in binary.

    Returns: ``{"max": ..., "min_normal": ..., "min_subnormal": ...}`` as Python floats.
    Example: ``fp8_limits("e4m3")["max"] == 448.0``; ``fp8_limits("e5m2")["max"] == 57344.0``.
    About 8 lines.

    Read: learning/lesson16.md#fp8-formats-from-the-bits
    """
    check_format(fmt)
    e_bits, m_bits, bias, ieee = FORMATS[fmt]
    ### BEGIN SOLUTION
    top_exponent = 2**e_bits - 1            # the all-ones exponent field
    if ieee:
        max_field, max_mantissa = top_exponent - 1, 2**m_bits - 1
    else:
        max_field, max_mantissa = top_exponent, 2**m_bits - 2   # all-ones mantissa is NaN
    largest = (1 + max_mantissa / 2**m_bits) * 2.0 ** (max_field - bias)
    min_normal = 2.0 ** (1 - bias)
    return {"max": largest, "min_normal": min_normal,
            "min_subnormal": min_normal / 2**m_bits}
    ### END SOLUTION


def fp8_quantize(x: torch.Tensor, fmt: str = "e4m3",
                 granularity: str = "per_tensor") -> tuple[torch.Tensor, torch.Tensor]:
    """Scale x into an FP8 format's range and cast; returns ``(q, scale)``.

    Args:
        x: a float tensor of at least 1 dim, e.g. activations ``[tokens, d_model]``.
        fmt: ``"e4m3"`` (torch.float8_e4m3fn) or ``"e5m2"`` (torch.float8_e5m2).
        granularity: ``"per_tensor"`` (one scale), ``"per_token"`` (one per row: reduce over
            the last dim) or ``"per_channel"`` (one per column: reduce over all other dims).
            For a weight ``W: [d_out, d_in]`` pass ``W.T`` to get one scale per output channel,
            as ``torch._scaled_mm`` wants for its second operand.
    Returns:
        q: x's shape, dtype ``DTYPES[fmt]``; scale: float32 of shape ``[]`` (per_tensor),
        ``[..., 1]`` (per_token: x's shape with the last dim 1) or ``[x.shape[-1]]``
        (per_channel), so ``q.float() * scale`` broadcasts back to x.

    The scale maps the absolute maximum of each group onto the format's max:
    ``scale = amax / fmax`` with ``fmax = fp8_limits(fmt)["max"]``; an all-zero group gets
    scale 1 (never 0, never NaN). Clamp ``x / scale`` to ``[-fmax, fmax]`` before the cast:
    the result must never hold inf or NaN. About 10 lines.

    Speed is graded on a GPU: quantizing an 8192 x 8192 activation per token may cost at most
    18 device-to-device copies of it (one absmax pass and one scaled cast; no Python loops).

    Read: learning/lesson16.md#scales-and-granularity
    """
    check_format(fmt)
    if granularity not in GRANULARITIES:
        raise ValueError(f"granularity must be one of {GRANULARITIES}, got {granularity!r}")
    if x.dim() == 0 or not x.dtype.is_floating_point:
        raise ValueError(f"x must be a float tensor with at least one dim, got {x.dtype} "
                         f"of shape {tuple(x.shape)}")
    ### BEGIN SOLUTION
    fmax = fp8_limits(fmt)["max"]
    x32 = x.float()
    if granularity == "per_tensor":
        amax = x32.abs().amax()
    elif granularity == "per_token":
        amax = x32.abs().amax(dim=-1, keepdim=True)
    else:
        amax = x32.abs().reshape(-1, x.shape[-1]).amax(dim=0)
    scale = torch.where(amax > 0, amax / fmax, torch.ones_like(amax)).float()
    q = (x32 / scale).clamp(-fmax, fmax).to(DTYPES[fmt])
    return q, scale
    ### END SOLUTION


def fp8_dequantize(q: torch.Tensor, scale: torch.Tensor,
                   dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Inverse of fp8_quantize up to rounding: ``q * scale`` in ``dtype``."""
    return (q.float() * scale).to(dtype)

"""SmoothQuant (Xiao et al., ICML 2023): move activation outliers into the weights.

A linear layer ``y = x @ w.T`` (x: ``[tokens, d_in]``, w: ``[d_out, d_in]``) is unchanged
when input channel j of x is divided by ``s_j`` and column j of w multiplied by it:
``(x / s) @ (w * s).T == x @ w.T``. Activations of LLMs have a few channels 100x larger than
the rest; dividing them down makes x easy to quantize, at the price of a slightly harder w.
The migration strength alpha splits the difficulty:
``s_j = max|x_j|^alpha / max|w_j|^(1 - alpha)``.

In a deployed model ``1 / s`` is folded into the previous op (the RMSNorm weight), so the
smoothing costs nothing at run time.

Read: learning/lesson16.md#smoothquant
"""

from __future__ import annotations

import torch


def smoothquant_scales(act_absmax: torch.Tensor, w_absmax: torch.Tensor,
                       alpha: float = 0.5) -> torch.Tensor:
    """Per-input-channel smoothing factors ``s_j = act_absmax_j^alpha / w_absmax_j^(1-alpha)``.

    Args:
        act_absmax: ``[d_in]``, max over calibration tokens of ``|x[:, j]|`` (> = 0).
        w_absmax: ``[d_in]``, max over output channels of ``|w[:, j]|`` (> = 0).
        alpha: migration strength in [0, 1]; 0 leaves x alone (s depends on w only), 1 moves
            all of x's range into w.
    Returns:
        ``[d_in]`` float32, every entry finite and > 0. Clamp both absmax inputs to at least
        1e-5 first, so a dead channel gets a finite factor. About 3 lines.

    Read: learning/lesson16.md#smoothquant
    """
    if act_absmax.shape != w_absmax.shape or act_absmax.dim() != 1:
        raise ValueError(f"act_absmax and w_absmax must both be [d_in], got "
                         f"{tuple(act_absmax.shape)} and {tuple(w_absmax.shape)}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    ### BEGIN SOLUTION
    a = act_absmax.float().clamp(min=1e-5)
    w = w_absmax.float().clamp(min=1e-5)
    return a.pow(alpha) / w.pow(1.0 - alpha)
    ### END SOLUTION


def smooth(x: torch.Tensor, w: torch.Tensor, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply smoothing factors: returns ``(x / s, w * s)`` with s along the input channels.

    Args:
        x: ``[..., d_in]`` activations; w: ``[d_out, d_in]``; s: ``[d_in]`` from
            smoothquant_scales.
    Returns:
        ``x_s: [..., d_in]`` and ``w_s: [d_out, d_in]`` with ``x_s @ w_s.T == x @ w.T`` up to
        float rounding (an exact identity before any quantization). About 2 lines.

    Read: learning/lesson16.md#smoothquant
    """
    if w.dim() != 2 or x.shape[-1] != w.shape[1] or s.shape != (w.shape[1],):
        raise ValueError(f"need x [..., d_in], w [d_out, d_in], s [d_in] with one d_in; got "
                         f"{tuple(x.shape)}, {tuple(w.shape)}, {tuple(s.shape)}")
    ### BEGIN SOLUTION
    return x / s, w * s
    ### END SOLUTION


def fake_quant_int8(t: torch.Tensor, dim: int | None) -> torch.Tensor:
    """Symmetric int8 round trip: scale = amax / 127 over ``dim`` (None: the whole tensor)."""
    amax = t.abs().amax() if dim is None else t.abs().amax(dim=dim, keepdim=True)
    scale = amax.clamp(min=1e-12) / 127.0
    return (t / scale).round().clamp(-127, 127) * scale


def w8a8_linear(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Simulated W8A8 ``x @ w.T``: activations per tensor (static, as SmoothQuant's O3
    setting), weights per output channel, both symmetric int8; returns float32."""
    return fake_quant_int8(x.float(), None) @ fake_quant_int8(w.float(), -1).T

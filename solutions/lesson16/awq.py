"""Group-wise integer weight quantization: round-to-nearest (RTN) and AWQ.

Both store a weight ``w: [d_out, d_in]`` as unsigned ``bits``-bit integers ``q`` in groups of
``group_size`` consecutive input channels of one row, each group with its own ``scale`` and
integer ``zero`` point: ``w ~ (q - zero) * scale`` (asymmetric min/max, with each group's range
widened to include 0 as GPTQ's quantizer does, so the zero point always fits in ``bits`` bits).

AWQ (Lin et al., MLSys 2024) keeps that format but first multiplies input channel j of w by
``s_j = mean|x_j|^alpha`` (normalised), quantizes ``w * s``, and divides the dequantized
weight by s again (in a deployed model ``1 / s`` is folded into the previous op). Channels
that see large activations get finer steps. alpha is chosen by a grid search that minimises
the layer's output error on calibration activations; ``alpha = 0`` is plain RTN, so on the
calibration data AWQ is never worse than RTN.

Read: learning/lesson16.md#awq-activation-aware-weight-quantization
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class GroupQuant:
    """Integers and per-group parameters of a quantized ``[d_out, d_in]`` weight.

    q: ``[d_out, d_in]`` uint8 in ``[0, 2^bits - 1]``; scale, zero: ``[d_out, d_in //
    group_size]`` float32 (zero holds whole numbers in ``[0, 2^bits - 1]``).
    """

    q: torch.Tensor
    scale: torch.Tensor
    zero: torch.Tensor
    bits: int
    group_size: int

    def dequantize(self) -> torch.Tensor:
        """``(q - zero) * scale`` per group, as float32 ``[d_out, d_in]``."""
        d_out, d_in = self.q.shape
        groups = self.q.float().view(d_out, d_in // self.group_size, self.group_size)
        return ((groups - self.zero[..., None]) * self.scale[..., None]).view(d_out, d_in)


@dataclass
class AWQResult:
    """AWQ output: the quantized scaled weight, the input-channel scales s and the alpha chosen.

    The effective weight is ``quant.dequantize() / input_scale`` (input_scale: ``[d_in]``).
    """

    quant: GroupQuant
    input_scale: torch.Tensor
    alpha: float

    def dequantize(self) -> torch.Tensor:
        return self.quant.dequantize() / self.input_scale


def check_weight(w: torch.Tensor, bits: int, group_size: int) -> None:
    """Raise ValueError for a weight that is not [d_out, d_in] with d_in a multiple of group_size."""
    if w.dim() != 2 or not w.dtype.is_floating_point:
        raise ValueError(f"w must be a float [d_out, d_in] tensor, got {w.dtype} {tuple(w.shape)}")
    if not 2 <= bits <= 8:
        raise ValueError(f"bits must be in 2..8, got {bits}")
    if group_size < 1 or w.shape[1] % group_size:
        raise ValueError(f"group_size ({group_size}) must divide d_in ({w.shape[1]}); the "
                         "course model has d_model 576 = 9 x 64, so use 64 there, not 128")


def quantize_rtn(w: torch.Tensor, bits: int = 4, group_size: int = 128) -> GroupQuant:
    """Asymmetric round-to-nearest quantization, one (scale, zero) per group of a row.

    For each group of ``group_size`` consecutive entries of a row, with ``top = 2^bits - 1``
    and the group's range widened to include 0, ``lo = min(min(w), 0)``, ``hi = max(max(w), 0)``:
    ``scale = max(hi - lo, 1e-5) / top``, ``zero = round(-lo / scale)`` (a whole number in
    ``[0, top]``, so it fits in ``bits`` bits), ``q = clamp(round(w / scale) + zero, 0, top)``.

    Args: w ``[d_out, d_in]`` float; bits in 2..8; group_size divides d_in.
    Returns: GroupQuant; every entry's error ``|dequantize() - w|`` is at most ``scale / 2``
    of its group (within float rounding), for any group, including one whose entries all have
    the same sign: ``[1, 2, 3, 4]`` at 2 bits gets ``scale = 4 / 3`` and comes back as
    ``[4/3, 8/3, 8/3, 4]``, each within 2/3. Vectorised: view w as ``[d_out, n_groups,
    group_size]``. About 8 lines.

    Read: learning/lesson16.md#round-to-nearest-with-groups
    """
    check_weight(w, bits, group_size)
    ### BEGIN SOLUTION
    # hint: widen each group's [min, max] to include 0; then zero = round(-lo / scale) is in [0, top]
    d_out, d_in = w.shape
    top = 2**bits - 1
    groups = w.float().view(d_out, d_in // group_size, group_size)
    lo, hi = groups.amin(dim=-1).clamp(max=0), groups.amax(dim=-1).clamp(min=0)
    scale = (hi - lo).clamp(min=1e-5) / top
    zero = (-lo / scale).round().clamp(0, top)  # the clamp only guards float rounding
    q = ((groups / scale[..., None]).round() + zero[..., None]).clamp(0, top)
    return GroupQuant(q.view(d_out, d_in).to(torch.uint8), scale, zero, bits, group_size)
    ### END SOLUTION


def awq_input_scale(x_mean: torch.Tensor, alpha: float) -> torch.Tensor:
    """AWQ's per-input-channel scale for one alpha: ``mean|x|^alpha``, normalised so that
    ``max(s) * min(s) == 1`` (the scales straddle 1). x_mean: ``[d_in]`` -> ``[d_in]``."""
    s = x_mean.float().pow(alpha).clamp(min=1e-4)
    return s / (s.max() * s.min()).sqrt()


def quantize_awq(w: torch.Tensor, x_calib: torch.Tensor, bits: int = 4, group_size: int = 128,
                 n_grid: int = 20) -> AWQResult:
    """Activation-aware quantization: grid-search alpha, keep the one with least output error.

    Args:
        w: ``[d_out, d_in]``; x_calib: ``[..., d_in]`` calibration activations of this layer.
        bits, group_size: as quantize_rtn; n_grid: try ``alpha = i / n_grid`` for
            ``i = 0 .. n_grid - 1`` (AWQ's grid; it starts at 0, plain RTN).
    Returns:
        AWQResult for the alpha whose ``s = awq_input_scale(mean|x|, alpha)`` minimises the
        mean squared error ``mean((x @ w_hat.T - x @ w.T)^2)`` over the calibration tokens,
        where ``w_hat = quantize_rtn(w * s).dequantize() / s``. Ties keep the smaller alpha,
        so the result's calibration error is at most RTN's. About 14 lines.

    Read: learning/lesson16.md#awq-activation-aware-weight-quantization
    """
    check_weight(w, bits, group_size)
    if x_calib.shape[-1] != w.shape[1]:
        raise ValueError(f"x_calib's last dim ({x_calib.shape[-1]}) must be d_in ({w.shape[1]})")
    if n_grid < 1:
        raise ValueError(f"n_grid must be >= 1, got {n_grid}")
    ### BEGIN SOLUTION
    x = x_calib.reshape(-1, w.shape[1]).float()
    w = w.float()
    x_mean = x.abs().mean(dim=0)
    y = x @ w.T
    best = None
    for i in range(n_grid):
        alpha = i / n_grid
        s = awq_input_scale(x_mean, alpha)
        quant = quantize_rtn(w * s, bits, group_size)
        err = ((x @ (quant.dequantize() / s).T - y) ** 2).mean().item()
        if best is None or err < best[0]:
            best = (err, AWQResult(quant, s, alpha))
    return best[1]
    ### END SOLUTION

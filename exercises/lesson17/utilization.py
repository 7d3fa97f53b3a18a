"""How much of the GPU's roofs a serving run uses: MBU and MFU.

MBU (model bandwidth utilisation, Databricks 2023) is the bytes a decode step must read divided
by the step's time, as a share of the peak memory bandwidth. MFU (model FLOPs utilisation,
Chowdhery et al. 2022, PaLM appendix B) is the FLOPs the model needs for the tokens it produced
per second, as a share of the peak FLOP rate. Both are shares of the roofs of lesson 11: a value
above 1 is not a fast run but a miscount (bytes or FLOPs counted twice, bits for bytes, a time in
ms passed as seconds).

Read: learning/lesson17.md#mbu-and-mfu
"""

from __future__ import annotations

from collections.abc import Sequence

# A share above 1 + TOLERANCE is refused: float rounding of a correct count stays far below it.
TOLERANCE = 1e-6


def decode_step_bytes(weight_bytes: float, kv_bytes_per_token: float,
                      context_lens: Sequence[int]) -> float:
    """Bytes one decode step of a batch must read from memory, at least.

    Args:
        weight_bytes: bytes of the model's weights (parameters x bytes per parameter).
        kv_bytes_per_token: KV-cache bytes of one token (lesson 04's formula), B.
        context_lens: for each sequence of the batch, the tokens whose K and V its new token
            attends to (they may all differ).
    Returns:
        The weights once (every sequence of the batch shares one read of each matrix) plus the
        KV cache of every sequence: weight_bytes + kv_bytes_per_token x sum(context_lens).

    Example: 1e9 B of weights, 1000 B per token, contexts (100, 300) -> 1.0004e9 B.

    Read: learning/lesson17.md#mbu-and-mfu
    """
    if weight_bytes < 0 or kv_bytes_per_token < 0 or any(n < 0 for n in context_lens):
        raise ValueError("byte counts and context lengths must be >= 0, got weight_bytes "
                         f"{weight_bytes!r}, kv_bytes_per_token {kv_bytes_per_token!r}, "
                         f"context_lens {list(context_lens)!r}")
    raise NotImplementedError('lesson17: decode_step_bytes - read learning/lesson17.md#mbu-and-mfu')


def check_rate_inputs(amount: float, time_or_rate: float, peak: float, what: str) -> None:
    if not amount >= 0:
        raise ValueError(f"{what}: the count must be >= 0, got {amount!r}")
    if not time_or_rate > 0 or not peak > 0:
        raise ValueError(f"{what}: times, rates and peaks must be > 0, got {time_or_rate!r} "
                         f"and peak {peak!r}")


def refuse_above_1(share: float, what: str, implied: str, miscounts: str) -> float:
    """Return `share`, or raise ValueError when it is above 1 + TOLERANCE: a share of a roof
    above the roof is a miscount, never a fast run."""
    if share > 1 + TOLERANCE:
        raise ValueError(f"{what} {share:.3g} is above 1: {implied}, faster than the peak. "
                         f"{miscounts}")
    return share


def mbu(bytes_per_step: float, step_time_s: float, peak_bytes_per_s: float) -> float:
    """Model bandwidth utilisation of a decode step.

    Args:
        bytes_per_step: bytes the step must read (``decode_step_bytes``), B.
        step_time_s: the step's time, s (at batch 1 this is the TPOT).
        peak_bytes_per_s: the device's peak memory bandwidth, B/s (e.g. an H200's 4.8e12).
    Returns:
        (bytes_per_step / step_time_s) / peak_bytes_per_s, a share in [0, 1]. The given line
        after your code refuses a share above 1 (ValueError naming the likely miscount), so
        assign ``share`` and let the function reach it. One line.

    Example: 16.3e9 B in 10 ms on 4.8e12 B/s -> 0.34.

    Read: learning/lesson17.md#mbu-and-mfu
    """
    check_rate_inputs(bytes_per_step, step_time_s, peak_bytes_per_s, "mbu")
    raise NotImplementedError('lesson17: mbu - read learning/lesson17.md#mbu-and-mfu')
    return refuse_above_1(
        share, "MBU", f"reading {bytes_per_step:.4g} B in {step_time_s:.4g} s is "
        f"{bytes_per_step / step_time_s:.4g} B/s on a {peak_bytes_per_s:.4g} B/s device",
        "The byte count is too high (weights read once per sequence instead of once per step? "
        "bits for bytes?) or the time too short (ms passed as s?)")


def mfu(tokens_per_s: float, flops_per_token: float, peak_flops_per_s: float) -> float:
    """Model FLOPs utilisation: the model's FLOPs per second as a share of the peak.

    Args:
        tokens_per_s: tokens processed per second (prompt and output tokens both need a
            forward pass; count the ones the run did), tokens/s.
        flops_per_token: FLOPs the model needs per token (about 2 x parameters, plus
            attention: lesson 01), FLOP.
        peak_flops_per_s: the device's dense peak for the dtype used, FLOP/s.
    Returns:
        tokens_per_s x flops_per_token / peak_flops_per_s, a share in [0, 1]. As in ``mbu``,
        the given line after your code refuses a share above 1; assign ``share``. One line.

    Example: 1000 tokens/s x 16e9 FLOP on 989.4e12 FLOP/s -> 0.0162.

    Read: learning/lesson17.md#mbu-and-mfu
    """
    check_rate_inputs(flops_per_token, tokens_per_s, peak_flops_per_s, "mfu")
    raise NotImplementedError('lesson17: mfu - read learning/lesson17.md#mbu-and-mfu')
    return refuse_above_1(
        share, "MFU", f"{tokens_per_s:.4g} tokens/s x {flops_per_token:.4g} FLOP is "
        f"{tokens_per_s * flops_per_token:.4g} FLOP/s on a {peak_flops_per_s:.4g} FLOP/s device",
        "The FLOP count is too high (a multiply-add counted as 4 FLOPs? the wrong dtype's "
        "peak?) or the token rate too high (ms passed as s?)")

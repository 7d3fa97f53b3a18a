"""Swap or recompute: what it costs to bring a preempted sequence back (vLLM, SOSP 2023, 4.5).

Two simple models, stated so that every term can be checked by hand:

- swap: the KV of ``ctx_len`` tokens goes to host memory over the host link when the sequence
  is preempted, and comes back the same way when it resumes: ``2 x KV bytes`` over
  ``link_bytes_per_s_per_direction`` (the two copies run in opposite directions but one after
  the other, so each takes ``KV bytes / per-direction bandwidth``);
- recompute: a prefill of ``ctx_len`` tokens at the GPU's peak: the projections and the MLP
  (``2 x layer parameters`` FLOPs per token) plus causal attention, whose query ``i`` meets
  ``i + 1`` keys: ``QK^T`` and ``PV`` each cost ``2 x d_head`` FLOPs per pair and head, so
  ``2 x n_layers x n_heads x d_head x L (L + 1)`` FLOPs in all. No LM head (the sampled token
  is already known) and no norms. At peak this is the fastest a recompute can be, so the model
  leans towards recompute.

Read: learning/lesson18.md#swap-or-recompute
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def layer_params(cfg) -> int:
    """Weights that every token multiplies in the decoder layers (no embeddings, no norms)."""
    d = cfg.d_model
    attn = 2 * d * cfg.n_heads * cfg.d_head + 2 * d * cfg.n_kv_heads * cfg.d_head
    return cfg.n_layers * (attn + 3 * d * cfg.d_ff)


@dataclass(frozen=True)
class SwapOrRecompute:
    choice: str  # "swap" or "recompute": the cheaper at this ctx_len (swap on a tie)
    swap_s: float  # seconds: out and back in
    recompute_s: float  # seconds: prefill of ctx_len tokens at peak
    crossover_tokens: int  # smallest ctx_len >= 1 at which swap is no slower than recompute


def _check(cfg, ctx_len, link, peak, dtype_bytes):
    if isinstance(ctx_len, bool) or not isinstance(ctx_len, int) or ctx_len < 0:
        raise ValueError(f"ctx_len must be a whole number of tokens >= 0, got {ctx_len!r}")
    if not link > 0 or not peak > 0:
        raise ValueError(f"the link bandwidth (bytes/s per direction) and the peak (FLOP/s) must "
                         f"be > 0, got {link!r} and {peak!r}")
    if dtype_bytes not in (1, 2, 4):
        raise ValueError(f"dtype_bytes must be 1, 2 or 4, got {dtype_bytes!r}")


def swap_seconds(cfg, ctx_len: int, link_bytes_per_s_per_direction: float,
                 dtype_bytes: int = 2) -> float:
    """Seconds to copy the KV of ``ctx_len`` tokens to the host and back, one direction each:
    ``2 x ctx_len x b / link``, with ``b`` the KV bytes per token at ``dtype_bytes`` per value
    (K and V of every layer and KV head).

    Read: learning/lesson18.md#swap-or-recompute
    """
    _check(cfg, ctx_len, link_bytes_per_s_per_direction, 1.0, dtype_bytes)
    ### BEGIN SOLUTION
    per_token = 2 * cfg.n_layers * cfg.n_kv_heads * cfg.d_head * dtype_bytes
    return 2 * ctx_len * per_token / link_bytes_per_s_per_direction
    ### END SOLUTION


def recompute_seconds(cfg, ctx_len: int, peak_flops_per_s: float) -> float:
    """Seconds to prefill ``ctx_len`` tokens at ``peak_flops_per_s``: ``2 x layer_params(cfg)``
    FLOPs per token plus ``2 x n_layers x n_heads x d_head x ctx_len (ctx_len + 1)`` for causal
    attention.

    Read: learning/lesson18.md#swap-or-recompute
    """
    _check(cfg, ctx_len, 1.0, peak_flops_per_s, 2)
    ### BEGIN SOLUTION
    linear = 2 * layer_params(cfg) * ctx_len
    attention = 2 * cfg.n_layers * cfg.n_heads * cfg.d_head * ctx_len * (ctx_len + 1)
    return (linear + attention) / peak_flops_per_s
    ### END SOLUTION


def swap_vs_recompute(cfg, ctx_len: int, link_bytes_per_s_per_direction: float,
                      peak_flops_per_s: float, dtype_bytes: int = 2) -> SwapOrRecompute:
    """Both costs at ``ctx_len``, the cheaper one (``swap`` on a tie) and the crossover: the
    smallest context length ``L >= 1`` at which swapping is no slower than recomputing.

    Per token, swap costs ``2 b / B`` (``b`` KV bytes per token, ``B`` the link) and recompute
    ``(2 P + a (L + 1)) / F`` (``P`` layer parameters, ``a = 2 n_layers n_heads d_head``, ``F``
    the peak), which grows with ``L``: so swap wins from ``L >= (2 b F / B - 2 P) / a - 1`` on,
    and from ``L = 1`` if that is below 1. Use the closed form (no search).

    Read: learning/lesson18.md#swap-or-recompute
    """
    _check(cfg, ctx_len, link_bytes_per_s_per_direction, peak_flops_per_s, dtype_bytes)
    ### BEGIN SOLUTION
    swap = swap_seconds(cfg, ctx_len, link_bytes_per_s_per_direction, dtype_bytes)
    recompute = recompute_seconds(cfg, ctx_len, peak_flops_per_s)
    a = 2 * cfg.n_layers * cfg.n_heads * cfg.d_head
    # FLOPs the GPU could do in the time one token's KV takes out and back
    per_token_swap_flops = swap_seconds(cfg, 1, link_bytes_per_s_per_direction, dtype_bytes) \
        * peak_flops_per_s
    crossover = max(1, math.ceil((per_token_swap_flops - 2 * layer_params(cfg)) / a - 1))
    return SwapOrRecompute("swap" if swap <= recompute else "recompute", swap, recompute,
                           crossover)
    ### END SOLUTION

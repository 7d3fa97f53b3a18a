"""Given building blocks for a decoder layer that runs new tokens after cached ones.

Lessons 03 (prefill and decode steps) and 04 (a preallocated cache) have the learner write the
cache plumbing; the projections, RoPE and the causal attention over "cached keys first, new
keys last" are given here, once, for both (RoPE through ``course.hf_layers``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from course.config import LlamaConfig
from course.hf_layers import hf_apply_rope

Weights = dict[str, torch.Tensor]


def project_qkv(w: Weights, p: str, cfg: LlamaConfig, h: torch.Tensor, cos: torch.Tensor,
                sin: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Queries, keys and values of the NEW tokens of one layer, RoPE applied to q and k.

    Args:
        w, p: the weights and the layer's prefix, e.g. ``"model.layers.3.self_attn."``.
        h: ``[B, T, d_model]``, the normalised hidden states of the T new tokens.
        cos, sin: ``[T, d_head]`` from ``hf_rope_cos_sin(cfg, positions)`` at the tokens'
            ABSOLUTE positions (a decode token after 10 cached ones sits at position 10).
    Returns:
        q ``[B, n_heads, T, d_head]``, k and v ``[B, n_kv_heads, T, d_head]``.
    """
    B, T, _ = h.shape

    def heads(name: str, n: int) -> torch.Tensor:
        return (h @ w[p + name].T).view(B, T, n, cfg.d_head).transpose(1, 2)

    q, k = hf_apply_rope(heads("q_proj.weight", cfg.n_heads),
                         heads("k_proj.weight", cfg.n_kv_heads), cos, sin)
    return q, k, heads("v_proj.weight", cfg.n_kv_heads)


def attend(w: Weights, p: str, cfg: LlamaConfig, q: torch.Tensor, k: torch.Tensor,
           v: torch.Tensor) -> torch.Tensor:
    """Causal GQA attention of T new queries over all S keys, then the output projection.

    q: ``[B, n_heads, T, d_head]``; k, v: ``[B, n_kv_heads, S, d_head]`` holding the cached
    tokens FIRST and the T new ones last (S >= T; views are fine). Query t sits at absolute
    position ``S - T + t`` and sees keys ``0 .. S - T + t``. Returns ``[B, T, d_model]``.
    """
    B, _, T, _ = q.shape
    S = k.shape[2]
    if S < T:
        raise ValueError(f"attend: {S} keys for {T} queries; the new tokens' keys must be included")
    mask = torch.ones(T, S, dtype=torch.bool, device=q.device).tril(diagonal=S - T)
    out = F.scaled_dot_product_attention(q, k.to(q.dtype), v.to(q.dtype), attn_mask=mask,
                                         enable_gqa=cfg.group_size > 1)
    return out.transpose(1, 2).reshape(B, T, cfg.n_heads * cfg.d_head) @ w[p + "o_proj.weight"].T

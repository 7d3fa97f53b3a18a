"""Grouped-query attention (Ainslie et al., 2023): several query heads share one K/V head.

Layout, as in HF transformers and the course's reference forward: ``q: [batch, n_heads, T,
d_head]``, ``k, v: [batch, n_kv_heads, S, d_head]``. The query heads are split into
``n_kv_heads`` groups of ``group = n_heads // n_kv_heads`` consecutive heads; query head ``h``
reads KV head ``h // group``. ``n_kv_heads == n_heads`` is multi-head attention (MHA),
``n_kv_heads == 1`` is multi-query attention (MQA, Shazeer 2019).

Causal convention (decode with a cache): the ``T`` queries are the LAST ``T`` of the ``S``
positions, so query ``t`` sits at absolute position ``S - T + t`` and sees keys
``0 .. S - T + t``. This is "bottom-right" alignment (HF transformers' Llama with a cache,
FlashAttention 2.1+). Note that ``F.scaled_dot_product_attention(..., is_causal=True)`` aligns top-left when
``T != S``, which is wrong for decode.

Read: learning/lesson05.md#grouped-query-attention-without-copies
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def check_gqa_inputs(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool) -> None:
    """Raise ValueError, in plain words, for shapes that cannot be grouped-query attention."""
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise ValueError("q, k, v must be [batch, heads, tokens, d_head]; got shapes "
                         f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
    if k.shape != v.shape:
        raise ValueError(f"k and v must have the same shape; got {tuple(k.shape)} and "
                         f"{tuple(v.shape)}")
    if q.shape[0] != k.shape[0] or q.shape[3] != k.shape[3]:
        raise ValueError(f"batch and d_head of q {tuple(q.shape)} and k {tuple(k.shape)} "
                         "must agree")
    n_heads, n_kv_heads = q.shape[1], k.shape[1]
    if n_kv_heads == 0 or n_heads % n_kv_heads:
        raise ValueError(f"n_heads ({n_heads}) must be a multiple of n_kv_heads ({n_kv_heads})")
    if q.shape[2] == 0 or k.shape[2] == 0:
        raise ValueError("need at least one query and one key token")
    if causal and q.shape[2] > k.shape[2]:
        raise ValueError(f"causal attention with more queries ({q.shape[2]}) than keys "
                         f"({k.shape[2]}): the queries must be the last T of the S positions")


def repeat_kv(x: torch.Tensor, n_rep: int) -> torch.Tensor:
    """Repeat each KV head ``n_rep`` times along the head axis (what MHA code needs for GQA).

    Args:
        x: ``[batch, n_kv_heads, tokens, d_head]``.
        n_rep: copies of each head (``n_heads // n_kv_heads``), at least 1.
    Returns:
        ``[batch, n_kv_heads * n_rep, tokens, d_head]`` where output head ``j`` is input head
        ``j // n_rep``: the same as ``torch.repeat_interleave(x, n_rep, dim=1)``. With
        ``n_rep == 1`` return ``x`` itself (no copy).

    This is the copy that gqa_attention must avoid; write it with ``expand`` and one
    ``reshape`` (about 4 lines), not with repeat_interleave.

    Example: heads [a, b] with n_rep 2 become [a, a, b, b] (not [a, b, a, b]).

    Read: learning/lesson05.md#mha-mqa-gqa-one-family
    """
    if x.dim() != 4:
        raise ValueError(f"x must be [batch, n_kv_heads, tokens, d_head], got {tuple(x.shape)}")
    if int(n_rep) != n_rep or n_rep < 1:
        raise ValueError(f"n_rep must be a whole number >= 1, got {n_rep}")
    ### BEGIN SOLUTION
    if n_rep == 1:
        return x
    batch, n_kv_heads, tokens, d_head = x.shape
    x = x[:, :, None, :, :].expand(batch, n_kv_heads, n_rep, tokens, d_head)
    return x.reshape(batch, n_kv_heads * n_rep, tokens, d_head)
    ### END SOLUTION


def gqa_attention_spec(q, k, v, causal=False, scale=None):
    """The meaning of grouped-query attention, one head at a time (slow on purpose)."""
    check_gqa_inputs(q, k, v, causal)
    batch, n_heads, T, d_head = q.shape
    S, group = k.shape[2], n_heads // k.shape[1]
    scale = 1.0 / math.sqrt(d_head) if scale is None else scale
    out = torch.empty_like(q)
    for b in range(batch):
        for h in range(n_heads):
            kh, vh = k[b, h // group].float(), v[b, h // group].float()  # [S, d]
            scores = (q[b, h].float() @ kh.T) * scale                    # [T, S]
            if causal:
                visible = torch.ones(T, S, dtype=torch.bool).tril(diagonal=S - T)
                scores = scores.masked_fill(~visible, float("-inf"))
            out[b, h] = (torch.softmax(scores, dim=-1) @ vh).to(q.dtype)
    return out


def gqa_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = False,
                  scale: float | None = None) -> torch.Tensor:
    """Softmax attention where each group of query heads shares one K/V head.

    Args:
        q: ``[batch, n_heads, T, d_head]``; may be a non-contiguous view (a projection's
            ``[batch, T, n_heads, d_head]`` output transposed, as in the model).
        k, v: ``[batch, n_kv_heads, S, d_head]``, ``n_heads % n_kv_heads == 0``.
        causal: if True, query ``t`` is at position ``S - T + t`` and sees keys up to it
            (bottom-right alignment; see the module docstring). ``T == 1`` then sees all keys.
        scale: softmax scale, default ``1 / sqrt(d_head)``.
    Returns:
        ``[batch, n_heads, T, d_head]`` in q's dtype, equal to
        ``scaled_dot_product_attention(q, repeat_kv(k, g), repeat_kv(v, g), mask)``.

    Never materialise the repeated K or V (nothing of size batch x n_heads x S x d_head may be
    allocated): fold the group into the query-length axis instead, so each KV head meets a
    ``[group * T, d_head]`` block of queries. About 10 lines.

    Speed is graded on a GPU: a decode step must read K/V at a good part of the device's copy
    bandwidth measured in the same run (no repeated K/V, no float32).

    Read: learning/lesson05.md#grouped-query-attention-without-copies
    """
    check_gqa_inputs(q, k, v, causal)
    ### BEGIN SOLUTION
    # hint: q.reshape(batch, n_kv_heads, group * T, d_head) is a free view of a contiguous q
    batch, n_heads, T, d_head = q.shape
    n_kv_heads, S = k.shape[1], k.shape[2]
    group = n_heads // n_kv_heads
    queries = q.reshape(batch, n_kv_heads, group * T, d_head)
    mask = None
    if causal and T > 1:
        visible = torch.ones(T, S, dtype=torch.bool, device=q.device).tril(diagonal=S - T)
        mask = visible.repeat(group, 1)  # row i*T + t is query t of the group's i-th head
    out = F.scaled_dot_product_attention(queries, k, v, attn_mask=mask, scale=scale)
    return out.reshape(batch, n_heads, T, d_head)
    ### END SOLUTION

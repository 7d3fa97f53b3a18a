"""Tiled attention with the online softmax (FlashAttention's forward pass), in plain torch.

Layout as in the rest of the course: ``q: [batch, heads, T, d_head]``, ``k, v: [batch, heads,
S, d_head]`` (the same number of heads: lesson 05 folds GQA into the query axis first).

Causal convention (decode with a cache, as in lesson 05): the ``T`` queries are the LAST ``T``
of the ``S`` positions, so query ``t`` sits at position ``S - T + t`` and sees keys
``0 .. S - T + t`` ("bottom-right" alignment). Causal attention needs ``T <= S``; every query
then sees at least key 0, so no row is ever fully masked.

The scores of one query tile against one key tile, ``[block_q, block_k]`` per head, are the
largest thing the tiled forward may hold: never the ``T x S`` matrix, not even a
``[block_q, S]`` strip of it, and not a ``T x S`` mask.

Read: learning/lesson10.md#the-tiled-forward-pass
"""

from __future__ import annotations

import math

import torch


def check_attention_inputs(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, block_q: int,
                           block_k: int, causal: bool) -> None:
    """Raise ValueError, in plain words, for inputs the tiled forward cannot take."""
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise ValueError("q, k, v must be [batch, heads, tokens, d_head]; got shapes "
                         f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
    if k.shape != v.shape:
        raise ValueError(f"k and v must have the same shape; got {tuple(k.shape)} and "
                         f"{tuple(v.shape)}")
    if q.shape[:2] != k.shape[:2] or q.shape[3] != k.shape[3]:
        raise ValueError(f"batch, heads and d_head of q {tuple(q.shape)} and k "
                         f"{tuple(k.shape)} must agree")
    if q.shape[2] == 0 or k.shape[2] == 0:
        raise ValueError("need at least one query and one key token")
    for name, block in (("block_q", block_q), ("block_k", block_k)):
        if isinstance(block, bool) or int(block) != block or block < 1:
            raise ValueError(f"{name} must be a whole number >= 1, got {block!r}")
    if causal and q.shape[2] > k.shape[2]:
        raise ValueError(f"causal attention with more queries ({q.shape[2]}) than keys "
                         f"({k.shape[2]}): the queries must be the last T of the S positions")


def attention_spec(q, k, v, causal=False, scale=None):
    """The meaning of flash_attention_fwd: explicit softmax over the whole score matrix.

    Returns ``(o, lse)`` like flash_attention_fwd. It builds the ``T x S`` scores of every head
    at once, which is exactly what the tiled version must never do; use it on small inputs.
    """
    check_attention_inputs(q, k, v, 1, 1, causal)
    T, S = q.shape[2], k.shape[2]
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = (q.float() @ k.float().transpose(-1, -2)) * scale          # [B, H, T, S]
    if causal:
        visible = torch.ones(T, S, dtype=torch.bool, device=q.device).tril(diagonal=S - T)
        scores = scores.masked_fill(~visible, float("-inf"))
    out = torch.softmax(scores, dim=-1) @ v.float()
    return out.to(q.dtype), torch.logsumexp(scores, dim=-1)


def flash_attention_fwd(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, block_q: int = 64,
                        block_k: int = 64, causal: bool = False, scale: float | None = None
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact softmax attention, one ``[block_q, block_k]`` tile of scores at a time.

    Args:
        q: ``[batch, heads, T, d_head]``; k, v: ``[batch, heads, S, d_head]``.
        block_q, block_k: tile sizes, any whole numbers >= 1 (they need not divide T or S, and
            may be larger than them: the last tile is shorter).
        causal: query ``t`` sees keys ``0 .. S - T + t`` (bottom-right; needs ``T <= S``).
        scale: softmax scale, default ``1 / sqrt(d_head)``; 0 is a scale, not the default.
    Returns:
        ``(o, lse)``: ``o`` ``[batch, heads, T, d_head]`` in q's dtype, equal to
        ``softmax(scale * q k^T) v``; ``lse`` ``[batch, heads, T]`` float32, the natural
        log-sum-exp of each query's scaled, visible scores, ``lse = m + log(l)``.

    For each tile of ``block_q`` queries keep the softmax state (running maximum ``m``, running
    sum ``l``, unnormalised output ``o``, all float32) and walk the key tiles in order. For each
    key tile: scores ``s``, the new maximum ``m_new``, then rescale ``l`` and ``o`` by
    ``exp(m - m_new)`` before adding the tile's ``exp(s - m_new)`` terms. Divide ``o`` by ``l``
    after the last key tile. With ``causal``, mask inside a tile from the positions of its
    rows and columns (never a ``T x S`` mask) and SKIP every key tile that no query of the
    tile can see: it would cost FLOPs and change nothing. Compute in float32 whatever the input
    dtype. About 25 lines.

    Cost, checked by counting: no allocation larger than the output or one fp32 tile of
    scores; causal attention over ``T == S`` does about half the matmul FLOPs of full attention.

    Read: learning/lesson10.md#the-tiled-forward-pass
    """
    check_attention_inputs(q, k, v, block_q, block_k, causal)
    ### BEGIN SOLUTION
    batch, heads, T, d_head = q.shape
    S = k.shape[2]
    scale = 1.0 / math.sqrt(d_head) if scale is None else scale
    offset = S - T  # query t sits at position offset + t
    o = torch.empty_like(q)
    lse = torch.empty(batch, heads, T, dtype=torch.float32, device=q.device)
    for i0 in range(0, T, block_q):
        i1 = min(i0 + block_q, T)
        qi = q[:, :, i0:i1].float() * scale
        m = torch.full((batch, heads, i1 - i0), float("-inf"), device=q.device)
        l = torch.zeros(batch, heads, i1 - i0, device=q.device)
        acc = torch.zeros(batch, heads, i1 - i0, d_head, device=q.device)
        # hint: causal: query rows i0 .. i1 - 1 need only the keys before position S - T + i1
        kv_end = min(S, offset + i1) if causal else S
        for j0 in range(0, kv_end, block_k):
            j1 = min(j0 + block_k, S)
            s = qi @ k[:, :, j0:j1].float().transpose(-1, -2)
            if causal and j1 - 1 > offset + i0:  # some key of the tile is after some query
                rows = torch.arange(offset + i0, offset + i1, device=q.device)[:, None]
                cols = torch.arange(j0, j1, device=q.device)[None, :]
                s = s.masked_fill(cols > rows, float("-inf"))
            m_new = torch.maximum(m, s.amax(dim=-1))
            alpha = torch.exp(m - m_new)
            p = torch.exp(s - m_new[..., None])
            l = alpha * l + p.sum(dim=-1)
            acc = alpha[..., None] * acc + p @ v[:, :, j0:j1].float()
            m = m_new
        o[:, :, i0:i1] = (acc / l[..., None]).to(q.dtype)
        lse[:, :, i0:i1] = m + torch.log(l)
    return o, lse
    ### END SOLUTION

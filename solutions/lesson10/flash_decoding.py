"""Split-KV decode (Flash-Decoding): one query token over a long cache, split across programs.

A decode step has one query per sequence and head, so a kernel that gives each (sequence,
head) one program has ``batch x heads`` programs: at batch 1 and 32 heads that leaves most of
a GPU's SMs idle while one program walks 32k keys. Flash-Decoding (Dao, Haziza, Massa, Sizov,
2023) splits the keys into ``n_splits`` chunks, computes the softmax state ``(m, l, o)`` of
each chunk in parallel, and merges the states: the merge of lesson 10's online softmax, done
for all chunks at once.

Layout: ``q: [batch, heads, 1, d_head]``, ``k, v: [batch, heads, S, d_head]``. Sequence ``b``
holds ``lengths[b]`` valid keys at positions ``0 .. lengths[b] - 1``; later positions are
padding (a batch of sequences of different lengths in one tensor) and are ignored.

Read: learning/lesson10.md#split-kv-decode
"""

from __future__ import annotations

import math

import torch


def check_decode_inputs(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, n_splits: int,
                        lengths: torch.Tensor | None) -> None:
    """Raise ValueError, in plain words, for inputs split_kv_decode cannot take."""
    if q.dim() != 4 or k.dim() != 4 or k.shape != v.shape:
        raise ValueError("q must be [batch, heads, 1, d_head] and k, v [batch, heads, S, "
                         f"d_head]; got {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
    if q.shape[2] != 1:
        raise ValueError(f"split_kv_decode takes one query token per sequence; got {q.shape[2]}")
    if q.shape[:2] != k.shape[:2] or q.shape[3] != k.shape[3]:
        raise ValueError(f"batch, heads and d_head of q {tuple(q.shape)} and k "
                         f"{tuple(k.shape)} must agree")
    if k.shape[2] == 0:
        raise ValueError("need at least one key position")
    if isinstance(n_splits, bool) or int(n_splits) != n_splits or n_splits < 1:
        raise ValueError(f"n_splits must be a whole number >= 1, got {n_splits!r}")
    if lengths is not None:
        if lengths.shape != (q.shape[0],) or lengths.dtype.is_floating_point:
            raise ValueError(f"lengths must be integers of shape ({q.shape[0]},), one per "
                             f"sequence; got {tuple(lengths.shape)} {lengths.dtype}")
        if lengths.numel() and (int(lengths.min()) < 0 or int(lengths.max()) > k.shape[2]):
            raise ValueError(f"lengths must lie in 0 .. {k.shape[2]} (the key positions); got "
                             f"{lengths.tolist()}")


def split_kv_decode(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, n_splits: int,
                    lengths: torch.Tensor | None = None, scale: float | None = None
                    ) -> torch.Tensor:
    """Decode attention for one query token, the keys split into ``n_splits`` chunks.

    Args:
        q: ``[batch, heads, 1, d_head]``; k, v: ``[batch, heads, S, d_head]``.
        n_splits: number of chunks, >= 1. Each chunk holds ``chunk = ceil(S / n_splits)``
            consecutive key positions, the last one fewer; with more splits than keys some
            chunks are empty. Any ``n_splits`` gives the same result, but the split is not
            optional: the graders look for the float32 partial outputs of the non-empty
            chunks, ``batch x heads x chunks x d_head`` numbers in one tensor.
        lengths: ``[batch]`` integers in ``0 .. S``, the valid keys of each sequence; ``None``
            means all ``S``. A chunk that lies past a sequence's length is an empty set.
        scale: softmax scale, default ``1 / sqrt(d_head)``.
    Returns:
        ``[batch, heads, 1, d_head]`` in q's dtype: softmax attention of each query over its
        sequence's first ``lengths[b]`` keys. A sequence of length 0 gets zeros (the empty
        state's output), never NaN.

    Compute the state ``(m, l, o)`` of every chunk at once (a view of K and V as ``[batch,
    heads, n, chunk, d_head]`` plus at most one shorter tail chunk), float32 statistics, then
    merge all chunks at once: ``M = max(m)`` over the chunks, weights ``exp(m - M)``, sums
    of ``l`` and ``o`` weighted by them. An empty chunk has ``m = -inf``: subtract 0, not
    ``-inf``, where a maximum is ``-inf``. About 25 lines.

    Cost, checked by counting: no Python loop over chunks or keys (the same number of torch
    ops for any ``S`` and ``n_splits`` that divide evenly), and no padded or float32 copy of K
    or V; cast the small score tensors instead. When the chunks fill ``S`` exactly the view
    is free; a shorter last chunk is a second, small view.

    Read: learning/lesson10.md#split-kv-decode
    """
    check_decode_inputs(q, k, v, n_splits, lengths)
    ### BEGIN SOLUTION
    # hint: k[:, :, :cut].unflatten(2, (n, chunk)) is a free view when cut = n * chunk
    batch, heads, _, d_head = q.shape
    S = k.shape[2]
    scale = 1.0 / math.sqrt(d_head) if scale is None else scale
    chunk = -(-S // n_splits)
    n_full = S // chunk
    query = q[:, :, 0]  # [batch, heads, d_head]
    minus_inf = float("-inf")

    def state(ks: torch.Tensor, vs: torch.Tensor, start: int):
        # ks, vs: [batch, heads, n, c, d_head], chunk i starting at key start + i * c
        s = torch.einsum("bhd,bhncd->bhnc", query, ks).float() * scale
        if lengths is not None:
            n, c = ks.shape[2], ks.shape[3]
            pos = start + torch.arange(n * c, device=q.device).view(n, c)
            s = s.masked_fill(pos >= lengths.to(q.device).view(batch, 1, 1, 1), minus_inf)
        m = s.amax(dim=-1)
        m_safe = torch.where(m == minus_inf, torch.zeros_like(m), m)
        p = torch.exp(s - m_safe[..., None])
        o = torch.einsum("bhnc,bhncd->bhnd", p.to(vs.dtype), vs).float()
        return m, p.sum(dim=-1), o

    cut = n_full * chunk
    states = [state(k[:, :, :cut].unflatten(2, (n_full, chunk)),
                    v[:, :, :cut].unflatten(2, (n_full, chunk)), 0)]
    if cut < S:
        states.append(state(k[:, :, cut:, None].transpose(2, 3),
                            v[:, :, cut:, None].transpose(2, 3), cut))
    m, l, o = (torch.cat(parts, dim=2) for parts in zip(*states))
    top = m.amax(dim=2, keepdim=True)
    top = torch.where(top == minus_inf, torch.zeros_like(top), top)
    w = torch.exp(m - top)
    l_all = (w * l).sum(dim=2)
    o_all = (w[..., None] * o).sum(dim=2)
    out = torch.where(l_all[..., None] > 0, o_all / l_all[..., None], torch.zeros_like(o_all))
    return out[:, :, None].to(q.dtype)
    ### END SOLUTION

"""Decode attention over a paged KV cache (PagedAttention, Kwon et al., SOSP 2023).

Cache layout, as in vLLM's flash-attention backend: ``k_cache, v_cache: [num_blocks,
block_size, n_kv_heads, d_head]``. Sequence ``b`` holds ``context_lens[b]`` tokens; its token
``i`` sits in block ``block_tables[b, i // block_size]`` at offset ``i % block_size``.
Entries of ``block_tables`` past a sequence's last block are padding and must not be read.

Grouped-query attention: query head ``h`` reads KV head ``h // (n_heads // n_kv_heads)``.

Read: learning/lesson12.md#paged-decode-attention
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def check_paged_inputs(q, k_cache, v_cache, block_tables, context_lens) -> None:
    """Raise ValueError, in plain words, for inputs of the wrong shape or dtype."""
    if q.dim() != 3:
        raise ValueError(f"q must be [batch, n_heads, d_head], got shape {tuple(q.shape)}")
    if k_cache.dim() != 4 or k_cache.shape != v_cache.shape:
        raise ValueError("k_cache and v_cache must both be [num_blocks, block_size, "
                         f"n_kv_heads, d_head]; got {tuple(k_cache.shape)} and "
                         f"{tuple(v_cache.shape)}")
    batch, n_heads, d_head = q.shape
    n_kv_heads = k_cache.shape[2]
    if k_cache.shape[3] != d_head:
        raise ValueError(f"d_head differs: q has {d_head}, the cache {k_cache.shape[3]}")
    if n_heads % n_kv_heads:
        raise ValueError(f"n_heads ({n_heads}) must be a multiple of n_kv_heads ({n_kv_heads})")
    if block_tables.dim() != 2 or block_tables.shape[0] != batch:
        raise ValueError(f"block_tables must be [batch={batch}, max_blocks], got "
                         f"{tuple(block_tables.shape)}")
    if context_lens.shape != (batch,):
        raise ValueError(f"context_lens must be [batch={batch}], got {tuple(context_lens.shape)}")
    if block_tables.dtype.is_floating_point or context_lens.dtype.is_floating_point:
        raise ValueError("block_tables and context_lens must be integer tensors")
    capacity = block_tables.shape[1] * k_cache.shape[1]
    if batch and int(context_lens.max()) > capacity:
        raise ValueError(f"a context length ({int(context_lens.max())}) exceeds what the "
                         f"block table holds ({block_tables.shape[1]} blocks x "
                         f"{k_cache.shape[1]} tokens)")


def paged_attention_decode_spec(q, k_cache, v_cache, block_tables, context_lens, scale=None):
    """The meaning of paged decode attention, one sequence and one token at a time.

    Slow on purpose: it states what to compute. Write the vectorised version below.
    """
    batch, n_heads, d_head = q.shape
    block_size, n_kv_heads = k_cache.shape[1], k_cache.shape[2]
    group = n_heads // n_kv_heads
    scale = 1.0 / math.sqrt(d_head) if scale is None else scale
    out = torch.zeros_like(q)
    for b in range(batch):
        n = int(context_lens[b])
        keys, values = [], []
        for i in range(n):
            block = int(block_tables[b, i // block_size])
            keys.append(k_cache[block, i % block_size])  # [n_kv_heads, d_head]
            values.append(v_cache[block, i % block_size])
        if n == 0:
            continue
        k, v = torch.stack(keys).float(), torch.stack(values).float()  # [n, n_kv, d]
        for h in range(n_heads):
            scores = (k[:, h // group] @ q[b, h].float()) * scale  # [n]
            out[b, h] = (torch.softmax(scores, 0) @ v[:, h // group]).to(q.dtype)
    return out


def paged_attention_decode(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
                           block_tables: torch.Tensor, context_lens: torch.Tensor,
                           scale: float | None = None) -> torch.Tensor:
    """One query token per sequence attends to its paged keys and values.

    Args:
        q: ``[batch, n_heads, d_head]``, the new token's queries.
        k_cache, v_cache: ``[num_blocks, block_size, n_kv_heads, d_head]``.
        block_tables: ``[batch, max_blocks]`` int, physical block of each logical block.
        context_lens: ``[batch]`` int, tokens each sequence attends to (its new one included).
        scale: softmax scale, default ``1 / sqrt(d_head)``.
    Returns:
        ``[batch, n_heads, d_head]`` in q's dtype; equal to dense softmax attention over
        each sequence's first ``context_lens[b]`` tokens. A sequence with length 0 gets 0
        (set it yourself: do not rely on what a softmax over nothing returns).

    Vectorised torch: no Python loop over tokens (the number of torch ops must not grow
    with context length), and never a copy of the whole cache: read only the blocks the
    batch uses: the first ``ceil(max(context_lens) / block_size)`` columns of the table.
    About 10 lines; ``F.scaled_dot_product_attention`` with a boolean mask (True = attend)
    handles ragged lengths, and its query-length axis can hold a group of query heads.

    Speed is graded on a GPU: the step must reach a fifth of dense SDPA's speed on the same
    tokens (one gather of the used blocks, bf16, no Python loop over sequences).

    Read: learning/lesson12.md#paged-decode-attention
    """
    check_paged_inputs(q, k_cache, v_cache, block_tables, context_lens)
    ### BEGIN SOLUTION
    # hint: used = ceil(max(context_lens) / block_size); gather k_cache[block_tables[:, :used]]
    # hint: -> [batch, used * block_size, n_kv, d]; boolean SDPA mask: True = attend (i < L_b)
    batch, n_heads, d_head = q.shape
    block_size, n_kv_heads = k_cache.shape[1], k_cache.shape[2]
    longest = int(context_lens.max()) if batch else 0
    if longest == 0:
        return torch.zeros_like(q)
    # Read only as many logical blocks as the longest sequence needs.
    used = -(-longest // block_size)
    tables = block_tables[:, :used].long()
    tokens = used * block_size
    k = k_cache[tables].view(batch, tokens, n_kv_heads, d_head).transpose(1, 2)
    v = v_cache[tables].view(batch, tokens, n_kv_heads, d_head).transpose(1, 2)
    # GQA without repeat_kv: the g query heads of one KV head become its "query length".
    group = n_heads // n_kv_heads
    queries = q.view(batch, n_kv_heads, group, d_head)
    positions = torch.arange(tokens, device=q.device)
    mask = (positions[None, :] < context_lens.to(q.device)[:, None]).view(batch, 1, 1, tokens)
    out = F.scaled_dot_product_attention(queries, k, v, attn_mask=mask, scale=scale)
    out = out.view(batch, n_heads, d_head)
    # A sequence with no tokens has an all-False mask. A plain softmax gives NaN there; SDPA's
    # CPU math path happens to give 0, undocumented. Define it as 0 here, whatever the backend.
    return torch.where((context_lens.to(q.device) > 0).view(batch, 1, 1), out,
                       torch.zeros((), dtype=out.dtype, device=out.device))
    ### END SOLUTION


def write_kv(k_cache: torch.Tensor, v_cache: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
             slots: torch.Tensor) -> None:
    """Store new tokens' keys and values at flat slots, in place.

    Args:
        k_cache, v_cache: ``[num_blocks, block_size, n_kv_heads, d_head]``, written in place.
        k, v: ``[n, n_kv_heads, d_head]`` for ``n`` new tokens.
        slots: ``[n]`` int, flat slot ``block * block_size + offset`` of each token
            (see ``block_table.slot_mapping``).

    A slot outside ``0 .. num_blocks * block_size - 1`` (negative ones included: they must
    not wrap around to the end of the cache) raises IndexError naming it, and nothing is
    written.

    Read: learning/lesson12.md#paged-decode-attention
    """
    if k.shape != v.shape or k.shape[1:] != k_cache.shape[2:] or slots.shape != k.shape[:1]:
        raise ValueError(f"k and v must be [n, {k_cache.shape[2]}, {k_cache.shape[3]}] and "
                         f"slots [n]; got {tuple(k.shape)}, {tuple(v.shape)}, "
                         f"{tuple(slots.shape)}")
    ### BEGIN SOLUTION
    # hint: a [num_blocks * block_size, n_kv_heads, d_head] view of the cache is free
    flat = k_cache.shape[0] * k_cache.shape[1]
    bad = (slots < 0) | (slots >= flat)
    if bad.any():
        raise IndexError(f"slot {int(slots[bad][0])} is outside the cache's slots 0..{flat - 1}")
    k_cache.view(flat, *k_cache.shape[2:])[slots.long()] = k.to(k_cache.dtype)
    v_cache.view(flat, *v_cache.shape[2:])[slots.long()] = v.to(v_cache.dtype)
    ### END SOLUTION

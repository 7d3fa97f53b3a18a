"""Context parallelism: ring attention over chunks of the sequence, simulated in one process.

Rank ``r`` of ``p`` holds the queries, keys and values of one chunk of the sequence
(``q_chunks[r]``, ``k_chunks[r]``, ``v_chunks[r]``) and the chunk's absolute token positions
(``positions[r]``). Attention needs every key, so the key/value chunks travel around a ring:
at step ``t = 0 .. p-1`` rank ``r`` holds the KV chunk of rank ``(r - t) mod p`` (its own at
step 0; at each step it passes what it holds to ``r + 1`` and receives from ``r - 1``, so
``p - 1`` transfers in all). Each rank keeps one softmax state per query row, ``(m, l, o)``:
running maximum, running sum of ``exp(s - m)`` and unnormalised output, and merges the
state of each KV chunk into it as lesson 10's online softmax does. After the last step,
``o / l`` is exact attention over all the keys.

Causal attention: query position ``i`` sees key position ``j`` when ``j <= i``. A KV chunk
whose keys are all in a query chunk's future is skipped: with contiguous chunks rank ``r``
works on ``r + 1`` of the ``p`` chunks, and rank ``p - 1`` does ``p`` times the work of rank
0. ``zigzag_positions`` gives each rank one early and one late piece so that the work evens
out.

Read: learning/lesson20.md#ring-attention
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def check_states(*tensors: torch.Tensor) -> None:
    m1, l1, o1, m2, l2, o2 = tensors
    for name, t in zip(("m1", "l1", "o1", "m2", "l2", "o2"), tensors):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if m1.shape != l1.shape or m2.shape != l2.shape or m1.shape != m2.shape:
        raise ValueError(f"m and l must have one shape, got {tuple(m1.shape)}, "
                         f"{tuple(l1.shape)}, {tuple(m2.shape)}, {tuple(l2.shape)}")
    if o1.shape != o2.shape or o1.shape[:-1] != m1.shape:
        raise ValueError(f"o must be m's shape plus d_head, got {tuple(o1.shape)} and "
                         f"{tuple(o2.shape)} for m of shape {tuple(m1.shape)}")


def merge_states(m1: torch.Tensor, l1: torch.Tensor, o1: torch.Tensor, m2: torch.Tensor,
                 l2: torch.Tensor, o2: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Merge the softmax states of two disjoint key sets into the state of their union.

    ``m, l: [..., q]`` and ``o: [..., q, d]``, one state per query row. Returns ``(m, l, o)``
    with ``m = max(m1, m2)``, and ``l``, ``o`` each the sum of the two rescaled by
    ``exp(m1 - m)`` and ``exp(m2 - m)``. An empty set is ``(-inf, 0, 0)``; two empty sets
    merge to an empty set, without NaN. Inputs unchanged. About 5 lines (you wrote this
    in lesson 10; write it again here).

    Read: learning/lesson20.md#ring-attention
    """
    check_states(m1, l1, o1, m2, l2, o2)
    raise NotImplementedError('lesson20: merge_states - read learning/lesson20.md#ring-attention')


def contiguous_positions(lengths: Sequence[int]) -> list[torch.Tensor]:
    """Absolute positions of consecutive chunks of these lengths: chunk ``r`` starts where
    chunk ``r - 1`` ends (given)."""
    out, start = [], 0
    for n in lengths:
        out.append(torch.arange(start, start + n))
        start += n
    return out


def ring_attention(q_chunks: Sequence[torch.Tensor], k_chunks: Sequence[torch.Tensor],
                   v_chunks: Sequence[torch.Tensor], causal: bool = True,
                   positions: Sequence[torch.Tensor] | None = None
                   ) -> tuple[list[torch.Tensor], list[list[int]]]:
    """Attention of every rank's query chunk over all KV chunks, passed around a ring.

    Args:
        q_chunks, k_chunks, v_chunks: ``p`` chunks each; chunk ``r`` is ``[..., n_r, d]``
            (leading dims such as batch and heads are the same everywhere, ``n_r`` may differ
            between chunks: a sequence that ``p`` does not divide).
        causal: query position ``i`` sees key position ``j`` only when ``j <= i``.
        positions: ``p`` 1-D integer tensors, ``positions[r]`` the absolute positions of
            chunk ``r``'s ``n_r`` tokens; None: consecutive chunks
            (``contiguous_positions`` of the chunks' lengths).
    Returns:
        ``(outputs, visited)``: ``outputs[r]`` is ``[..., n_r, d]``, softmax attention of
        ``q_chunks[r]`` over every key (scale ``1 / sqrt(d)``), in the queries' dtype,
        computed in float32; ``visited[r]`` lists the KV chunks rank ``r`` computed scores
        with, in ring order: step ``t`` brings chunk ``(r - t) % p``. A chunk none of whose
        keys any of rank ``r``'s queries may see (causal) is skipped and not listed.

    Masks come from the absolute positions of the two chunks, never from local indices:
    the diagonal chunk needs the causal triangle, a chunk entirely in the past needs no mask.
    About 20 lines.

    Read: learning/lesson20.md#ring-attention
    """
    p = len(q_chunks)
    if p == 0 or len(k_chunks) != p or len(v_chunks) != p:
        raise ValueError(f"need the same number (>= 1) of q, k and v chunks, got "
                         f"{len(q_chunks)}, {len(k_chunks)}, {len(v_chunks)}")
    for r in range(p):
        q, k, v = q_chunks[r], k_chunks[r], v_chunks[r]
        if k.shape != v.shape or q.shape[:-2] != k.shape[:-2] or q.shape[-2] != k.shape[-2] \
                or q.shape[-1] != k.shape[-1] or q.shape[:-2] != q_chunks[0].shape[:-2]:
            raise ValueError(f"chunk {r}: q {tuple(q.shape)}, k {tuple(k.shape)}, v "
                             f"{tuple(v.shape)}: expected [..., n_r, d] with the same n_r, "
                             "d and leading dims for all three")
    if positions is None:
        positions = contiguous_positions([q.shape[-2] for q in q_chunks])
    if len(positions) != p or any(pos.shape != (q.shape[-2],)
                                  for pos, q in zip(positions, q_chunks)):
        raise ValueError("positions must hold one 1-D tensor of n_r positions per chunk")
    # hint: per rank: state (-inf, 0, 0); for t in range(p): chunk j = (r - t) % p, scores,
    # hint: the mask from positions, skip if nothing is visible, the block's (m, l, o), merge.
    # hint: a query row that sees none of a visited chunk has m = -inf: subtract 0 there
    raise NotImplementedError('lesson20: ring_attention - read learning/lesson20.md#ring-attention')


def zigzag_positions(seq_len: int, p: int) -> list[torch.Tensor]:
    """Positions per rank for load-balanced causal ring attention (the "zig-zag" layout).

    Cut ``range(seq_len)`` into ``2p`` consecutive pieces, as even as possible with the
    longer pieces first (the rule of ``split_layers``); rank ``r`` gets piece ``r`` and
    piece ``2p - 1 - r``, in that order. With contiguous chunks the last rank has the most
    causal work; here every rank has one early and one late piece and, when ``2p`` divides
    ``seq_len``, exactly the same number of visible (query, key) pairs. Raises ValueError
    when ``seq_len < 2p``. About 6 lines.

    Read: learning/lesson20.md#balancing-causal-work
    """
    if p < 1 or seq_len < 2 * p:
        raise ValueError(f"need p >= 1 and at least 2p = {2 * p} tokens, got seq_len={seq_len}")
    raise NotImplementedError('lesson20: zigzag_positions - read learning/lesson20.md#balancing-causal-work')

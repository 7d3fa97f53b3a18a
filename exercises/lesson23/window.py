"""Keeping a bounded KV cache: sliding windows, attention sinks (StreamingLLM) and H2O.

Positions are token indices ``0 .. kv_len - 1`` in the order the tokens arrived. A query at
position ``i`` with a window of ``window`` tokens sees key ``j`` when ``i - window < j <= i``:
itself and the ``window - 1`` tokens before it (the convention of Mistral 7B, Jiang et al.
2023, and of Longformer's local attention, Beltagy et al. 2020). Every function returns the
kept positions in ascending order, so gathering them keeps the cache in arrival order.

Read: learning/lesson23.md#sliding-windows
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _check_count(name: str, value: int, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


def sliding_window_mask(q_len: int, kv_len: int, window: int,
                        device: torch.device | str | None = None) -> torch.Tensor:
    """Bool ``[q_len, kv_len]``: True where a query may attend to a key.

    The queries are the LAST ``q_len`` of the ``kv_len`` positions (query ``t`` sits at
    position ``i = kv_len - q_len + t``), and query ``i`` sees key ``j`` exactly when
    ``i - window < j <= i``. ``window >= 1`` (a query always sees itself); a window at least
    ``kv_len`` gives the plain causal mask. ``q_len == 0`` gives an empty ``[0, kv_len]`` mask.
    Raise ValueError for ``window < 1`` (a query that sees nothing has no softmax). About 4
    lines.

    Read: learning/lesson23.md#sliding-windows
    """
    _check_count("q_len", q_len, 0)
    _check_count("kv_len", kv_len, q_len)
    raise NotImplementedError('lesson23: sliding_window_mask - read learning/lesson23.md#sliding-windows')


def window_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, window: int,
                     scale: float | None = None) -> torch.Tensor:
    """Attention of the last ``T`` positions over a cache, each query seeing only its window.

    Args:
        q: ``[B, n_heads, T, d_head]``, the queries of the last T of the S cached positions.
        k, v: ``[B, n_kv_heads, S, d_head]``, the whole cache (``n_heads`` a multiple of
            ``n_kv_heads``: grouped-query attention, lesson 05).
        window: each query sees itself and the ``window - 1`` positions before it.
    Returns ``[B, n_heads, T, d_head]`` in q's dtype, equal to attention over the whole cache
    with ``sliding_window_mask(T, S, window)``.

    Cost: read only the keys some query can see, the last ``window + T - 1`` positions (a
    slice is a view: no copy), so a decode step costs the same at a context of 32k tokens as
    at a context of ``window``. Masking the whole cache gives the same numbers at S / window
    times the work. About 5 lines, with ``F.scaled_dot_product_attention(...,
    enable_gqa=True)``.

    Read: learning/lesson23.md#sliding-windows
    """
    if q.dim() != 4 or k.dim() != 4 or k.shape != v.shape or q.shape[0] != k.shape[0] \
            or q.shape[-1] != k.shape[-1] or q.shape[1] % k.shape[1] != 0:
        raise ValueError(f"need q [B, n_heads, T, d] and k, v [B, n_kv_heads, S, d] with n_heads "
                         f"a multiple of n_kv_heads; got q {tuple(q.shape)}, k {tuple(k.shape)}, "
                         f"v {tuple(v.shape)}")
    T, S = q.shape[2], k.shape[2]
    if T > S:
        raise ValueError(f"{T} queries but only {S} cached positions: the queries are the last "
                         "T positions of the cache")
    _check_count("window", window, 1)
    raise NotImplementedError('lesson23: window_attention - read learning/lesson23.md#sliding-windows')


def sink_keep_indices(cache_len: int, n_sink: int, window: int,
                      device: torch.device | str | None = None) -> torch.Tensor:
    """Positions a StreamingLLM cache keeps out of ``cache_len`` tokens: int64 ``[kept]``.

    The first ``n_sink`` tokens (the attention sinks: never dropped) and the last ``window``
    tokens, in ascending order. Once ``cache_len > n_sink + window`` exactly
    ``n_sink + window`` positions are kept; before that, all of them (no position twice).
    ``n_sink >= 0``, ``window >= 1``. About 4 lines.

    Read: learning/lesson23.md#attention-sinks
    """
    _check_count("cache_len", cache_len, 0)
    _check_count("n_sink", n_sink, 0)
    _check_count("window", window, 1)
    raise NotImplementedError('lesson23: sink_keep_indices - read learning/lesson23.md#attention-sinks')


class SinkCache:
    """A KV cache that holds at most ``n_sink + window`` tokens (StreamingLLM).

    ``append(k, v)`` adds ``T >= 1`` new tokens (``[B, n_kv_heads, T, d_head]`` each, keys
    BEFORE RoPE) and evicts what ``sink_keep_indices`` drops. ``seen`` counts every token
    ever appended; ``len(cache)`` is how many are held. ``positions()`` gives the RoPE
    positions to use now: StreamingLLM numbers tokens by their place in the cache,
    ``0 .. len - 1``, not by their place in the text, so keys are rotated when read and the
    distance from the newest token to a sink never grows past the cache size.

    Read: learning/lesson23.md#attention-sinks
    """

    def __init__(self, n_sink: int, window: int):
        _check_count("n_sink", n_sink, 0)
        _check_count("window", window, 1)
        self.n_sink, self.window = n_sink, window
        self.k: torch.Tensor | None = None
        self.v: torch.Tensor | None = None
        self.seen = 0

    def __len__(self) -> int:
        return 0 if self.k is None else self.k.shape[2]

    def positions(self) -> torch.Tensor:
        """int64 ``[len(self)]``: the RoPE position of each held token, by place in the cache."""
        return torch.arange(len(self), device=None if self.k is None else self.k.device)

    def append(self, k: torch.Tensor, v: torch.Tensor) -> None:
        """Add the new tokens' keys and values (and their count to ``seen``), then keep what
        ``sink_keep_indices`` keeps.

        The sinks are the first ``n_sink`` tokens ever appended: once evicted, a token never
        comes back, and a chunk longer than the window still keeps the sinks. About 6 lines.

        Read: learning/lesson23.md#attention-sinks
        """
        if k.dim() != 4 or k.shape != v.shape or k.shape[2] < 1:
            raise ValueError(f"k and v must both be [B, n_kv_heads, T >= 1, d_head]; got "
                             f"{tuple(k.shape)} and {tuple(v.shape)}")
        if self.k is not None and (k.shape[:2] != self.k.shape[:2] or k.shape[3] != self.k.shape[3]):
            raise ValueError(f"new keys {tuple(k.shape)} do not match the cache {tuple(self.k.shape)}")
        raise NotImplementedError('lesson23: SinkCache.append - read learning/lesson23.md#attention-sinks')


def h2o_keep(acc_scores: torch.Tensor, budget: int, n_recent: int, n_sink: int = 0) -> torch.Tensor:
    """Heavy-hitter eviction (H2O, Zhang et al. 2023): which cached positions to keep.

    Args:
        acc_scores: ``[S]`` or ``[R, S]`` float, the attention each cached token has received,
            summed over the queries so far; each of the R rows (a head, a sequence) decides
            for itself.
        budget: how many positions to keep per row.
        n_recent: the last ``n_recent`` positions are always kept.
        n_sink: the first ``n_sink`` positions are always kept too (the StreamingLLM variant).
    Returns int64 ``[budget]`` (or ``[R, budget]``), each row ascending: the sinks, the recent
    positions, and the ``budget - n_sink - n_recent`` other positions with the largest
    scores; among equal scores the earlier position wins. When ``S <= budget`` every position
    is kept: ``arange(S)`` (expanded to ``[R, S]``). Raise ValueError when
    ``budget < n_sink + n_recent``. About 9 lines.

    Read: learning/lesson23.md#heavy-hitters-h2o
    """
    if acc_scores.dim() not in (1, 2) or not acc_scores.is_floating_point():
        raise ValueError(f"acc_scores must be a float [S] or [R, S] tensor, got {acc_scores.dtype} "
                         f"{tuple(acc_scores.shape)}")
    _check_count("n_recent", n_recent, 0)
    _check_count("n_sink", n_sink, 0)
    raise NotImplementedError('lesson23: h2o_keep - read learning/lesson23.md#heavy-hitters-h2o')

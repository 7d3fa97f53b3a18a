"""Which slice of each weight a tensor-parallel rank holds (Megatron-LM, Shoeybi et al. 2019).

Weights use torch's ``nn.Linear`` layout ``w: [out_features, in_features]`` (``y = x @ w.T``).

* Column-parallel: rank r keeps a contiguous block of OUTPUT rows, ``[out / world, in]``; it
  computes its slice of ``y`` from the full ``x``, with no communication.
* Row-parallel: rank r keeps a contiguous block of INPUT columns, ``[out, in / world]``; it
  multiplies its slice of ``x`` and gets a PARTIAL SUM of the full ``y``: the sum over ranks
  (one all-reduce) is ``y``.

Attention heads follow the column split of ``q_proj``: rank r owns a contiguous block of query
heads, and the key/value heads those queries read (grouped-query attention). When there are
more ranks than KV heads, each KV head is replicated on ``world / n_kv_heads`` ranks, as vLLM
does; when the counts do not divide, there is no clean split and we refuse.

Read: learning/lesson19.md#column-and-row-parallel-shards
"""

from __future__ import annotations

import torch


def check_split(size: int, world: int, what: str) -> None:
    """Raise ValueError unless ``size`` splits into ``world`` equal whole parts."""
    if world < 1:
        raise ValueError(f"world size must be at least 1, got {world}")
    if size % world:
        raise ValueError(f"{what} ({size}) does not split evenly over {world} ranks "
                         f"({size} / {world} = {size / world:.3g}); pick a world size that "
                         f"divides {size}")


def check_rank(rank: int, world: int) -> None:
    if not 0 <= rank < world:
        raise ValueError(f"rank must be in [0, {world}), got {rank}")


def column_parallel_shard(w: torch.Tensor, rank: int, world: int) -> torch.Tensor:
    """Rank ``rank``'s block of output rows of ``w: [out, in]`` -> ``[out / world, in]``.

    Rows ``rank * out / world`` up to (not including) ``(rank + 1) * out / world``; the
    shards of ranks 0..world-1 stacked in order give back ``w``. Returns a contiguous tensor.
    About 2 lines. Example: ``w`` of shape [6, 4], world 3, rank 1 -> rows 2 and 3.

    Read: learning/lesson19.md#column-and-row-parallel-shards
    """
    if w.dim() != 2:
        raise ValueError(f"w must be [out, in], got shape {tuple(w.shape)}")
    check_rank(rank, world)
    check_split(w.shape[0], world, "the output dimension of w")
    ### BEGIN SOLUTION
    rows = w.shape[0] // world
    return w[rank * rows:(rank + 1) * rows].contiguous()
    ### END SOLUTION


def row_parallel_shard(w: torch.Tensor, rank: int, world: int) -> torch.Tensor:
    """Rank ``rank``'s block of input columns of ``w: [out, in]`` -> ``[out, in / world]``.

    Columns ``rank * in / world`` up to ``(rank + 1) * in / world``; concatenating the shards
    along dim 1 gives back ``w``, and ``sum_r x[..., cols_r] @ shard_r.T == x @ w.T``.
    Returns a contiguous tensor. About 2 lines.

    Read: learning/lesson19.md#column-and-row-parallel-shards
    """
    if w.dim() != 2:
        raise ValueError(f"w must be [out, in], got shape {tuple(w.shape)}")
    check_rank(rank, world)
    check_split(w.shape[1], world, "the input dimension of w")
    ### BEGIN SOLUTION
    cols = w.shape[1] // world
    return w[:, rank * cols:(rank + 1) * cols].contiguous()
    ### END SOLUTION


def tp_heads(n_heads: int, n_kv_heads: int, rank: int, world: int) -> tuple[range, range]:
    """The query heads and the KV heads that rank ``rank`` of ``world`` owns.

    Returns ``(q_heads, kv_heads)``, two ranges of head indices. The query heads are the
    rank's contiguous block of ``n_heads / world`` heads, the same rows that
    ``column_parallel_shard(q_proj, rank, world)`` holds. The KV heads are those those query
    heads read (query head h reads KV head ``h // (n_heads / n_kv_heads)``):

    * ``world <= n_kv_heads``: a contiguous block of ``n_kv_heads / world`` KV heads;
    * ``world > n_kv_heads``: one KV head, replicated on ``world / n_kv_heads`` ranks.

    About 6 lines. Examples: 32 query and 8 KV heads over 4 ranks, rank 1; 4 query and 2 KV
    heads over 4 ranks (KV replicated), rank 3:

    >>> tp_heads(32, 8, 1, 4)
    (range(8, 16), range(2, 4))
    >>> tp_heads(4, 2, 3, 4)
    (range(3, 4), range(1, 2))

    Read: learning/lesson19.md#splitting-attention-heads-with-gqa
    """
    check_rank(rank, world)
    if n_kv_heads < 1 or n_heads % n_kv_heads:
        raise ValueError(f"n_heads ({n_heads}) must be a positive multiple of n_kv_heads "
                         f"({n_kv_heads})")
    check_split(n_heads, world, "the number of query heads")
    if world <= n_kv_heads:
        check_split(n_kv_heads, world, "the number of KV heads")
    else:
        if world % n_kv_heads:
            raise ValueError(f"{world} ranks cannot share {n_kv_heads} KV heads evenly: with "
                             "more ranks than KV heads, the world size must be a multiple of "
                             "n_kv_heads (each KV head is then replicated)")
    ### BEGIN SOLUTION
    per_rank = n_heads // world
    q_heads = range(rank * per_rank, (rank + 1) * per_rank)
    if world <= n_kv_heads:
        kv_per_rank = n_kv_heads // world
        return q_heads, range(rank * kv_per_rank, (rank + 1) * kv_per_rank)
    replicas = world // n_kv_heads
    return q_heads, range(rank // replicas, rank // replicas + 1)
    ### END SOLUTION

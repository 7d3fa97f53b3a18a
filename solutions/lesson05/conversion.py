"""Turning a multi-head checkpoint into a grouped-query one, and what it saves.

Ainslie et al. (2023, section 2.1) "uptrain" an MHA model into GQA: the key and value
projection of each group is the MEAN of the projections of the original heads in that group,
then training continues for a few percent of the original steps. Groups are consecutive heads,
matching ``query head h -> KV head h // group`` in grouped_attention.py.

Projection weights use the PyTorch/HF layout ``[n_heads * d_head, d_model]``: rows
``h * d_head .. (h + 1) * d_head`` produce head ``h``.

Read: learning/lesson05.md#from-mha-to-gqa-by-mean-pooling
"""

from __future__ import annotations

import torch

from course.config import LlamaConfig


def convert_mha_to_gqa(k_proj_weight: torch.Tensor, v_proj_weight: torch.Tensor, n_heads: int,
                       n_groups: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean-pool the K and V projections of the heads in each group.

    Args:
        k_proj_weight, v_proj_weight: ``[n_heads * d_head, d_model]``.
        n_heads: heads in the given weights.
        n_groups: KV heads wanted; must divide ``n_heads``.
    Returns:
        ``(k, v)``, each ``[n_groups * d_head, d_model]``, same dtype: group ``j``'s head is the
        mean over heads ``j * r .. (j + 1) * r - 1`` with ``r = n_heads // n_groups``.
        ``n_groups == n_heads`` returns equal weights (MHA); ``n_groups == 1`` gives MQA.

    Example: with 4 heads and 2 groups, new head 0 = (head 0 + head 1) / 2 and new head 1 =
    (head 2 + head 3) / 2. About 6 lines: a view ``[n_groups, r, d_head, d_model]`` and a mean.

    Read: learning/lesson05.md#from-mha-to-gqa-by-mean-pooling
    """
    if k_proj_weight.shape != v_proj_weight.shape or k_proj_weight.dim() != 2:
        raise ValueError("k_proj_weight and v_proj_weight must both be [n_heads * d_head, "
                         f"d_model]; got {tuple(k_proj_weight.shape)} and "
                         f"{tuple(v_proj_weight.shape)}")
    if n_heads < 1 or k_proj_weight.shape[0] % n_heads:
        raise ValueError(f"{k_proj_weight.shape[0]} rows do not split into {n_heads} heads")
    if n_groups < 1 or n_heads % n_groups:
        raise ValueError(f"n_groups ({n_groups}) must divide n_heads ({n_heads})")
    ### BEGIN SOLUTION
    rows, d_model = k_proj_weight.shape
    d_head, per_group = rows // n_heads, n_heads // n_groups

    def pool(w: torch.Tensor) -> torch.Tensor:
        grouped = w.reshape(n_groups, per_group, d_head, d_model)
        return grouped.float().mean(dim=1).to(w.dtype).reshape(n_groups * d_head, d_model)

    return pool(k_proj_weight), pool(v_proj_weight)
    ### END SOLUTION


def kv_reduction_factor(cfg: LlamaConfig, n_kv_heads: int | None = None) -> int:
    """How many times smaller the KV cache is than the same model's MHA cache.

    Args:
        cfg: the model's shape.
        n_kv_heads: KV heads to assume instead of ``cfg.n_kv_heads`` (e.g. "what if we converted
            it to 1?"); must divide ``cfg.n_heads``.
    Returns:
        KV bytes per token with ``n_heads`` KV heads, divided by KV bytes per token with
        ``n_kv_heads`` KV heads (an int: 1 for MHA, ``n_heads`` for MQA). KV bytes per token
        are ``2 x n_layers x n_kv_heads x d_head x bytes per element``; write the ratio from
        that formula (one or two lines).

    Example: Llama-3-8B (32 query heads, 8 KV heads) -> 4; Llama-2-7B (MHA) -> 1.

    Read: learning/lesson05.md#what-gqa-saves
    """
    kv = cfg.n_kv_heads if n_kv_heads is None else n_kv_heads
    if kv < 1 or cfg.n_heads % kv:
        raise ValueError(f"n_kv_heads ({kv}) must divide n_heads ({cfg.n_heads})")
    ### BEGIN SOLUTION
    mha = 2 * cfg.n_layers * cfg.n_heads * cfg.d_head
    return mha // (2 * cfg.n_layers * kv * cfg.d_head)
    ### END SOLUTION

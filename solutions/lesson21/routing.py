"""The router of a mixture-of-experts layer: which experts each token goes to, with what weight.

A router is one linear map ``router_logits = x @ router_w.T`` (``router_w: [n_experts,
d_model]``) followed by a softmax over the expert axis and a top-k. Two conventions for the
weights of the chosen experts:

- Mixtral (Jiang et al. 2024) renormalises the k kept probabilities to sum to 1 (the same as a
  softmax over the k kept logits): ``renormalize=True``.
- Switch Transformer (Fedus et al. 2021) routes top-1 and keeps the raw probability p_i, so the
  expert output is scaled by p_i (``renormalize=False``); with k = 1 a renormalised weight would
  always be 1 and the router would get no gradient through the output.

Ties (equal probabilities) go to the LOWEST expert id, so routing is deterministic.

Read: learning/lesson21.md#the-router-softmax-then-top-k
"""

from __future__ import annotations

import torch


def check_router_logits(router_logits: torch.Tensor, k: int) -> None:
    """Raise ValueError, in plain words, for logits that cannot be routed top-k."""
    if not isinstance(router_logits, torch.Tensor) or router_logits.dim() != 2:
        shape = tuple(router_logits.shape) if isinstance(router_logits, torch.Tensor) else None
        raise ValueError(f"router_logits must be a [tokens, n_experts] tensor, got shape {shape}")
    if not router_logits.is_floating_point():
        raise ValueError(f"router_logits must be floating point, got {router_logits.dtype}")
    n_experts = router_logits.shape[1]
    if isinstance(k, bool) or int(k) != k or not 1 <= k <= n_experts:
        raise ValueError(f"k must be a whole number between 1 and n_experts={n_experts}, got {k}")


def topk_route(router_logits: torch.Tensor, k: int,
               renormalize: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax over the experts, then the k most probable experts of each token.

    Args:
        router_logits: ``[tokens, n_experts]``, any float dtype.
        k: experts per token, ``1 <= k <= n_experts``.
        renormalize: divide the k kept probabilities by their sum (Mixtral); False keeps the
            raw softmax probabilities (Switch).
    Returns:
        ``(expert_ids, weights)``, both ``[tokens, k]``: ``expert_ids`` int64, in order of
        decreasing probability, equal probabilities in increasing expert id; ``weights`` in
        float32 (softmax computed in float32 whatever the input dtype), on the logits' device.

    Softmax comes BEFORE the top-k: the weights are probabilities over all experts, then
    renormalised over the kept ones. ``torch.topk`` does not promise which of two equal values
    comes first; a stable descending sort does. About 6 lines.

    Example: logits ``[[0., 0., 1.]]``, k = 2 -> ids ``[[2, 0]]`` (experts 0 and 1 tie; 0 wins).

    Read: learning/lesson21.md#the-router-softmax-then-top-k
    """
    check_router_logits(router_logits, k)
    ### BEGIN SOLUTION
    probs = torch.softmax(router_logits.float(), dim=-1)
    order = torch.sort(probs, dim=-1, descending=True, stable=True)
    weights, expert_ids = order.values[:, :k], order.indices[:, :k]
    if renormalize:
        weights = weights / weights.sum(dim=-1, keepdim=True)
    return expert_ids, weights
    ### END SOLUTION


def load_balance_loss(router_logits: torch.Tensor, expert_ids: torch.Tensor) -> torch.Tensor:
    """Switch Transformer's auxiliary load-balancing loss (Fedus et al. 2021, eq. 4), without
    its coefficient alpha: ``n_experts * sum_i f_i * P_i``.

    Args:
        router_logits: ``[tokens, n_experts]``.
        expert_ids: ``[tokens, k]`` int, the experts each token was routed to.
    Returns:
        a float32 scalar tensor. ``f_i`` is the fraction of the ``tokens * k`` assignments that
        went to expert i (the f_i sum to 1); ``P_i`` is the mean over tokens of the router's
        softmax probability for expert i. Perfectly uniform routing gives exactly 1.0.

    (HF transformers' Mixtral loss divides the counts by ``tokens`` instead of ``tokens * k``,
    so its value is k times this one.) About 5 lines.

    Read: learning/lesson21.md#keeping-the-experts-busy-the-load-balancing-loss
    """
    check_router_logits(router_logits, 1)
    if expert_ids.dim() != 2 or expert_ids.shape[0] != router_logits.shape[0]:
        raise ValueError(f"expert_ids must be [tokens, k] with tokens = "
                         f"{router_logits.shape[0]}, got shape {tuple(expert_ids.shape)}")
    if expert_ids.shape[0] == 0:
        raise ValueError("need at least one token to average over")
    ### BEGIN SOLUTION
    n_experts = router_logits.shape[1]
    counts = torch.bincount(expert_ids.reshape(-1), minlength=n_experts).float()
    f = counts / expert_ids.numel()
    p = torch.softmax(router_logits.float(), dim=-1).mean(dim=0)
    return n_experts * (f * p).sum()
    ### END SOLUTION

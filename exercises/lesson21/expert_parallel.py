"""Expert parallelism on torch.distributed: each rank holds some experts and its own tokens.

With ``ep`` ranks and ``E`` experts, rank r holds the contiguous block of experts
``r * E/ep .. (r + 1) * E/ep - 1`` and routes its own tokens with the full router. One layer:

1. route locally (your ``topk_route``);
2. exchange the number of assignments each rank sends to each other rank (a small all-to-all of
   counts), then the assignments' hidden vectors and local expert ids (all-to-all 1, dispatch);
3. run the local experts on what arrived (your ``dispatch`` with room for everything, and
   three batched matmuls);
4. send the outputs back the way they came (all-to-all 2, combine), and add them with the
   router weights.

Nothing is dropped here (no capacity): the result equals ``moe_layer`` with
``capacity_factor=None`` run on all ranks' tokens in one process. An assignment whose expert is
on its own rank also goes through the all-to-all (to itself): that part costs no wire.

Read: learning/lesson21.md#expert-parallelism-on-gloo-ranks
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F

from .dispatch import check_experts, dispatch
from .routing import topk_route


def ep_moe_layer(x: torch.Tensor, router_w: torch.Tensor, w_gate: torch.Tensor,
                 w_up: torch.Tensor, w_down: torch.Tensor, k: int, group=None) -> torch.Tensor:
    """A dropless MoE layer whose experts are spread over the ranks of ``group``.

    Args:
        x: ``[tokens, d_model]``, this rank's tokens (ranks may hold different numbers, even 0).
        router_w: ``[n_experts, d_model]``, the whole router, the same on every rank.
        w_gate, w_up: ``[n_experts / ep, d_ff, d_model]``; w_down: ``[n_experts / ep, d_model,
            d_ff]``: this rank's experts, rank r holding experts ``r * n_experts / ep`` onward.
        k: experts per token (renormalised weights, as Mixtral).
        group: the process group (None: the default group).
    Returns:
        ``[tokens, d_model]`` in x's dtype, this rank's rows of ``moe_layer`` over all ranks'
        tokens with ``capacity_factor=None``.

    Collectives: ``dist.all_to_all_single`` only, at most four calls (counts, hidden vectors,
    expert ids, outputs). Sort the assignments by destination rank first (a stable
    ``argsort``), so each rank's share is one contiguous block; remember the permutation to
    put the returned outputs back. About 20 lines.

    Read: learning/lesson21.md#expert-parallelism-on-gloo-ranks
    """
    world = dist.get_world_size(group)
    n_experts = router_w.shape[0]
    if n_experts % world:
        raise ValueError(f"{n_experts} experts do not split over {world} ranks")
    per_rank = n_experts // world
    if w_gate.shape[0] != per_rank:
        raise ValueError(f"each of the {world} ranks holds {per_rank} experts; w_gate has "
                         f"{w_gate.shape[0]}")
    check_experts(x, router_w[:per_rank], w_gate, w_up, w_down)
    raise NotImplementedError('lesson21: ep_moe_layer - read learning/lesson21.md#expert-parallelism-on-gloo-ranks')

"""Dispatch and combine: tokens to fixed-size expert buffers and back, with a capacity.

Each expert gets a buffer of ``capacity`` rows. Assignments (token t, its j-th choice) are
served in a fixed PRIORITY ORDER, the one of GShard (Lepikhin et al. 2020, algorithm 1; Switch,
Fedus et al. 2021, has one choice per token and serves tokens in order): every token's FIRST
choice, in token order, then every token's second choice, in token order, and so on. An assignment that finds its expert's buffer full is
DROPPED: it contributes nothing, and a token whose choices are all dropped leaves the layer as
zero (only the residual connection around the layer carries it on). Which assignments are
dropped is therefore exact and deterministic: given the routing, the priority order decides.

The layer: ``moe_layer(x) = sum over kept (t, j) of weight[t, j] * expert_{e}(x[t])`` with
``e = expert_ids[t, j]`` and each expert a SwiGLU MLP ``down(silu(gate(x)) * up(x))``; the
block around it adds the residual ``x``.

Read: learning/lesson21.md#capacity-and-dropped-tokens
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .routing import topk_route

FLOAT_SLACK = 1e-9  # slots: 1.1 x 45 x 2 / 3 is 33.00000000000001 in floating point, not 34


def check_assignments(expert_ids: torch.Tensor, n_tokens: int, n_experts: int) -> None:
    """Raise ValueError, in plain words, for expert ids that do not fit ``n_tokens`` tokens."""
    if expert_ids.dim() != 2 or expert_ids.shape[0] != n_tokens:
        raise ValueError(f"expert_ids must be [tokens, k] with tokens = {n_tokens}, got shape "
                         f"{tuple(expert_ids.shape)}")
    if expert_ids.dtype not in (torch.int32, torch.int64):
        raise ValueError(f"expert_ids must be int32 or int64, got {expert_ids.dtype}")
    if expert_ids.numel() and not (0 <= int(expert_ids.min()) and int(expert_ids.max()) < n_experts):
        raise ValueError(f"expert ids must lie in [0, {n_experts}), got values from "
                         f"{int(expert_ids.min())} to {int(expert_ids.max())}")


def expert_capacity(n_tokens: int, n_experts: int, k: int,
                    capacity_factor: float | None) -> int:
    """Rows in each expert's buffer: ``ceil(capacity_factor * n_tokens * k / n_experts)``,
    at most ``n_tokens`` (an expert cannot receive a token twice).

    Args:
        n_tokens: tokens in the batch (>= 0); k: experts per token (>= 1); n_experts (>= 1).
        capacity_factor: > 0; ``None`` means unbounded: capacity ``n_tokens``, nothing dropped.
    Returns:
        an int. The product is rounded UP (ceil), forgiving a float error of 1e-9 slot
        (``FLOAT_SLACK``): 1.1 x 45 tokens x 2 / 3 experts is 33.00000000000001 in floating
        point, and 33 slots, not 34.

    Example: 8 tokens, 4 experts, top-2, capacity factor 1.25 -> ceil(5.0) = 5 slots;
    factor 1.0 with 6 tokens, 4 experts, top-1 -> ceil(1.5) = 2. About 3 lines.

    Read: learning/lesson21.md#capacity-and-dropped-tokens
    """
    if n_tokens < 0 or n_experts < 1 or k < 1:
        raise ValueError(f"need n_tokens >= 0, n_experts >= 1, k >= 1; got {n_tokens=}, "
                         f"{n_experts=}, {k=}")
    if capacity_factor is not None and not capacity_factor > 0:
        raise ValueError(f"capacity_factor must be > 0 or None (unbounded), got {capacity_factor}")
    ### BEGIN SOLUTION
    if capacity_factor is None:
        return n_tokens
    slots = math.ceil(capacity_factor * n_tokens * k / n_experts - FLOAT_SLACK)
    return min(slots, n_tokens)
    ### END SOLUTION


def dispatch(x: torch.Tensor, expert_ids: torch.Tensor, n_experts: int,
             capacity: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Copy each kept assignment's token into its expert's buffer, in priority order.

    Args:
        x: ``[tokens, d_model]``.
        expert_ids: ``[tokens, k]`` int, column j holds each token's j-th choice.
        n_experts: experts (buffers); capacity: rows per buffer (>= 0).
    Returns:
        ``(buffers, slots, dropped)``:
        ``buffers``: ``[n_experts, capacity, d_model]``, x's dtype and device; expert e's rows
        are its kept tokens in priority order (first choices in token order, then second
        choices in token order, ...), unused rows zero.
        ``slots``: ``[tokens, k]`` int64, the row of ``buffers[expert_ids[t, j]]`` holding
        token t for its j-th choice, or -1 where that assignment was dropped.
        ``dropped``: ``[tokens, k]`` bool, ``slots == -1``.

    An assignment is dropped exactly when ``capacity`` assignments of higher priority already
    went to the same expert. No Python loop over tokens or experts: a running count per expert
    (``cumsum`` of a one-hot) over the assignments laid out in priority order gives each one
    its row. About 12 lines.

    Read: learning/lesson21.md#capacity-and-dropped-tokens
    """
    if x.dim() != 2:
        raise ValueError(f"x must be [tokens, d_model], got shape {tuple(x.shape)}")
    check_assignments(expert_ids, x.shape[0], n_experts)
    if isinstance(capacity, bool) or int(capacity) != capacity or capacity < 0:
        raise ValueError(f"capacity must be a whole number >= 0, got {capacity}")
    ### BEGIN SOLUTION
    # hint: expert_ids.t().reshape(-1) lists the assignments in priority order
    n_tokens, k = expert_ids.shape
    expert_ids = expert_ids.long()
    in_order = expert_ids.t().reshape(-1)
    onehot = F.one_hot(in_order, n_experts)
    arrival = (onehot.cumsum(dim=0) * onehot).sum(dim=-1) - 1  # rank within its expert
    position = arrival.view(k, n_tokens).t()
    dropped = position >= capacity
    slots = position.masked_fill(dropped, -1)
    buffers = x.new_zeros(n_experts, capacity, x.shape[1])
    kept = ~dropped
    tokens = torch.arange(n_tokens, device=x.device)[:, None].expand(n_tokens, k)
    buffers[expert_ids[kept], slots[kept]] = x[tokens[kept]]
    return buffers, slots, dropped
    ### END SOLUTION


def combine(expert_out: torch.Tensor, expert_ids: torch.Tensor, slots: torch.Tensor,
            weights: torch.Tensor) -> torch.Tensor:
    """Weighted sum, per token, of the expert outputs of its kept assignments.

    Args:
        expert_out: ``[n_experts, capacity, d_model]``, row c of expert e the output for the
            token dispatch put in that row.
        expert_ids, slots: ``[tokens, k]`` as dispatch used and returned them.
        weights: ``[tokens, k]``, the router weights of the assignments.
    Returns:
        ``[tokens, d_model]`` in expert_out's dtype (summed in float32):
        ``out[t] = sum over j with slots[t, j] != -1 of weights[t, j] * expert_out[e, slots[t, j]]``.
        A dropped assignment adds nothing (its weight is NOT given to the other choices); a
        token with every choice dropped gets a zero row; capacity 0 gives all zeros.

    About 5 lines.

    Read: learning/lesson21.md#capacity-and-dropped-tokens
    """
    if expert_out.dim() != 3:
        raise ValueError(f"expert_out must be [n_experts, capacity, d_model], got shape "
                         f"{tuple(expert_out.shape)}")
    check_assignments(expert_ids, slots.shape[0], expert_out.shape[0])
    if slots.shape != expert_ids.shape or weights.shape != expert_ids.shape:
        raise ValueError(f"expert_ids {tuple(expert_ids.shape)}, slots {tuple(slots.shape)} and "
                         f"weights {tuple(weights.shape)} must all be [tokens, k]")
    ### BEGIN SOLUTION
    if expert_out.shape[1] == 0:  # capacity 0: every assignment dropped, nothing to gather
        return expert_out.new_zeros(slots.shape[0], expert_out.shape[2])
    kept = slots >= 0
    rows = expert_out[expert_ids.long(), slots.clamp(min=0)].float()  # [tokens, k, d_model]
    scale = torch.where(kept, weights.float(), 0.0)
    return (rows * scale[..., None]).sum(dim=1).to(expert_out.dtype)
    ### END SOLUTION


def check_experts(x, router_w, w_gate, w_up, w_down) -> None:
    """Raise ValueError, in plain words, for weights that do not make an MoE layer over x."""
    if x.dim() != 2 or router_w.dim() != 2 or router_w.shape[1] != x.shape[1]:
        raise ValueError(f"x must be [tokens, d_model] and router_w [n_experts, d_model]; got "
                         f"{tuple(x.shape)} and {tuple(router_w.shape)}")
    n_experts, d_model = router_w.shape
    if w_gate.dim() != 3 or w_gate.shape[0] != n_experts or w_gate.shape[2] != d_model \
            or w_up.shape != w_gate.shape \
            or tuple(w_down.shape) != (n_experts, d_model, w_gate.shape[1]):
        raise ValueError(f"with {n_experts} experts and d_model {d_model}, w_gate and w_up must "
                         f"be [n_experts, d_ff, d_model] and w_down [n_experts, d_model, d_ff]; "
                         f"got {tuple(w_gate.shape)}, {tuple(w_up.shape)}, {tuple(w_down.shape)}")


def moe_layer_spec(x, router_w, w_gate, w_up, w_down, k, capacity=None, renormalize=True):
    """The meaning of an MoE layer, one token and one expert at a time (slow on purpose).

    Routing in float32 (``x.float() @ router_w.float().T``, softmax, the k largest, ties to the
    lowest id), assignments served in priority order (first choices in token order, then second
    choices, ...), an assignment dropped when its expert already holds ``capacity`` (None:
    never), each expert a SwiGLU MLP in float32. Returns ``[tokens, d_model]`` in x's dtype.
    """
    check_experts(x, router_w, w_gate, w_up, w_down)
    n_tokens, n_experts = x.shape[0], router_w.shape[0]
    probs = torch.softmax(x.float() @ router_w.float().T, dim=-1)
    choices = []
    for t in range(n_tokens):
        p = probs[t].tolist()
        ranked = sorted(range(n_experts), key=lambda e: (-p[e], e))[:k]
        total = sum(p[e] for e in ranked) if renormalize else 1.0
        choices.append([(e, p[e] / total) for e in ranked])
    served = [0] * n_experts
    out = torch.zeros(n_tokens, x.shape[1])
    for j in range(k):
        for t in range(n_tokens):
            e, weight = choices[t][j]
            if capacity is not None and served[e] >= capacity:
                continue  # dropped
            served[e] += 1
            h = x[t].float()
            hidden = F.silu(w_gate[e].float() @ h) * (w_up[e].float() @ h)
            out[t] += weight * (w_down[e].float() @ hidden)
    return out.to(x.dtype)


def moe_layer(x: torch.Tensor, router_w: torch.Tensor, w_gate: torch.Tensor,
              w_up: torch.Tensor, w_down: torch.Tensor, k: int,
              capacity_factor: float | None = None, renormalize: bool = True) -> torch.Tensor:
    """A mixture-of-SwiGLU-experts MLP: route, dispatch, run every expert at once, combine.

    Args:
        x: ``[tokens, d_model]``.
        router_w: ``[n_experts, d_model]``; router logits are ``x.float() @ router_w.float().T``.
        w_gate, w_up: ``[n_experts, d_ff, d_model]``; w_down: ``[n_experts, d_model, d_ff]``
            (``nn.Linear`` layout per expert, stacked).
        k: experts per token. capacity_factor: see expert_capacity (None: nothing dropped).
        renormalize: as in topk_route.
    Returns:
        ``[tokens, d_model]`` in x's dtype, equal to ``moe_layer_spec`` with capacity
        ``expert_capacity(tokens, n_experts, k, capacity_factor)``. Without the residual.

    Use your topk_route, expert_capacity, dispatch and combine, and run the experts as three
    batched matmuls over the ``[n_experts, capacity, d_model]`` buffers (``torch.bmm``), never a
    Python loop over experts: the number of ops must not grow with n_experts (graded by counting
    ops), and on a GPU it is timed against the per-expert loop. About 8 lines.

    Read: learning/lesson21.md#the-whole-layer-and-its-oracle
    """
    check_experts(x, router_w, w_gate, w_up, w_down)
    ### BEGIN SOLUTION
    n_experts = router_w.shape[0]
    expert_ids, weights = topk_route(x.float() @ router_w.float().T, k, renormalize)
    capacity = expert_capacity(x.shape[0], n_experts, k, capacity_factor)
    buffers, slots, _ = dispatch(x, expert_ids, n_experts, capacity)
    gate = torch.bmm(buffers, w_gate.transpose(1, 2))
    up = torch.bmm(buffers, w_up.transpose(1, 2))
    out = torch.bmm(F.silu(gate) * up, w_down.transpose(1, 2))
    return combine(out, expert_ids, slots, weights).to(x.dtype)
    ### END SOLUTION

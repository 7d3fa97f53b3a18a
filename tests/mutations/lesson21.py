"""Planted bugs in the lesson 21 reference that its hidden graders must catch.

Classes (tests/mutations/__init__.py BUG_CLASSES): every class is planted below.
"""

from . import Mutation

H21 = "autograder/hidden/lesson21/"
ROUTE = H21 + "test_routing_grading.py::"
DISPATCH = H21 + "test_dispatch_grading.py::"
SIZING = H21 + "test_sizing_grading.py::"
EP = H21 + "test_ep_grading.py::test_ep_layer_equals_one_process"
GPU = H21 + "test_gpu_moe.py::test_batched_moe_layer_against_the_expert_loop"

SOFTMAX = "    probs = torch.softmax(router_logits.float(), dim=-1)\n"
SORT = ("    order = torch.sort(probs, dim=-1, descending=True, stable=True)\n"
        "    weights, expert_ids = order.values[:, :k], order.indices[:, :k]\n")
EXPERTS = ("    gate = torch.bmm(buffers, w_gate.transpose(1, 2))\n"
           "    up = torch.bmm(buffers, w_up.transpose(1, 2))\n"
           "    out = torch.bmm(F.silu(gate) * up, w_down.transpose(1, 2))\n")
PRIORITY = ("    in_order = expert_ids.t().reshape(-1)\n"
            "    onehot = F.one_hot(in_order, n_experts)\n"
            "    arrival = (onehot.cumsum(dim=0) * onehot).sum(dim=-1) - 1  # rank within its expert\n"
            "    position = arrival.view(k, n_tokens).t()\n")

MUTATIONS = [
    # --- the router
    Mutation("softmax over the kept top-k logits (after the top-k)", "lesson21", "routing.py",
             SOFTMAX + SORT,
             "    order = torch.sort(router_logits.float(), dim=-1, descending=True, stable=True)\n"
             "    weights = torch.softmax(order.values[:, :k], dim=-1)\n"
             "    expert_ids = order.indices[:, :k]\n",
             (ROUTE + "test_topk_route_equals_sorted_reference",)),
    Mutation("renormalisation forgotten", "lesson21", "routing.py",
             "        weights = weights / weights.sum(dim=-1, keepdim=True)\n",
             "        weights = weights\n",
             (ROUTE + "test_topk_route_equals_sorted_reference",)),
    Mutation("one softmax over the whole batch", "lesson21", "routing.py",
             SOFTMAX,
             "    probs = torch.softmax(router_logits.float().flatten(), dim=0).view(router_logits.shape)\n",
             (ROUTE + "test_topk_route_equals_sorted_reference",), kind="rows-differ"),
    Mutation("exp without subtracting the row maximum", "lesson21", "routing.py",
             SOFTMAX,
             "    probs = router_logits.float().exp()\n"
             "    probs = probs / probs.sum(dim=-1, keepdim=True)\n",
             (ROUTE + "test_logits_in_the_hundreds_and_bf16",), kind="extreme"),
    Mutation("weights in the logits' dtype (bf16)", "lesson21", "routing.py",
             SOFTMAX, "    probs = torch.softmax(router_logits, dim=-1)\n",
             (ROUTE + "test_logits_in_the_hundreds_and_bf16",), kind="dtype-device"),
    Mutation("torch.topk: ties not broken toward the lowest id", "lesson21", "routing.py",
             SORT,
             "    order = torch.topk(probs, k, dim=-1)\n"
             "    weights, expert_ids = order.values, order.indices\n",
             (ROUTE + "test_ties_go_to_the_lowest_expert_id",), kind="boundary"),
    Mutation("k = 1 special-cased to weight 1", "lesson21", "routing.py",
             SORT,
             "    if k == 1:\n"
             "        return probs.argmax(dim=-1, keepdim=True), torch.ones(probs.shape[0], 1)\n"
             + SORT,
             (ROUTE + "test_topk_route_equals_sorted_reference",), kind="special-value"),
    # --- the load-balancing loss
    Mutation("f_i over tokens instead of tokens x k", "lesson21", "routing.py",
             "    f = counts / expert_ids.numel()\n", "    f = counts / expert_ids.shape[0]\n",
             (ROUTE + "test_load_balance_loss_by_hand",)),
    # --- capacity
    Mutation("capacity rounded down", "lesson21", "dispatch.py",
             "    slots = math.ceil(", "    slots = math.floor(",
             (DISPATCH + "test_expert_capacity",), kind="boundary"),
    Mutation("ceil of a float product with rounding noise", "lesson21", "dispatch.py",
             " / n_experts - FLOAT_SLACK)", " / n_experts)",
             (DISPATCH + "test_expert_capacity",), kind="boundary"),
    # --- dispatch
    Mutation("second choices served before first choices", "lesson21", "dispatch.py",
             PRIORITY,
             PRIORITY.replace("expert_ids.t()", "expert_ids.flip(1).t()")
             .replace("n_tokens).t()\n", "n_tokens).t().flip(1)\n"),
             (DISPATCH + "test_dispatch_worked_example_of_the_lesson",), kind="multi-token"),
    Mutation("priority in token order (each token's choices together)", "lesson21", "dispatch.py",
             PRIORITY,
             PRIORITY.replace("expert_ids.t().reshape(-1)", "expert_ids.reshape(-1)")
             .replace("arrival.view(k, n_tokens).t()", "arrival.view(n_tokens, k)"),
             (DISPATCH + "test_dispatch_equals_priority_loop",
              DISPATCH + "test_dispatch_worked_example_of_the_lesson")),
    Mutation("an expert keeps capacity + 1 assignments", "lesson21", "dispatch.py",
             "    dropped = position >= capacity\n", "    dropped = position > capacity\n",
             (DISPATCH + "test_dispatch_equals_priority_loop",), kind="boundary"),
    Mutation("dropped slots marked with capacity instead of -1", "lesson21", "dispatch.py",
             "    slots = position.masked_fill(dropped, -1)\n",
             "    slots = position.masked_fill(dropped, capacity)\n",
             (DISPATCH + "test_dispatch_equals_priority_loop",), kind="contract"),
    Mutation("dispatch ranks assignments in a Python loop", "lesson21", "dispatch.py",
             "    onehot = F.one_hot(in_order, n_experts)\n"
             "    arrival = (onehot.cumsum(dim=0) * onehot).sum(dim=-1) - 1  # rank within its expert\n",
             "    counts = [0] * n_experts\n"
             "    arrival = torch.empty_like(in_order)\n"
             "    for i, e in enumerate(in_order.tolist()):\n"
             "        arrival[i] = counts[e]\n"
             "        counts[e] += 1\n",
             (DISPATCH + "test_no_python_loop_over_experts_or_tokens",), kind="cost"),
    # --- combine
    Mutation("row 0 treated as dropped (slots > 0)", "lesson21", "dispatch.py",
             "    kept = slots >= 0\n", "    kept = slots > 0\n",
             (DISPATCH + "test_combine_equals_weighted_sum_of_kept_rows",), kind="special-value"),
    Mutation("combine ignores the router weights", "lesson21", "dispatch.py",
             "    scale = torch.where(kept, weights.float(), 0.0)\n",
             "    scale = kept.float()\n",
             (DISPATCH + "test_combine_equals_weighted_sum_of_kept_rows",)),
    Mutation("dropped assignments read a row anyway", "lesson21", "dispatch.py",
             "    scale = torch.where(kept, weights.float(), 0.0)\n",
             "    scale = weights.float()\n",
             (DISPATCH + "test_combine_equals_weighted_sum_of_kept_rows",)),
    Mutation("capacity 0 gathers from an empty buffer", "lesson21", "dispatch.py",
             "    if expert_out.shape[1] == 0:  # capacity 0: every assignment dropped, nothing to gather\n"
             "        return expert_out.new_zeros(slots.shape[0], expert_out.shape[2])\n", "",
             (DISPATCH + "test_combine_equals_weighted_sum_of_kept_rows",), kind="special-value"),
    Mutation("combine returns its float32 accumulator", "lesson21", "dispatch.py",
             "    return (rows * scale[..., None]).sum(dim=1).to(expert_out.dtype)\n",
             "    return (rows * scale[..., None]).sum(dim=1)\n",
             (DISPATCH + "test_combine_keeps_bf16",), kind="dtype-device"),
    # --- the layer
    Mutation("moe_layer ignores the capacity factor", "lesson21", "dispatch.py",
             "expert_capacity(x.shape[0], n_experts, k, capacity_factor)",
             "expert_capacity(x.shape[0], n_experts, k, None)",
             (DISPATCH + "test_moe_layer_equals_loop_over_experts",), kind="unvaried-arg"),
    Mutation("a Python loop over experts", "lesson21", "dispatch.py", EXPERTS,
             "    out = torch.stack([\n"
             "        (F.silu(buffers[e] @ w_gate[e].T) * (buffers[e] @ w_up[e].T)) @ w_down[e].T\n"
             "        for e in range(n_experts)])\n",
             (DISPATCH + "test_no_python_loop_over_experts_or_tokens",), kind="cost"),
    Mutation("GPU: a Python loop over experts", "lesson21", "dispatch.py", EXPERTS,
             "    out = torch.stack([\n"
             "        (F.silu(buffers[e] @ w_gate[e].T) * (buffers[e] @ w_up[e].T)) @ w_down[e].T\n"
             "        for e in range(n_experts)])\n",
             (GPU,), gpu=True, kind="cost"),
    Mutation("GPU: expert matmuls in float32", "lesson21", "dispatch.py", EXPERTS,
             EXPERTS.replace("torch.bmm(buffers, w_gate", "torch.bmm(buffers.float(), w_gate.float()")
             .replace("torch.bmm(buffers, w_up", "torch.bmm(buffers.float(), w_up.float()")
             .replace("w_down.transpose", "w_down.float().transpose"),
             (GPU,), gpu=True, kind="cost"),
    # --- sizing
    Mutation("active parameters count every expert", "lesson21", "sizing.py",
             "    active = cfg.n_layers * (shared_per_layer + cfg.top_k * expert) + outside\n",
             "    active = cfg.n_layers * (shared_per_layer + cfg.n_experts * expert) + outside\n",
             (SIZING + "test_mixtral_8x7b_exactly",)),
    Mutation("tied embeddings counted twice", "lesson21", "sizing.py",
             "(1 if cfg.tie_embeddings else 2)", "2",
             (SIZING + "test_moe_params_equal_hf_mixtral",), kind="unvaried-arg"),
    Mutation("all-to-all counts the assignments that stay local", "lesson21", "sizing.py",
             "    return n_tokens * k * d_model * dtype_bytes * (ep - 1) / ep\n",
             "    return n_tokens * k * d_model * dtype_bytes\n",
             (SIZING + "test_all_to_all_bytes_formula",)),
    # --- expert parallelism
    Mutation("EP: split sizes not swapped for the way back", "lesson21", "expert_parallel.py",
             "out[recv_e, slots[:, 0]].contiguous(), sends, recvs, group=group)",
             "out[recv_e, slots[:, 0]].contiguous(), recvs, sends, group=group)",
             (EP,), kind="rows-differ"),
]

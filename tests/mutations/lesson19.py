"""Planted bugs in the lesson 19 reference that its hidden graders must catch."""

from . import Mutation

H19 = "autograder/hidden/lesson19/"
SHARDS = H19 + "test_shard_grading.py::test_shards_are_contiguous_blocks_that_reassemble"
HEADS = H19 + "test_shard_grading.py::test_heads_follow_the_q_shard_and_gqa"
HEADS_RAISE = H19 + "test_shard_grading.py::test_heads_that_do_not_split_raise"
MLP = H19 + "test_tp_grading.py::test_tp_mlp_equals_unsharded_with_exactly_one_all_reduce"
ATTN = H19 + "test_tp_grading.py::test_tp_attention_equals_unsharded_with_exactly_one_all_reduce"
MODEL = H19 + "test_tp_model.py::test_smollm2_layer0_at_tp3_equals_the_single_process_layer"
RING = H19 + "test_comm_grading.py::test_formula_equals_the_simulated_ring"
UNEVEN = H19 + "test_comm_grading.py::test_simulated_ring_with_uneven_chunks"
LATENCY = H19 + "test_comm_grading.py::test_latency_and_per_direction_bandwidth"
GPU_BUSBW = H19 + "test_gpu_tp.py::test_allreduce_bus_bandwidth_against_the_link"
GPU_TP2 = H19 + "test_gpu_tp.py::test_tp2_decode_beats_tp1_for_a_large_mlp_stack"
DECODE = H19 + "test_comm_grading.py::test_nvlink_vs_pcie_for_a_llama3_8b_decode_step"
GROUPS = H19 + "test_tp_grading.py::test_each_tp_group_reduces_only_within_itself"

MLP_REDUCE = ("    partial = (F.silu(x @ gate_shard.T) * (x @ up_shard.T)) @ down_shard.T\n"
              "    dist.all_reduce(partial, op=dist.ReduceOp.SUM, group=group)\n")
ATTN_REDUCE = ("    partial = out.transpose(1, 2).reshape(batch, seq, -1) @ wo_shard.T\n"
               "    dist.all_reduce(partial, op=dist.ReduceOp.SUM, group=group)\n")

MUTATIONS = [
    Mutation("column and row shards swapped (column shard cuts the input dim)", "lesson19",
             "shards.py",
             "    rows = w.shape[0] // world\n    return w[rank * rows:(rank + 1) * rows].contiguous()",
             "    rows = w.shape[1] // world\n    return w[:, rank * rows:(rank + 1) * rows].T.contiguous()",
             (SHARDS,), kind="logic"),
    Mutation("row shard transposed", "lesson19", "shards.py",
             "    return w[:, rank * cols:(rank + 1) * cols].contiguous()",
             "    return w[rank * cols:(rank + 1) * cols].T.contiguous()",
             (SHARDS,), kind="logic"),
    Mutation("column shard takes strided rows", "lesson19", "shards.py",
             "    return w[rank * rows:(rank + 1) * rows].contiguous()",
             "    return w[rank::world].contiguous()",
             (SHARDS, HEADS), kind="logic"),
    Mutation("query heads assigned round-robin, inconsistent with the q shard", "lesson19",
             "shards.py",
             "    q_heads = range(rank * per_rank, (rank + 1) * per_rank)",
             "    q_heads = range(rank, n_heads, world)",
             (HEADS, HEADS_RAISE), kind="logic"),
    Mutation("replicated KV heads assigned rank % n_kv", "lesson19", "shards.py",
             "    return q_heads, range(rank // replicas, rank // replicas + 1)",
             "    return q_heads, range(rank % n_kv_heads, rank % n_kv_heads + 1)",
             (HEADS, ATTN), kind="logic"),
    Mutation("MLP all-reduce forgotten (partial sums)", "lesson19", "tp_layers.py",
             MLP_REDUCE, MLP_REDUCE.split("\n")[0] + "\n",
             (MLP, MODEL), kind="logic"),
    Mutation("two all-reduces per MLP", "lesson19", "tp_layers.py",
             MLP_REDUCE, MLP_REDUCE + "    partial /= dist.get_world_size(group)\n"
             "    dist.all_reduce(partial, group=group)\n",
             (MLP,), kind="cost"),
    Mutation("all_gather of partial outputs summed locally", "lesson19", "tp_layers.py",
             MLP_REDUCE, MLP_REDUCE.split("\n")[0] + "\n"
             "    parts = [torch.empty_like(partial) for _ in range(dist.get_world_size(group))]\n"
             "    dist.all_gather(parts, partial, group=group)\n"
             "    partial = torch.stack(parts).sum(0)\n",
             (MLP,), kind="cost"),
    Mutation("attention all-reduce forgotten", "lesson19", "tp_layers.py",
             ATTN_REDUCE, ATTN_REDUCE.split("\n")[0] + "\n",
             (ATTN,), kind="logic"),
    Mutation("attention without the causal mask", "lesson19", "tp_layers.py",
             "is_causal=True,", "is_causal=False,",
             (ATTN,), kind="multi-token"),
    Mutation("RoPE skipped", "lesson19", "tp_layers.py",
             "    if cos is not None:\n        q, k =", "    if False:\n        q, k =",
             (ATTN, MODEL), kind="logic"),
    Mutation("ring time with (N-1)/N instead of 2(N-1)/N", "lesson19", "comm_cost.py",
             "    return 2 * (world - 1) * (latency_s + nbytes / world / link_bytes_per_s_per_direction)",
             "    return (world - 1) * (latency_s + nbytes / world / link_bytes_per_s_per_direction)",
             (RING, LATENCY, DECODE), kind="logic"),
    Mutation("bandwidth treated as the bidirectional total", "lesson19", "comm_cost.py",
             "nbytes / world / link_bytes_per_s_per_direction)",
             "nbytes / world / (2 * link_bytes_per_s_per_direction))",
             (RING, LATENCY, DECODE), kind="logic"),
    Mutation("latency paid once, not per step", "lesson19", "comm_cost.py",
             "    return 2 * (world - 1) * (latency_s + nbytes / world / link_bytes_per_s_per_direction)",
             "    return latency_s + 2 * (world - 1) * nbytes / world / link_bytes_per_s_per_direction",
             (LATENCY,), kind="logic"),
    Mutation("simulated all-gather adds instead of copying", "lesson19", "comm_cost.py",
             "        step(lambda r: (r + 1 - s) % world, accumulate=False)",
             "        step(lambda r: (r + 1 - s) % world, accumulate=True)",
             (RING, UNEVEN), kind="logic"),
    Mutation("simulation counts bytes of whole vectors, not chunks", "lesson19", "comm_cost.py",
             "            sent[r] += (hi - lo) * bytes_per_element",
             "            sent[r] += len(buf[r]) * bytes_per_element // world",
             (UNEVEN,), kind="boundary"),
    Mutation("bandwidth as the two-way total (GPU: not a lower bound)", "lesson19",
             "comm_cost.py", "nbytes / world / link_bytes_per_s_per_direction)",
             "nbytes / world / (2 * link_bytes_per_s_per_direction))",
             (GPU_BUSBW,), gpu=True, kind="logic"),
    Mutation("TP MLP upcasts its shards to float32 every call (GPU: slower than TP=1)",
             "lesson19", "tp_layers.py",
             "    partial = (F.silu(x @ gate_shard.T) * (x @ up_shard.T)) @ down_shard.T\n",
             "    partial = ((F.silu(x.float() @ gate_shard.float().T) * (x.float() @ "
             "up_shard.float().T)) @ down_shard.float().T).to(x.dtype)\n",
             (GPU_TP2,), gpu=True, kind="cost"),

    # Each class of learner mistake (tests/mutations/__init__.py BUG_CLASSES).
    Mutation("MLP all-reduce over the whole world, group= not passed", "lesson19",
             "tp_layers.py", MLP_REDUCE,
             MLP_REDUCE.replace(", group=group)", ")"),
             (GROUPS,), kind="unvaried-arg"),
    Mutation("attention all-reduce over the whole world, group= not passed", "lesson19",
             "tp_layers.py", ATTN_REDUCE,
             ATTN_REDUCE.replace(", group=group)", ")"),
             (GROUPS,), kind="unvaried-arg"),
    Mutation("the batch's sequences attended as one long sequence", "lesson19", "tp_layers.py",
             "    out = F.scaled_dot_product_attention(q, k, v, is_causal=True,\n"
             "                                         enable_gqa=q.shape[1] != k.shape[1])\n",
             "    def flat(t):  # [batch, n, seq, d] -> [1, n, batch * seq, d]\n"
             "        return t.transpose(0, 1).reshape(1, t.shape[1], batch * seq, d_head)\n"
             "    out = F.scaled_dot_product_attention(flat(q), flat(k), flat(v), is_causal=True,\n"
             "                                         enable_gqa=q.shape[1] != k.shape[1])\n"
             "    out = out.view(out.shape[1], batch, seq, d_head).transpose(0, 1)\n",
             (ATTN,), kind="rows-differ"),
    Mutation("a hand-written softmax without subtracting the maximum", "lesson19",
             "tp_layers.py",
             "    out = F.scaled_dot_product_attention(q, k, v, is_causal=True,\n"
             "                                         enable_gqa=q.shape[1] != k.shape[1])\n",
             "    group_ = q.shape[1] // k.shape[1]\n"
             "    k, v = k.repeat_interleave(group_, 1), v.repeat_interleave(group_, 1)\n"
             "    weights = (q @ k.transpose(-1, -2) / d_head ** 0.5).exp()\n"
             "    weights = weights * torch.ones(seq, seq, dtype=torch.bool).tril()\n"
             "    out = weights / weights.sum(-1, keepdim=True) @ v\n",
             (ATTN,), kind="extreme"),
    Mutation("KV heads up to q_heads.stop // group (empty when a rank has part of a group)",
             "lesson19", "shards.py",
             "    q_heads = range(rank * per_rank, (rank + 1) * per_rank)\n",
             "    q_heads = range(rank * per_rank, (rank + 1) * per_rank)\n"
             "    group = n_heads // n_kv_heads\n"
             "    return q_heads, range(q_heads.start // group, q_heads.stop // group)\n",
             (HEADS,), kind="boundary"),
    Mutation("TP MLP computed in float32 for bfloat16 inputs", "lesson19", "tp_layers.py",
             "    partial = (F.silu(x @ gate_shard.T) * (x @ up_shard.T)) @ down_shard.T\n",
             "    x, gate_shard, up_shard, down_shard = (t.float() for t in (x, gate_shard, "
             "up_shard, down_shard))\n"
             "    partial = (F.silu(x @ gate_shard.T) * (x @ up_shard.T)) @ down_shard.T\n",
             (MLP,), kind="dtype-device"),
    Mutation("the simulation works on the caller's lists in place", "lesson19", "comm_cost.py",
             "    buf = [list(v) for v in data]\n", "    buf = data\n",
             (UNEVEN,), kind="contract"),
]

NOT_APPLICABLE = {
    "special-value": "the special values of this lesson (world 1, a single KV head shared by "
                     "every rank, a 0-byte message, a vector shorter than the ring) are in "
                     "the graders' inputs, but none has a branch of its own: the ring's "
                     "2 (N-1) steps, chunk_bounds and the head arithmetic handle them with "
                     "the general formula, so every plausible mistake there is one of the "
                     "logic or boundary bugs planted above",
}

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

MLP_REDUCE = ("    partial = (F.silu(x @ gate_shard.T) * (x @ up_shard.T)) @ down_shard.T\n"
              "    dist.all_reduce(partial, op=dist.ReduceOp.SUM, group=group)\n")
ATTN_REDUCE = ("    partial = out.transpose(1, 2).reshape(batch, seq, -1) @ wo_shard.T\n"
               "    dist.all_reduce(partial, op=dist.ReduceOp.SUM, group=group)\n")

MUTATIONS = [
    Mutation("column and row shards swapped (column shard cuts the input dim)", "lesson19",
             "shards.py",
             "    rows = w.shape[0] // world\n    return w[rank * rows:(rank + 1) * rows].contiguous()",
             "    rows = w.shape[1] // world\n    return w[:, rank * rows:(rank + 1) * rows].T.contiguous()",
             (SHARDS,)),
    Mutation("row shard transposed", "lesson19", "shards.py",
             "    return w[:, rank * cols:(rank + 1) * cols].contiguous()",
             "    return w[rank * cols:(rank + 1) * cols].T.contiguous()",
             (SHARDS,)),
    Mutation("column shard takes strided rows", "lesson19", "shards.py",
             "    return w[rank * rows:(rank + 1) * rows].contiguous()",
             "    return w[rank::world].contiguous()",
             (SHARDS, HEADS)),
    Mutation("query heads assigned round-robin, inconsistent with the q shard", "lesson19",
             "shards.py",
             "    q_heads = range(rank * per_rank, (rank + 1) * per_rank)",
             "    q_heads = range(rank, n_heads, world)",
             (HEADS, HEADS_RAISE)),
    Mutation("replicated KV heads assigned rank % n_kv", "lesson19", "shards.py",
             "    return q_heads, range(rank // replicas, rank // replicas + 1)",
             "    return q_heads, range(rank % n_kv_heads, rank % n_kv_heads + 1)",
             (HEADS, ATTN)),
    Mutation("MLP all-reduce forgotten (partial sums)", "lesson19", "tp_layers.py",
             MLP_REDUCE, MLP_REDUCE.split("\n")[0] + "\n",
             (MLP, MODEL)),
    Mutation("two all-reduces per MLP", "lesson19", "tp_layers.py",
             MLP_REDUCE, MLP_REDUCE + "    partial /= dist.get_world_size(group)\n"
             "    dist.all_reduce(partial, group=group)\n",
             (MLP,)),
    Mutation("all_gather of partial outputs summed locally", "lesson19", "tp_layers.py",
             MLP_REDUCE, MLP_REDUCE.split("\n")[0] + "\n"
             "    parts = [torch.empty_like(partial) for _ in range(dist.get_world_size(group))]\n"
             "    dist.all_gather(parts, partial, group=group)\n"
             "    partial = torch.stack(parts).sum(0)\n",
             (MLP,)),
    Mutation("attention all-reduce forgotten", "lesson19", "tp_layers.py",
             ATTN_REDUCE, ATTN_REDUCE.split("\n")[0] + "\n",
             (ATTN,)),
    Mutation("attention without the causal mask", "lesson19", "tp_layers.py",
             "is_causal=True,", "is_causal=False,",
             (ATTN,)),
    Mutation("RoPE skipped", "lesson19", "tp_layers.py",
             "    if cos is not None:\n        q, k =", "    if False:\n        q, k =",
             (ATTN, MODEL)),
    Mutation("ring time with (N-1)/N instead of 2(N-1)/N", "lesson19", "comm_cost.py",
             "    return 2 * (world - 1) * (latency_s + nbytes / world / link_bytes_per_s_per_direction)",
             "    return (world - 1) * (latency_s + nbytes / world / link_bytes_per_s_per_direction)",
             (RING, LATENCY, DECODE)),
    Mutation("bandwidth treated as the bidirectional total", "lesson19", "comm_cost.py",
             "nbytes / world / link_bytes_per_s_per_direction)",
             "nbytes / world / (2 * link_bytes_per_s_per_direction))",
             (RING, LATENCY, DECODE)),
    Mutation("latency paid once, not per step", "lesson19", "comm_cost.py",
             "    return 2 * (world - 1) * (latency_s + nbytes / world / link_bytes_per_s_per_direction)",
             "    return latency_s + 2 * (world - 1) * nbytes / world / link_bytes_per_s_per_direction",
             (LATENCY,)),
    Mutation("simulated all-gather adds instead of copying", "lesson19", "comm_cost.py",
             "        step(lambda r: (r + 1 - s) % world, accumulate=False)",
             "        step(lambda r: (r + 1 - s) % world, accumulate=True)",
             (RING, UNEVEN)),
    Mutation("simulation counts bytes of whole vectors, not chunks", "lesson19", "comm_cost.py",
             "            sent[r] += (hi - lo) * bytes_per_element",
             "            sent[r] += len(buf[r]) * bytes_per_element // world",
             (UNEVEN,)),
    Mutation("bandwidth as the two-way total (GPU: not a lower bound)", "lesson19",
             "comm_cost.py", "nbytes / world / link_bytes_per_s_per_direction)",
             "nbytes / world / (2 * link_bytes_per_s_per_direction))",
             (GPU_BUSBW,), gpu=True),
    Mutation("TP MLP upcasts its shards to float32 every call (GPU: slower than TP=1)",
             "lesson19", "tp_layers.py",
             "    partial = (F.silu(x @ gate_shard.T) * (x @ up_shard.T)) @ down_shard.T\n",
             "    partial = ((F.silu(x.float() @ gate_shard.float().T) * (x.float() @ "
             "up_shard.float().T)) @ down_shard.float().T).to(x.dtype)\n",
             (GPU_TP2,), gpu=True),
]

# %% [markdown]
# # Lesson 19: Tensor parallelism (Megatron-style), and what the wires cost
#
# A notebook to try this lesson's pieces on **your own code** (`exercises/lesson19/`) while you
# write them. Read [the lesson](../learning/lesson19.md) first. Each cell below calls one of your
# functions; until you write it, the cell stops with `NotImplementedError` naming the section to
# read. Edit the file, re-run the cell: the new code runs (autoreload is on). The last cell runs
# the lesson's visible tests.

# %%
from autograder.lab import run_tests, setup, show_plot

setup("lesson19")

# %% [markdown]
# ## Column and row parallel shards
# A weight `w: [6, 6]` whose entries say where they sit (10 x row + column), split over 3 ranks.
# Column-parallel shards are blocks of output rows; row-parallel shards are blocks of input
# columns. Stacking the first and concatenating the second must give `w` back, and the
# row-parallel partial sums must add up to the full `x @ w.T`.

# %%
import torch

from exercises.lesson19.shards import column_parallel_shard, row_parallel_shard, tp_heads

w = torch.tensor([[10.0 * r + c for c in range(6)] for r in range(6)])
for rank in range(3):
    col, row = column_parallel_shard(w, rank, 3), row_parallel_shard(w, rank, 3)
    print(f"rank {rank}: column shard {tuple(col.shape)} holds rows "
          f"{col[:, 0].div(10).int().tolist()}; row shard {tuple(row.shape)} holds columns "
          f"{row[0].int().tolist()}")
print("stacked column shards == w:",
      torch.equal(torch.cat([column_parallel_shard(w, r, 3) for r in range(3)]), w),
      "| concatenated row shards == w:",
      torch.equal(torch.cat([row_parallel_shard(w, r, 3) for r in range(3)], dim=1), w))

w = torch.randn(8, 12)
x = torch.randn(5, 12)
partials = [x[:, 4 * r:4 * (r + 1)] @ row_parallel_shard(w, r, 3).T for r in range(3)]
print(f"row-parallel: 3 partial sums of shape {tuple(partials[0].shape)}; "
      f"max |sum - x @ w.T| = {(sum(partials) - x @ w.T).abs().max():.2e}")
try:
    column_parallel_shard(torch.zeros(10, 4), 0, 4)
except ValueError as exc:
    print("uneven split refused:", exc)

# %% [markdown]
# ## Splitting attention heads with GQA
# Which query and KV heads each rank owns: Llama-3-8B (32 query, 8 KV heads) at several
# tensor-parallel sizes, a model with 4 query and 2 KV heads at TP=4 (each KV head replicated on
# two ranks), and the course model (9 query, 3 KV heads), which TP=2 cannot split.

# %%
from course.config import LLAMA3_8B, SMOLLM2_135M


def show_heads(n_heads, n_kv_heads, world):
    owned = [tp_heads(n_heads, n_kv_heads, rank, world) for rank in range(world)]
    print(f"  TP={world}: " + "; ".join(
        f"r{rank} q {q.start}..{q.stop - 1} kv {kv.start}..{kv.stop - 1}"
        for rank, (q, kv) in enumerate(owned)))


print(f"{LLAMA3_8B.name} ({LLAMA3_8B.n_heads} q, {LLAMA3_8B.n_kv_heads} KV heads):")
for world in (1, 2, 4, 8):
    show_heads(LLAMA3_8B.n_heads, LLAMA3_8B.n_kv_heads, world)
print("4 q, 2 KV heads (KV replicated):")
show_heads(4, 2, 4)
print(f"{SMOLLM2_135M.name} ({SMOLLM2_135M.n_heads} q, {SMOLLM2_135M.n_kv_heads} KV heads):")
show_heads(SMOLLM2_135M.n_heads, SMOLLM2_135M.n_kv_heads, 3)
try:
    show_heads(SMOLLM2_135M.n_heads, SMOLLM2_135M.n_kv_heads, 2)
except ValueError as exc:
    print("  TP=2 refused:", exc)

# %% [markdown]
# ## A tensor-parallel MLP and attention block, on two real ranks
# `course.distributed.run_ranks` starts two processes joined by a gloo process group on this
# machine (a free port on 127.0.0.1) and runs a function in each. It needs a function it can
# import by name, so this cell borrows the two rank functions of the lesson's visible tests:
# each shards the weights with your `shards.py`, calls your block while counting the
# collectives it runs, and returns the result. Each rank's output is compared here with the
# unsharded block computed in this process (for attention, with torch's own causal GQA).

# %%
import time

import torch.nn.functional as F
from course.distributed import run_ranks

from exercises.lesson19.test_tp_layers import attention_rank, mlp_rank

g = torch.Generator().manual_seed(19)
x = torch.randn(2, 3, 16, generator=g)
gate, up, down = (torch.randn(32, 16, generator=g), torch.randn(32, 16, generator=g),
                  torch.randn(16, 32, generator=g))
start = time.perf_counter()
results = run_ranks(mlp_rank, 2, x, gate, up, down)
print(f"MLP on 2 ranks ({time.perf_counter() - start:.1f} s, process start included):")
unsharded = (F.silu(x @ gate.T) * (x @ up.T)) @ down.T
for rank, (out, calls, _) in enumerate(results):
    print(f"  rank {rank}: output {tuple(out.shape)}, max |TP - unsharded| = "
          f"{(out - unsharded).abs().max():.2e}, collectives {calls}")

d_head, d_model, seq = 8, 32, 5
x = torch.randn(2, seq, d_model, generator=g)
wq, wo = torch.randn(4 * d_head, d_model, generator=g), torch.randn(d_model, 4 * d_head, generator=g)
wk, wv = torch.randn(2 * d_head, d_model, generator=g), torch.randn(2 * d_head, d_model, generator=g)
q, k, v = ((x @ m.T).view(2, seq, -1, d_head).transpose(1, 2) for m in (wq, wk, wv))
heads_out = F.scaled_dot_product_attention(q, k, v, enable_gqa=True, is_causal=True)
unsharded = heads_out.transpose(1, 2).reshape(2, seq, -1) @ wo.T
print("attention (4 q, 2 KV heads) on 2 ranks:")
for rank, (out, calls) in enumerate(run_ranks(attention_rank, 2, x, wq, wk, wv, wo, d_head)):
    print(f"  rank {rank}: output {tuple(out.shape)}, max |TP - unsharded| = "
          f"{(out - unsharded).abs().max():.2e}, collectives {calls}")

# %% [markdown]
# ## The ring all-reduce, simulated
# Your ring on plain lists: every rank must end with the sum, and each must have sent
# `2 (N - 1) / N` of the message (with 4 values over 3 ranks the chunks differ in size, and so
# do the counts). The table runs it for several ring sizes on a vector of
# 1,200 float32 values (4,800 B) and compares the bytes each rank sent with that formula.

# %%
from exercises.lesson19.comm_cost import ring_allreduce_time, simulate_ring_allreduce

result, sent = simulate_ring_allreduce([[1.0, 2.0, 3.0, 4.0], [10.0, 20.0, 30.0, 40.0],
                                        [100.0, 200.0, 300.0, 400.0]], bytes_per_element=4)
print("3 ranks, 4 values each -> every rank holds", result[0], "| bytes sent per rank:", sent)
print(f"{'ranks':>5} {'sent per rank (B)':>18} {'2 (N-1)/N x 4,800 B':>20} {'all equal sums':>15}")
for world in (2, 3, 4, 6, 8):
    data = [[float(r + 1)] * 1200 for r in range(world)]
    result, sent = simulate_ring_allreduce(data, bytes_per_element=4)
    ok = all(row == [world * (world + 1) / 2] * 1200 for row in result)
    print(f"{world:5d} {str(sorted(set(sent))):>18} {2 * (world - 1) / world * 4800:20.0f} {ok!s:>15}")

# %% [markdown]
# ## What the wires cost in a decode step
# Llama-3-8B in bf16 on H100 SXMs (bandwidths from the course's hardware fixtures; PCIe Gen4
# from the A100's). First the lesson's table: at TP=2 and batch 64, the bandwidth part of a
# step's all-reduces on each link, against the time TP=2 saves on reading the weights. Then
# the whole step against the batch size, with the lesson's assumed 5 us per ring step: the
# latency part is the same on every link, and at small batches it is all there is. The model
# counts only weights and wires: the KV reads and the FLOPs, which TP divides too, are left out,
# so at large batches it overstates the case for TP=1; what it shows is what each link adds.

# %%
import hardware_fixtures
from course.plot import Line

from exercises.lesson19.comm_cost import tp_decode_comm_time, weight_read_time

h100, a100 = hardware_fixtures.load("h100_sxm"), hardware_fixtures.load("a100_sxm_80gb")
HBM = h100.memory_bandwidth_bytes_per_s
links = {"NVLink4": h100.gpu_link_bytes_per_s_per_direction,
         "PCIe Gen5 x16": h100.pcie_x16_bytes_per_s_per_direction,
         "PCIe Gen4 x16": a100.pcie_x16_bytes_per_s_per_direction}
read_1, read_2 = weight_read_time(LLAMA3_8B, 1, HBM), weight_read_time(LLAMA3_8B, 2, HBM)
print(f"weight read per step: TP=1 {1e3 * read_1:.2f} ms, TP=2 {1e3 * read_2:.2f} ms per GPU")
for name, bw in links.items():
    comm = tp_decode_comm_time(LLAMA3_8B, 64, 2, bw, latency_s=0.0)
    print(f"{name:14} ({bw / 1e9:.0f} GB/s each way): {1e6 * comm:7.0f} us of all-reduce, "
          f"{(read_1 - read_2 - comm) / (read_1 - read_2):.0%} of the gain survives")
latency = 2 * LLAMA3_8B.n_layers * ring_allreduce_time(0, 2, 1.0, latency_s=5e-6)
print(f"latency part at 5 us per ring step: {1e6 * latency:.0f} us on any link")
batches = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]
lines = [Line("TP=1: weights only", (batches[0], batches[-1]), (1e3 * read_1,) * 2)]
for name, bw in links.items():
    lines.append(Line(f"TP=2 over {name}", batches,
                      [1e3 * (read_2 + tp_decode_comm_time(LLAMA3_8B, b, 2, bw, 5e-6))
                       for b in batches]))
show_plot("tp_decode_step", lines=lines, xlabel="batch (sequences, one token each)",
          ylabel="weight read + all-reduce per step (ms)",
          title=f"{LLAMA3_8B.name} decode step at TP=2 (5 us per ring step)", loglog=True)

# %% [markdown]
# ## Run the visible tests
# The same tests as `pytest exercises/lesson19` in a terminal. Your instructor's graders go
# further (layer 0 of the real model at TP=3, the collectives counted on every rank, a speed
# check on two GPUs).

# %%
run_tests("lesson19")

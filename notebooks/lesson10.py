# %% [markdown]
# # Lesson 10: FlashAttention
#
# A notebook to try this lesson's pieces on **your own code** (`exercises/lesson10/`) while you
# write them. Read [the lesson](../learning/lesson10.md) first. Each cell below calls one of your
# functions; until you write it, the cell stops with `NotImplementedError` naming the section to
# read. Edit the file, re-run the cell: the new code runs (autoreload is on). The last cell runs
# the lesson's visible tests.

# %%
from autograder.lab import run_tests, setup, show_plot

setup("lesson10")

# %% [markdown]
# ## Why the score matrix is the problem
# No code of yours yet: the bytes of the scores for the lesson's Llama-3-8B prompt of 8192
# tokens (32 heads of 128, bf16), against the bytes of Q, K, V and O themselves.

# %%
from course.config import LLAMA3_8B

N, H, D = 8192, LLAMA3_8B.n_heads, LLAMA3_8B.d_head
one_head = N * N * 2
print(f"one head's scores: {one_head:,} B = {one_head / 2**20:.0f} MiB")
print(f"one layer's {H} heads: {H * one_head / 2**30:.0f} GiB of scores, as much of probabilities")
print(f"unfused traffic (S written, read; P written, read): {4 * H * one_head / 1e9:.1f} GB per layer")
print(f"Q, K, V and O: {4 * N * H * D * 2 / 2**20:.0f} MiB per layer")

# %% [markdown]
# ## The online softmax
# ### Merging two states
# Your `online_softmax_merge` on the lesson's example: keys with scores 0 and log 3, values 1
# and 2. Then the two details the lesson insists on: merging two empty states (no NaN), and two
# rows whose scores differ by hundreds (each row needs its own maximum).

# %%
import math

import torch

from exercises.lesson10.online_softmax import online_softmax_merge

torch.set_num_threads(1)  # every tensor here is tiny: one thread beats several, by far when busy

one = torch.tensor
m, l, o = online_softmax_merge(one([0.0]), one([1.0]), one([[1.0]]),
                               one([math.log(3)]), one([1.0]), one([[2.0]]))
print(f"m = {m.item():.4f} (log 3 = {math.log(3):.4f}), l = {l.item():.4f}, o / l = {(o / l).item():.4f}")

empty = (one([float("-inf")]), one([0.0]), one([[0.0]]))
print("empty + empty:", [t.tolist() for t in online_softmax_merge(*empty, *empty)])
print("empty + the first state:", [t.tolist() for t in online_softmax_merge(*empty, one([0.0]), one([1.0]), one([[1.0]]))])

# two rows, scores around 0 and around 500: compare with torch.softmax row by row
scores = torch.tensor([[0.0, 1.0, 2.0, 3.0], [500.0, 501.0, 502.0, 503.0]])
values = torch.randn(4, 3)


def softmax_state(s, v):  # the softmax state of one set of keys, one row per query
    m = s.amax(-1)
    p = torch.exp(s - m[:, None])
    return m, p.sum(-1), p @ v


m, l, o = online_softmax_merge(*softmax_state(scores[:, :2], values[:2]), *softmax_state(scores[:, 2:], values[2:]))
want = torch.softmax(scores, -1) @ values
print(f"two rows 500 apart: max |merged - softmax| = {(o / l[:, None] - want).abs().max():.2e}")

# %% [markdown]
# The merge is exact in any order: eight random key sets merged left to right, right to left
# and as a balanced tree give the same state (to rounding), and the same attention as
# `torch.softmax` over all the keys at once.

# %%
from functools import reduce

rows, keys, d = 5, 64, 16
scores = torch.randn(rows, keys) * 3
values = torch.randn(keys, d)
chunks = [softmax_state(scores[:, i:i + 8], values[i:i + 8]) for i in range(0, keys, 8)]
left = reduce(lambda a, b: online_softmax_merge(*a, *b), chunks)
right = reduce(lambda a, b: online_softmax_merge(*b, *a), reversed(chunks))
pairs = [online_softmax_merge(*chunks[i], *chunks[i + 1]) for i in range(0, 8, 2)]
tree = online_softmax_merge(*online_softmax_merge(*pairs[0], *pairs[1]),
                            *online_softmax_merge(*pairs[2], *pairs[3]))
want = torch.softmax(scores, -1) @ values
for name, (m, l, o) in (("left to right", left), ("right to left", right), ("tree", tree)):
    print(f"{name:14} max |o / l - softmax| = {(o / l[:, None] - want).abs().max():.2e}")

# %% [markdown]
# The running maximum of one row as its keys stream in, 4 at a time: it only ever steps up, and
# every step rescales the running sum by `exp(m_old - m_new)`, which is at most 1. The running
# sum is drawn too, on the same axis (it is a sum of `exp(s - m)`, so it counts in units of the
# current maximum's `exp`): watch it drop each time the maximum jumps. That drop is the rescaling.

# %%
from course.plot import Line

g = torch.Generator().manual_seed(3)
row = torch.randn(1, 48, generator=g) * 2 + torch.linspace(0, 3, 48)
vals = torch.randn(48, 4, generator=g)
run = (one([float("-inf")]), one([0.0]), torch.zeros(1, 4))
seen, maxima, sums = [], [], []
for i in range(0, 48, 4):
    run = online_softmax_merge(*run, *softmax_state(row[:, i:i + 4], vals[i:i + 4]))
    seen.append(i + 4)
    maxima.append(run[0].item())
    sums.append(run[1].item())
print("running max:", [f"{x:.2f}" for x in maxima])
print(f"final o / l against torch.softmax: {(run[2] / run[1][:, None] - torch.softmax(row, -1) @ vals).abs().max():.2e}")
show_plot("running_max", lines=[Line("scores", range(1, 49), row[0].tolist()),
                                Line("running max m", seen, maxima),
                                Line("running sum l", seen, sums)],
          xlabel="keys seen", ylabel="value", title="The online softmax of one row", loglog=False)

# %% [markdown]
# ## The tiled forward pass
# Your `flash_attention_fwd` against torch's `scaled_dot_product_attention` and
# `torch.logsumexp` (independent references), for tile sizes that divide the lengths, that do
# not, and that are larger than them, with and without the causal mask (fewer queries than
# keys, as in a chunked prefill). The FLOPs column is torch's own count of your matrix products:
# causal tiles that no query can see should be skipped, not computed and masked.

# %%
import torch.nn.functional as F

from course.counting import AllocationCounter, count_flops

from exercises.lesson10.flash_attention import attention_spec, flash_attention_fwd

q = torch.randn(2, 3, 40, 16)
k, v = torch.randn(2, 3, 56, 16), torch.randn(2, 3, 56, 16)
visible = torch.ones(40, 56, dtype=torch.bool).tril(diagonal=56 - 40)
print(f"{'block_q':>7} {'block_k':>7} {'causal':>6} {'max |o err|':>12} {'max |lse err|':>13} "
      f"{'FLOPs':>10}")
for bq, bk in ((8, 8), (7, 13), (64, 64)):
    for causal in (False, True):
        out, lse = flash_attention_fwd(q, k, v, bq, bk, causal=causal)
        mask = visible if causal else None
        want = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        scores = (q @ k.transpose(-1, -2)) / 4.0
        want_lse = torch.logsumexp(scores.masked_fill(~visible, float("-inf")) if causal else scores, -1)
        flops = count_flops(flash_attention_fwd, q, k, v, bq, bk, causal)
        print(f"{bq:7} {bk:7} {str(causal):>6} {(out - want).abs().max():12.2e} "
              f"{(lse - want_lse).abs().max():13.2e} {flops:10,}")
print(f"output: {tuple(out.shape)} {out.dtype}, lse: {tuple(lse.shape)} {lse.dtype}")

# %% [markdown]
# Memory against length, one head of 64 channels, float32: the largest single tensor the
# explicit softmax (`attention_spec`, given in the exercise file) allocates grows with the
# square of the length; yours, with tiles of 64, grows with the length (the output). Causal
# FLOPs, with square tiles, fall to a little over half of the full count.

# %%
lengths = [64, 128, 256, 512]
spec_peak, flash_peak, ratio = [], [], []
for n in lengths:
    qn, kn, vn = (torch.randn(1, 1, n, 64) for _ in range(3))
    with AllocationCounter() as a:
        attention_spec(qn, kn, vn)
    with AllocationCounter() as b:
        flash_attention_fwd(qn, kn, vn, 64, 64)
    spec_peak.append(a.peak_single_bytes)
    flash_peak.append(b.peak_single_bytes)
    ratio.append(count_flops(flash_attention_fwd, qn, kn, vn, 64, 64, True) /
                 count_flops(flash_attention_fwd, qn, kn, vn, 64, 64, False))
    print(f"N = {n:5d}: explicit {a.peak_single_bytes:11,} B, tiled {b.peak_single_bytes:9,} B, "
          f"causal / full FLOPs {ratio[-1]:.3f}")
show_plot("attention_memory", lines=[Line("explicit softmax (attention_spec)", lengths, spec_peak),
                                     Line("flash_attention_fwd, tiles of 64", lengths, flash_peak)],
          xlabel="sequence length N", ylabel="largest single allocation (bytes)",
          title="Scratch memory of attention, one head, float32")

# %% [markdown]
# ## Split-KV decode
# Your `split_kv_decode` against `scaled_dot_product_attention` with a padding mask, for a
# batch whose sequences have different lengths (one of them 0, one the full cache), with one
# split, splits that do not divide the cache, and more splits than keys.

# %%
from exercises.lesson10.flash_decoding import split_kv_decode

S = 50
lengths = torch.tensor([50, 17, 0, 33])
qd = torch.randn(4, 2, 1, 32)
kd, vd = torch.randn(4, 2, S, 32), torch.randn(4, 2, S, 32)
pad = (torch.arange(S)[None, :] < lengths[:, None])[:, None, None, :]  # [batch, 1, 1, S]
want = F.scaled_dot_product_attention(qd, kd, vd, attn_mask=pad)
want[lengths == 0] = 0.0  # an all-masked row: SDPA gives NaN; the lesson's answer is zeros
for n_splits in (1, 4, 7, 64):
    out = split_kv_decode(qd, kd, vd, n_splits, lengths=lengths)
    print(f"n_splits {n_splits:3d} (chunks of {math.ceil(S / n_splits):2d}): output {tuple(out.shape)}, "
          f"max error {(out - want).abs().max():.2e}, NaN: {bool(out.isnan().any())}, "
          f"length-0 row all zeros: {bool((out[2] == 0).all())}")

# %% [markdown]
# ## Run the visible tests
# The same tests as `pytest exercises/lesson10` in a terminal. Your instructor's graders go
# further (hypothesis over shapes and masks, allocation and op counts, and a GPU timing of
# split-KV decode against the copy bandwidth).

# %%
run_tests("lesson10")

# %% [markdown]
# # Lesson 23: Long context and KV compression
#
# A notebook to try this lesson's pieces on **your own code** (`exercises/lesson23/`) while you
# write them. Read [the lesson](../learning/lesson23.md) first. Each cell below calls one of your
# functions; until you write it, the cell stops with `NotImplementedError` naming the section to
# read. Edit the file, re-run the cell: the new code runs (autoreload is on). The last cell runs
# the lesson's visible tests.

# %%
from autograder.lab import run_tests, setup, show_plot

setup("lesson23")

# %% [markdown]
# ## The memory wall
# One Llama-3-8B sequence's KV cache (32 layers, 8 KV heads of 128) against its context length,
# for the full bf16 cache, a full int8 cache (the given `int8_kv_bytes`, per-token scales), and
# bounded caches of 4,096 tokens. At 131,072 tokens the lesson quotes 16 GiB in bf16 and 8.25 GiB
# in int8. Nothing here calls your code yet.

# %%
from course.plot import Line, Marker

from exercises.lesson23.kv_int8 import int8_kv_bytes

LAYERS, KV_HEADS, D_HEAD = 32, 8, 128
contexts = [2 ** i for i in range(10, 18)]


def bf16_bytes(n):
    return 2 * 2 * LAYERS * KV_HEADS * D_HEAD * n


def int8_bytes(n):
    return 2 * LAYERS * int8_kv_bytes(n, KV_HEADS, D_HEAD, "token")


GIB = 2 ** 30
print(f"131,072 tokens: bf16 {bf16_bytes(131072) / GIB:.2f} GiB, "
      f"int8 {int8_bytes(131072) / GIB:.2f} GiB, a 4,096-token window "
      f"{bf16_bytes(4096) / GIB:.2f} GiB")
show_plot("memory_wall", lines=[
    Line("full cache, bf16", contexts, [bf16_bytes(n) / GIB for n in contexts]),
    Line("full cache, int8", contexts, [int8_bytes(n) / GIB for n in contexts]),
    Line("window of 4,096, bf16", contexts, [bf16_bytes(min(n, 4096)) / GIB for n in contexts])],
    points=[Marker("16 GiB at 128k", 131072, bf16_bytes(131072) / GIB)],
    xlabel="context (tokens)", ylabel="KV cache of one sequence (GiB)",
    title="Llama-3-8B KV cache against context", loglog=True)

# %% [markdown]
# ## Sliding windows
# Your mask for the last 6 of 10 positions with a window of 4 (`*` attends, `.` does not): each
# row should hold exactly 4 stars ending on the diagonal. Then `window_attention` over a cache of
# 64 positions against plain SDPA with that mask over the whole cache: the same numbers, from
# only the last `window + T - 1` keys.

# %%
import torch
import torch.nn.functional as F

from exercises.lesson23.window import sliding_window_mask, window_attention

mask = sliding_window_mask(6, 10, 4)
print("mask shape:", tuple(mask.shape), "| keys seen per query:", mask.sum(1).tolist())
for t, row in enumerate(mask.tolist()):
    print(f"query at position {10 - 6 + t}: " + "".join("*" if x else "." for x in row))

q = torch.randn(1, 4, 3, 16)               # 4 query heads, the last 3 positions
k, v = torch.randn(1, 2, 64, 16), torch.randn(1, 2, 64, 16)   # 2 KV heads, 64 cached
for window in (1, 8, 64, 100):
    ours = window_attention(q, k, v, window)
    dense = F.scaled_dot_product_attention(q, k, v, attn_mask=sliding_window_mask(3, 64, window),
                                           enable_gqa=True)
    print(f"window {window:3d}: output {tuple(ours.shape)}, keys needed "
          f"{min(64, window + 3 - 1):2d} of 64, max |window_attention - masked SDPA| = "
          f"{(ours - dense).abs().max():.2e}")

# %% [markdown]
# ## Attention sinks
# The lesson's picture, redrawn from your code: a 20-token text, a cache of 8 tokens, `*` kept
# and `.` evicted. Then a `SinkCache` fed a stream in chunks of different sizes (one longer than
# the window): its length stops growing at `n_sink + window`, `seen` counts everything, and the
# positions it hands to RoPE are places in the cache.

# %%
from exercises.lesson23.window import SinkCache, sink_keep_indices


def picture(kept, n=20):
    kept = set(kept.tolist())
    return "".join("*" if i in kept else "." for i in range(n))


print("sliding window ", picture(sink_keep_indices(20, 0, 8)))
print("sinks + window ", picture(sink_keep_indices(20, 4, 4)))
print("short text     ", picture(sink_keep_indices(6, 4, 4), 6), "(6 tokens: all kept)")

cache = SinkCache(n_sink=4, window=6)
for chunk in (3, 5, 1, 9, 2):
    # each token's key holds its index in the stream, so the cache shows which tokens it kept
    index = torch.arange(cache.seen, cache.seen + chunk, dtype=torch.float32)
    keys = index[None, None, :, None].expand(1, 2, chunk, 8)
    cache.append(keys, keys.clone())
    print(f"appended {chunk}: seen {cache.seen:2d}, held {len(cache):2d}, tokens "
          f"{cache.k[0, 0, :, 0].long().tolist()}, RoPE positions {cache.positions().tolist()}")

# %% [markdown]
# The sinks matter on a real model: the lesson's table (SmolLM2-135M, a cache of 32 tokens)
# gives 3.30 nats per token with the full cache, 4.57 with a plain window of the last 32 and
# 3.63 with 4 sinks and the last 28. That run takes a real model; your instructor's graders
# measure it with your `sliding_window_mask` and `sink_keep_indices`.
#
# ## Heavy hitters (H2O)
# Accumulated attention for a 20-token cache where a few tokens draw most of it. With a budget of
# 8 and the 4 most recent always kept, `h2o_keep` should keep the 4 highest-scoring older
# tokens; with 1 sink as well (head 1), the first token too, in place of its weakest hitter.
# Two rows (two heads) decide separately, and equal scores go to the earlier position.

# %%
from exercises.lesson23.window import h2o_keep

g = torch.Generator().manual_seed(0)
scores = torch.rand(2, 20, generator=g)
scores[0, [0, 3, 5, 10]] += 3.0        # head 0's heavy hitters
scores[1, [1, 2, 7, 12]] += 3.0        # head 1's
kept = h2o_keep(scores, budget=8, n_recent=4)
print("kept shape:", tuple(kept.shape))
for h in range(2):
    print(f"head {h}          ", picture(kept[h]))
print("head 1, 1 sink  ", picture(h2o_keep(scores[1], budget=8, n_recent=4, n_sink=1)))
print("all scores equal", picture(h2o_keep(torch.ones(20), budget=8, n_recent=4)))

# %% [markdown]
# ## Int8 KV
# Keys with four outlier channels (eight times the others), quantized per token and per channel.
# The table gives each scheme's largest rounding error relative to half a step (at most 1) and
# the error of attention over the dequantized cache, as a fraction of the largest |V|: the
# per-channel scale keeps the small key channels alive (KIVI: keys per channel, values per
# token). The last line gives the bytes per token and head against bf16.

# %%
from exercises.lesson23.kv_int8 import kv_dequant_int8, kv_quant_int8

g = torch.Generator().manual_seed(1)
k = torch.randn(1, 2, 128, 64, generator=g)
k[..., :4] *= 8
v = torch.randn(1, 2, 128, 64, generator=g)
q = torch.randn(1, 2, 4, 64, generator=g)
exact = F.scaled_dot_product_attention(q, k, v)
vq, vs = kv_quant_int8(v, "token")
v8 = kv_dequant_int8(vq, vs)
print("codes:", vq.dtype, tuple(vq.shape), "| scales per token:", tuple(vs.shape))
print("keys by   | worst error / half step | attention error / max |V|")
for axis in ("token", "channel"):
    kq, ks = kv_quant_int8(k, axis)
    k8 = kv_dequant_int8(kq, ks)
    step_ratio = ((k8 - k).abs() / (ks / 2)).max().item()
    err = (F.scaled_dot_product_attention(q, k8, v8) - exact).abs().max() / v.abs().max()
    print(f"{axis:9} | {step_ratio:23.3f} | {err.item():.2%}")
print(f"bytes per token and head at d_head 128: int8 {int8_kv_bytes(1, 1, 128)} "
      f"against bf16 {2 * 128}: {2 * 128 / int8_kv_bytes(1, 1, 128):.2f}x more tokens")

# %% [markdown]
# ## Run the visible tests
# The same tests as `pytest exercises/lesson23` in a terminal. Your instructor's graders go
# further (the real-model experiment, a GPU speed check).

# %%
run_tests("lesson23")

# %% [markdown]
# # Lesson 04: KV cache arithmetic and a preallocated cache
#
# A notebook to try this lesson's pieces on **your own code** (`exercises/lesson04/`) while you
# write them. Read [the lesson](../learning/lesson04.md) first. Each cell below calls one of your
# functions; until you write it, the cell stops with `NotImplementedError` naming the section to
# read. Edit the file, re-run the cell: the new code runs (autoreload is on). The last cell runs
# the lesson's visible tests.

# %%
from autograder.lab import run_tests, setup, show_plot

setup("lesson04")

# %% [markdown]
# ## Bytes per token
# Your `kv_bytes_per_token` for the lesson's four models in 16 bits, with fp8 and float32 beside
# it. The 16-bit column should reproduce the lesson's table; the query heads never enter.

# %%
from course.config import LLAMA2_7B, LLAMA3_8B, OPT_13B, SMOLLM2_135M

from exercises.lesson04.kv_arithmetic import kv_bytes_per_token, kv_cache_bytes, max_tokens_in_budget

MODELS = (SMOLLM2_135M, LLAMA3_8B, LLAMA2_7B, OPT_13B)
print(f"{'model':22s} {'q heads':>7s} {'kv heads':>8s} {'16-bit (B)':>11s} {'KiB':>6s} "
      f"{'fp8 (B)':>9s} {'fp32 (B)':>10s}")
for cfg in MODELS:
    b = kv_bytes_per_token(cfg)
    print(f"{cfg.name:22s} {cfg.n_heads:7d} {cfg.n_kv_heads:8d} {b:11,.0f} {b / 2 ** 10:6.1f} "
          f"{kv_bytes_per_token(cfg, 1):9,.0f} {kv_bytes_per_token(cfg, 4):10,.0f}")

# %% [markdown]
# ## Linear in tokens and in sequences
# The lesson's worked examples through `kv_cache_bytes`, in decimal and binary units (MB = 1e6 B,
# MiB = 2^20 B, GB = 1e9 B, GiB = 2^30 B); check the two errata the lesson discusses.

# %%
examples = [("Llama-2-7B, 1 x 4,096 tokens", LLAMA2_7B, 1, 4096),
            ("Llama-3-8B, 32 x 4,096 tokens", LLAMA3_8B, 32, 4096),
            ("Llama-3-8B, a 50-token answer", LLAMA3_8B, 1, 50),
            ("OPT-13B, 1 x 2,048 tokens", OPT_13B, 1, 2048)]
print(f"{'case':32s} {'bytes':>16s} {'MB':>9s} {'MiB':>9s} {'GB':>7s} {'GiB':>7s}")
for name, cfg, batch, seq in examples:
    n = kv_cache_bytes(cfg, batch, seq)
    print(f"{name:32s} {n:16,.0f} {n / 1e6:9,.2f} {n / 2 ** 20:9,.2f} {n / 1e9:7.2f} "
          f"{n / 2 ** 30:7.4f}")

# %% [markdown]
# One sequence's cache against its context length, next to the weights of Llama-2-7B in 16 bits
# (13,476,831,232 B, the lesson's figure) and the memory of a "24GB" card (24 GiB). Every model
# is a straight line: the slope is the bytes per token, and GQA shifts the line down.

# %%
from course.plot import Line, Marker

contexts = [2 ** i for i in range(7, 18)]  # 128 .. 131,072 tokens
lines = [Line(cfg.name, contexts, [kv_cache_bytes(cfg, 1, n) / 2 ** 30 for n in contexts])
         for cfg in MODELS]
lines.append(Line("Llama-2-7B weights (16-bit)", contexts[::len(contexts) - 1],
                  [13_476_831_232 / 2 ** 30] * 2))
lines.append(Line('a "24GB" card (24 GiB)', contexts[::len(contexts) - 1], [24.0, 24.0]))
show_plot("kv_bytes", lines=lines,
          points=[Marker("Llama-2-7B at 4,096", 4096, kv_cache_bytes(LLAMA2_7B, 1, 4096) / 2 ** 30)],
          xlabel="context length of one sequence (tokens)", ylabel="KV cache (GiB, 16-bit)",
          title="KV cache of one sequence against its context", loglog=True)

# %% [markdown]
# ## How many tokens fit
# `max_tokens_in_budget` rounds down: a budget one byte short of 2,048 tokens holds 2,047. Then
# the lesson's two deployments, with the memory sizes from `hardware_fixtures` and the weight
# sizes quoted by the lesson.

# %%
import hardware_fixtures

print("1 GiB, Llama-2-7B:", max_tokens_in_budget(LLAMA2_7B, 2 ** 30), "tokens;",
      "one byte less:", max_tokens_in_budget(LLAMA2_7B, 2 ** 30 - 1), "; a negative budget:",
      max_tokens_in_budget(LLAMA2_7B, -5))
h100 = hardware_fixtures.load("h100_sxm").memory_bytes
budget = h100 - 8_030_261_248 * 2 - 4 * 2 ** 30  # weights, then 4 GiB for activations
tokens = max_tokens_in_budget(LLAMA3_8B, budget)
print(f"Llama-3-8B on an H100 ({h100:,} B): {tokens:,} tokens = "
      f"{tokens // 8192} sequences of 8,192 or {tokens // 1024} of 1,024")
l4 = hardware_fixtures.load("l4").memory_bytes
tokens = max_tokens_in_budget(LLAMA2_7B, l4 - 13_476_831_232)
print(f"Llama-2-7B on a 24 GiB card: {tokens:,} tokens = {tokens / 4096:.1f} users at 4,096 tokens")

# %% [markdown]
# ## A preallocated cache
# Two appends to layer 0 of a small cache: the positions written come back, `get` returns views
# of exactly what was written (compare with `torch.cat`), the buffers never move, and the bytes
# they hold equal `kv_cache_bytes` for the same shape (float32: 4 bytes per number).

# %%
import torch

from course.config import tiny

from exercises.lesson04.kv_cache import CacheFull, KVCache

cfg = tiny()
cache = KVCache(cfg.n_layers, max_batch=2, max_seq=16, n_kv_heads=cfg.n_kv_heads, d_head=cfg.d_head)
pointer = cache.k_buffer.data_ptr()
k1, v1 = torch.randn(2, cfg.n_kv_heads, 5, cfg.d_head), torch.randn(2, cfg.n_kv_heads, 5, cfg.d_head)
k2, v2 = torch.randn(2, cfg.n_kv_heads, 1, cfg.d_head), torch.randn(2, cfg.n_kv_heads, 1, cfg.d_head)
print("first append wrote positions", cache.append(0, k1, v1).tolist())
print("second append wrote positions", cache.append(0, k2, v2).tolist())
keys, values = cache.get(0)
print("get(0):", tuple(keys.shape), "| equals torch.cat:", torch.equal(keys, torch.cat([k1, k2], 2)),
      torch.equal(values, torch.cat([v1, v2], 2)),
      "| a view of the buffer:", keys.data_ptr() == pointer == cache.k_buffer.data_ptr())
print("lengths per layer:", [cache.length(i) for i in range(cfg.n_layers)])
print(f"buffers: {cache.nbytes:,} B; kv_cache_bytes: {kv_cache_bytes(cfg, 2, 16, dtype_bytes=4):,.0f} B")
try:
    cache.append(0, *(torch.randn(2, cfg.n_kv_heads, 11, cfg.d_head),) * 2)
except CacheFull as exc:
    print("CacheFull:", exc)

# %% [markdown]
# Why not `torch.cat`: the bytes newly allocated by one one-token append, counted while it runs,
# at growing cache lengths. Growing a tensor with `cat` allocates a new one the size of the whole
# cache every time; your append should allocate (almost) nothing, whatever the length.

# %%
from course.counting import AllocationCounter

big = KVCache(1, max_batch=1, max_seq=4096, n_kv_heads=2, d_head=64)
grown = torch.zeros(1, 2, 0, 64)
lengths, cat_bytes, append_bytes = [], [], []
for target in (16, 64, 256, 1024, 4095):
    step = torch.randn(1, 2, target - big.length(0), 64)
    big.append(0, step, step)
    grown = torch.cat([grown, step], dim=2)
    one = torch.randn(1, 2, 1, 64)
    with AllocationCounter() as counted:
        torch.cat([grown, one], dim=2)
    with AllocationCounter() as mine:
        big.append(0, one, one)
    big.reset()
    big.append(0, grown, grown)  # back to `target` tokens for the next round
    lengths.append(target)
    cat_bytes.append(counted.total_bytes)
    append_bytes.append(mine.total_bytes)
    print(f"after {target:5,d} tokens: torch.cat of K allocates {counted.total_bytes:9,d} B, "
          f"your append {mine.total_bytes:5,d} B (for K and V together)")
show_plot("append_bytes", lines=[Line("torch.cat (K only)", lengths, cat_bytes),
                                 Line("your append (K and V)", lengths, [max(b, 1) for b in append_bytes])],
          xlabel="tokens already cached", ylabel="bytes allocated by one one-token append",
          title="Growing a cache by concatenation copies all of it", loglog=True)

# %% [markdown]
# ## Generation on the cache, and what it costs
# `generate_greedy` on a tiny random model against an oracle with no cache at all (HF's model
# re-run on the whole sequence every step): the ids must be identical.

# %%
from course.model import hf_model_from_weights, random_weights

from exercises.lesson04.decode import forward_cached, generate_greedy

weights = random_weights(cfg, seed=0)
ids = torch.randint(0, cfg.vocab_size, (2, 7))
cache = KVCache(cfg.n_layers, 2, 32, cfg.n_kv_heads, cfg.d_head)
got = generate_greedy(weights, cfg, ids, 6, cache)
model, want = hf_model_from_weights(cfg, weights), ids
for _ in range(6):
    with torch.no_grad():
        want = torch.cat([want, model(input_ids=want, use_cache=False).logits[:, -1:].argmax(-1)], 1)
print("generated:", got.tolist())
print("same as the uncached oracle:", torch.equal(got, want), "| cache holds", cache.length(0), "tokens")

# %% [markdown]
# FLOPs of producing one more token after `S` tokens, counted by `FlopCounterMode`: a cached
# step (`forward_cached` with one token) against running all `S + 1` tokens from an empty cache,
# which is what a loop without a cache pays at every step.

# %%
from course.counting import count_flops

contexts, step_flops, rerun_flops = [8, 16, 32, 64, 128, 256], [], []
for S in contexts:
    seq = torch.randint(0, cfg.vocab_size, (1, S + 1))
    c = KVCache(cfg.n_layers, 1, S + 1, cfg.n_kv_heads, cfg.d_head)
    forward_cached(weights, cfg, seq[:, :S], c)
    step_flops.append(count_flops(forward_cached, weights, cfg, seq[:, S:], c))
    fresh = KVCache(cfg.n_layers, 1, S + 1, cfg.n_kv_heads, cfg.d_head)
    rerun_flops.append(count_flops(forward_cached, weights, cfg, seq, fresh))
    print(f"S = {S:3d}: cached step {step_flops[-1]:9,d} FLOPs, re-running {rerun_flops[-1]:11,d}")
show_plot("decode_flops", lines=[Line("cached step", contexts, step_flops),
                                 Line("re-run the whole sequence", contexts, rerun_flops)],
          xlabel="tokens already in the sequence (S)", ylabel="FLOPs for one more token",
          title="A cached decode step does not grow with the prompt", loglog=True)

# %% [markdown]
# ## Run the visible tests
# The same tests as `pytest exercises/lesson04` in a terminal. Your instructor's graders go
# further (random shapes and dtypes, allocation counts, FLOP bounds, the real model, a GPU
# timing of appends at 1k and 32k tokens).

# %%
run_tests("lesson04")

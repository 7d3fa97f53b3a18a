# %% [markdown]
# # Lesson 03: Prefill vs decode
#
# A notebook to try this lesson's pieces on **your own code** (`exercises/lesson03/`) while you
# write them. Read [the lesson](../learning/lesson03.md) first. Each cell below calls one of your
# functions; until you write it, the cell stops with `NotImplementedError` naming the section to
# read. Edit the file, re-run the cell: the new code runs (autoreload is on). The last cell runs
# the lesson's visible tests.

# %%
from autograder.lab import run_tests, setup, show_plot

setup("lesson03")

# %% [markdown]
# ## `run_layers`: hidden states and a cache
# A tiny random model (2 layers, 4 query heads, 2 KV heads of 16 channels). Run a 5-token
# prompt for 2 sequences from an empty cache: one `(k, v)` pair per layer comes back, each
# `[batch, n_kv_heads, tokens, d_head]`.

# %%
import torch

from course.config import tiny
from course.model import hf_model_from_weights, random_weights

from exercises.lesson03.phases import cache_length, decode_step, prefill, run_layers

cfg = tiny()
weights = random_weights(cfg, seed=2)
ids = torch.randint(0, cfg.vocab_size, (2, 9))
hidden, cache = run_layers(weights, cfg, ids[:, :5], [])
print("hidden:", tuple(hidden.shape))
print("cache:", len(cache), "layers of (k, v), each", tuple(cache[0][0].shape))

# %% [markdown]
# ## Prefill, then decode steps, against a full forward with no cache
# The oracle is HF transformers' Llama on the same weights, run on the whole sequence at once.
# Prefill gives the logits at the last prompt position; each decode step should give the logits
# of the next position, to float rounding.

# %%
with torch.no_grad():
    full = hf_model_from_weights(cfg, weights)(input_ids=ids, use_cache=False).logits
logits, cache = prefill(weights, cfg, ids[:, :6])
print(f"prefill of 6 tokens: logits {tuple(logits.shape)}, "
      f"max error {(logits - full[:, 5]).abs().max():.1e}, cache holds {cache_length(cache)}")
for t in range(6, 9):
    logits, cache = decode_step(weights, cfg, ids[:, t], cache)
    print(f"decode step at position {t}: logits {tuple(logits.shape)}, "
          f"max error {(logits - full[:, t]).abs().max():.1e}, cache holds {cache_length(cache)}")

# %% [markdown]
# Branching: two different next tokens continue from one prefill cache (two samples of one
# prompt). Each branch must match its own full forward, and the shared cache must still hold the
# prompt only.

# %%
prompt_logits, shared = prefill(weights, cfg, ids[:, :6])
for name, token in [("branch A", ids[:, 6]), ("branch B", (ids[:, 6] + 1) % cfg.vocab_size)]:
    seq = torch.cat([ids[:, :6], token[:, None], ids[:, 7:8]], dim=1)
    with torch.no_grad():
        want = hf_model_from_weights(cfg, weights)(input_ids=seq, use_cache=False).logits[:, 6]
    got, _ = decode_step(weights, cfg, token, shared)
    print(f"{name}: max error {(got - want).abs().max():.1e}")
print("shared cache still holds", cache_length(shared), "tokens")

# %% [markdown]
# ## What each phase computes
# FLOPs counted by torch's `FlopCounterMode` while your code runs. A prefill's work grows with
# the prompt; a decode step's does not. The counter reports only `aten.mm` here, the products
# with weights: attention's own work, which grows with the context, is not in these counts.
# The last line checks that prefill sends only the last position through the output matrix.

# %%
from course.counting import count_flops, count_flops_by_op

print(f"{'tokens':>7s} {'prefill FLOPs':>14s} {'decode step FLOPs':>18s}")
for T in (4, 16, 64):
    prompt = torch.randint(0, cfg.vocab_size, (1, T))
    pf = count_flops(prefill, weights, cfg, prompt)
    _, c = prefill(weights, cfg, prompt)
    ds = count_flops(decode_step, weights, cfg, prompt[:, -1], c)
    print(f"{T:7d} {pf:14,d} {ds:18,d}")
print("counted ops:", count_flops_by_op(prefill, weights, cfg, prompt))
extra = count_flops(prefill, weights, cfg, prompt) - count_flops(run_layers, weights, cfg, prompt, [])
print(f"prefill minus run_layers: {extra:,} FLOPs; one row through lm_head is "
      f"2 x {cfg.vocab_size} x {cfg.d_model} = {2 * cfg.vocab_size * cfg.d_model:,}")

# %% [markdown]
# ## The time model
# The lesson's first two worked examples through your functions: Llama-2-7B (6.74e9 parameters,
# 16-bit) decoding at batch 1 on an A10 (600 GB/s, 125 TFLOP/s), and a 2,048-token prefill on an
# H100 SXM (numbers from `hardware_fixtures`).

# %%
import hardware_fixtures

from exercises.lesson03.time_model import (decode_step_time_s, phase_time_model, prefill_time_s,
                                           roofs)

N = 6.74e9
a10 = dict(peak_flops=125e12, bandwidth=600e9)
t = decode_step_time_s(N, 1, 0, bytes_per_param=2, kv_bytes_per_token=0, **a10)
print(f"A10, batch-1 decode step: {1e3 * t:.1f} ms, {1 / t:.0f} tokens/s")
peak, bandwidth = roofs(hardware_fixtures.load("h100_sxm"))
h100 = dict(peak_flops=peak, bandwidth=bandwidth)
print(f"H100: {peak / 1e12:.1f} TFLOP/s, {bandwidth / 1e12:.2f} TB/s, ridge {peak / bandwidth:.0f} FLOP/byte")
t = prefill_time_s(N, 2048, bytes_per_param=2, **h100)
print(f"H100, 2,048-token prefill: {1e3 * t:.1f} ms")

# %% [markdown]
# Time against prompt length on the H100: the prefill of `T` tokens, and the one decode step
# that follows it (it reads the weights and the prompt's 524,288 B per token of KV, the figure
# lesson 04 derives). Below the ridge a prefill costs the same as reading the weights once;
# above it, it is compute-bound and grows linearly. The decode step stays near the weight read.

# %%
from course.plot import Line, Marker

KV_LLAMA2 = 524_288  # bytes per token, 16-bit (lesson 04)
lengths = [2 ** i for i in range(0, 16)]
pre = [prefill_time_s(N, T, bytes_per_param=2, **h100) for T in lengths]
dec = [decode_step_time_s(N, 1, T, bytes_per_param=2, kv_bytes_per_token=KV_LLAMA2, **h100)
       for T in lengths]
for T, p, d in zip(lengths, pre, dec):
    if T in (1, 64, 256, 1024, 4096, 32768):
        print(f"prompt {T:6,d}: prefill {1e3 * p:7.2f} ms, next decode step {1e3 * d:6.2f} ms")
ridge = peak / bandwidth  # tokens at which a 16-bit prefill turns compute-bound
show_plot("phases", lines=[Line("prefill of T tokens", lengths, [1e3 * v for v in pre]),
                           Line("decode step at context T", lengths, [1e3 * v for v in dec])],
          points=[Marker(f"ridge: T = {ridge:.0f}", ridge,
                         1e3 * prefill_time_s(N, ridge, bytes_per_param=2, **h100))],
          xlabel="prompt length T (tokens)", ylabel="time (ms), roofline estimate",
          title="Llama-2-7B on an H100 SXM: prefill against decode", loglog=True)

# %% [markdown]
# ## Batching decode
# The lesson's third example: Llama-3-8B (8.03e9 parameters; 131,072 B of KV per token) with
# every sequence holding 4,096 cached tokens. The weight read is shared by the batch, the KV read
# is not. The second line is the same step with no KV at all. The dot marks where an H100's
# 80 GiB is full (130 such sequences, the lesson's figure): larger batches do not fit.

# %%
N8, KV8 = 8.03e9, 131_072
batches = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]
with_kv, no_kv = [], []
for b in batches:
    with_kv.append(decode_step_time_s(N8, b, b * 4096, bytes_per_param=2, kv_bytes_per_token=KV8, **h100))
    no_kv.append(decode_step_time_s(N8, b, 0, bytes_per_param=2, kv_bytes_per_token=KV8, **h100))
print(f"{'batch':>5s} {'step (ms)':>10s} {'tokens/s':>9s} {'step, no KV (ms)':>17s}")
for b, t, t0 in zip(batches, with_kv, no_kv):
    print(f"{b:5d} {1e3 * t:10.2f} {b / t:9,.0f} {1e3 * t0:17.2f}")
full = decode_step_time_s(N8, 130, 130 * 4096, bytes_per_param=2, kv_bytes_per_token=KV8, **h100)
show_plot("batching", lines=[Line("4,096 cached tokens each", batches, [b / t for b, t in zip(batches, with_kv)]),
                             Line("no KV (weights only)", batches, [b / t for b, t in zip(batches, no_kv)])],
          points=[Marker("80 GiB full (130 sequences)", 130, 130 / full)],
          xlabel="batch (sequences per decode step)", ylabel="tokens per second",
          title="Llama-3-8B decode on an H100: batching shares the weight read", loglog=True)

# %% [markdown]
# ## A whole generation
# `phase_time_model` for a few requests: the prefill is the time to first token (TTFT), and the
# decode time over `n_out - 1` steps is the time per output token (TPOT).

# %%
print(f"{'batch':>5s} {'n_in':>6s} {'n_out':>6s} {'TTFT (ms)':>10s} {'TPOT (ms)':>10s} {'total (s)':>10s}")
for batch, n_in, n_out in [(1, 128, 256), (1, 2048, 256), (8, 2048, 256), (32, 512, 512)]:
    times = phase_time_model(N8, n_in, n_out, batch, bytes_per_param=2, kv_bytes_per_token=KV8, **h100)
    tpot = times.decode_s / (n_out - 1)
    print(f"{batch:5d} {n_in:6d} {n_out:6d} {1e3 * times.prefill_s:10.2f} {1e3 * tpot:10.2f} "
          f"{times.total_s:10.3f}")

# %% [markdown]
# ## Run the visible tests
# The same tests as `pytest exercises/lesson03` in a terminal. Your instructor's graders go
# further (random shapes, the real model, hypothesis properties of the time model, a GPU decode
# step captured in a CUDA graph).

# %%
run_tests("lesson03")

# %% [markdown]
# # Lesson 06: Capacity planning
#
# A notebook to try this lesson's pieces on **your own code** (`exercises/lesson06/`) while you
# write them. Read [the lesson](../learning/lesson06.md) first. Each cell below calls one of your
# functions; until you write it, the cell stops with `NotImplementedError` naming the section to
# read. Edit the file, re-run the cell: the new code runs (autoreload is on). The last cell runs
# the lesson's visible tests.

# %%
from autograder.lab import run_tests, setup, show_plot

setup("lesson06")

# %% [markdown]
# ## What the weights weigh
# Your `num_params` for the three Llama-style models of `course/config.py`, next to an
# independent count: the sum of the sizes of every weight tensor the model stores
# (`course.model.weight_shapes`, which lists the output head even when it is tied to the
# embedding, so a tied model subtracts it once).

# %%
import math

from course.config import LLAMA2_7B, LLAMA3_8B, SMOLLM2_135M
from course.model import weight_shapes

from exercises.lesson06.capacity import kv_bytes_per_token, num_params, weights_bytes

MODELS = [SMOLLM2_135M, LLAMA2_7B, LLAMA3_8B]
print(f"{'model':24} {'num_params':>15} {'sum of tensor sizes':>20}  equal")
for cfg in MODELS:
    shapes = weight_shapes(cfg)
    head = math.prod(shapes["lm_head.weight"]) if cfg.tie_embeddings else 0  # counted once
    counted = sum(math.prod(s) for s in shapes.values()) - head
    mine = num_params(cfg)
    print(f"{cfg.name:24} {mine:15,} {counted:20,}  {mine == counted}")

# %% [markdown]
# The same weights in several formats, in decimal GB and binary GiB: look at how far apart the
# two units are at this size, and at what a real 4-bit format (0.625 B per weight, scales
# included) costs over the bare 0.5 B.

# %%
FORMATS = ["fp32", "bf16", "fp8", "int4", 0.625]
print(f"{'model':24}" + "".join(f"{str(f):>20}" for f in FORMATS))
for cfg in MODELS:
    cells = []
    for fmt in FORMATS:
        b = weights_bytes(cfg, fmt)
        cells.append(f"{b / 1e9:8.2f} GB {b / 2**30:6.2f} GiB")
    print(f"{cfg.name:24}" + "".join(f"{c:>20}" for c in cells))

# %% [markdown]
# ## What the KV cache weighs
# Bytes per token for each model, and the cache of one sequence as its context grows: a
# straight line on log-log axes, whose height is set by `n_layers x n_kv_heads x d_head`. The
# flat line is what one H100 SXM has left for the cache after Llama-3-8B's bf16 weights (90%
# of its memory planned), so you can read off where a single long sequence of each model would
# stop fitting.

# %%
from course.plot import Line

import hardware_fixtures

H100 = hardware_fixtures.load("h100_sxm")
for cfg in MODELS:
    per = kv_bytes_per_token(cfg)
    print(f"{cfg.name:24} {per:9,} B/token = {per / 2**10:6.1f} KiB"
          f"   (fp8 cache: {kv_bytes_per_token(cfg, 'fp8'):,} B)")

contexts = [2**k for k in range(10, 21)]  # 1 Ki .. 1 Mi tokens
left = int(H100.memory_bytes * 0.9) - weights_bytes(LLAMA3_8B)
lines = [Line(cfg.name, contexts, [kv_bytes_per_token(cfg) * n / 2**30 for n in contexts])
         for cfg in MODELS]
lines.append(Line("H100 left after Llama-3-8B weights", (contexts[0], contexts[-1]),
                  (left / 2**30,) * 2))
show_plot("kv_cache_bytes", lines=lines, xlabel="context (tokens)",
          ylabel="KV cache of one sequence (GiB)", title="KV cache against context, bf16")

# %% [markdown]
# The lesson's warning about a figure often quoted wrongly: 32 sequences of 4096 tokens of
# Llama-3-8B. Check which unit your number is in.

# %%
batch_bytes = 32 * 4096 * kv_bytes_per_token(LLAMA3_8B)
print(f"{batch_bytes:,} B = {batch_bytes / 1e9:.1f} GB = {batch_bytes / 2**30:.1f} GiB")

# %% [markdown]
# ## The plan
# The lesson's worked example: Llama-3-8B, bf16, one H100 SXM, 10% reserve. Every field of the
# `Plan` your `plan` returns, in bytes and GiB.

# %%
from exercises.lesson06.planner import min_gpus, plan

p = plan(LLAMA3_8B, H100, reserve_fraction=0.1, context_len=8192)
for field in ("usable_bytes", "weights_bytes", "kv_budget_bytes"):
    value = getattr(p, field)
    print(f"{field:20} {value:18,} B  ({value / 2**30:7.2f} GiB)")
print(f"{'kv_bytes_per_token':20} {p.kv_bytes_per_token:18,} B  ({p.kv_bytes_per_token / 2**10:.0f} KiB)")
print(f"{'max_tokens':20} {p.max_tokens:18,}")
print(f"{'max_batch_at_context':20} {p.max_batch_at_context:18,}  (sequences of {p.context_len})"
      f"  fits: {p.fits}")

# %% [markdown]
# The same model on every GPU fixture the course has, at 8192 tokens per sequence: the plan
# depends only on each card's memory, so cards of one capacity give one answer. A card too small
# for the weights gets a budget of zero, not a negative one.

# %%
print(f"{'GPU':18} {'memory':>10} {'KV budget':>12} {'tokens':>10} {'batch @8192':>12}")
for key, gpu in hardware_fixtures.all_specs().items():
    q = plan(LLAMA3_8B, gpu, context_len=8192)
    print(f"{key:18} {gpu.memory_bytes / 2**30:6.0f} GiB {q.kv_budget_bytes / 2**30:8.1f} GiB"
          f" {q.max_tokens:10,} {q.max_batch_at_context:12,}")

# %% [markdown]
# Two of the properties any planner must have, drawn: sequences that fit against the context
# length (never more for a longer context), for one to eight H100s (each extra GPU adds the
# same number of tokens once the weights fit).

# %%
lengths = [2**k for k in range(9, 18)]  # 512 .. 128 Ki tokens
lines = []
for n in (1, 2, 4, 8):
    batches = [plan(LLAMA3_8B, H100, n, context_len=c).max_batch_at_context for c in lengths]
    lines.append(Line(f"{n} x H100", lengths, batches))
tokens = [plan(LLAMA3_8B, H100, n).max_tokens for n in range(1, 9)]
print("max_tokens for 1..8 GPUs:", [f"{t:,}" for t in tokens])
print("added by each extra GPU:", [f"{b - a:,}" for a, b in zip(tokens, tokens[1:])])
show_plot("batch_vs_context", lines=lines, xlabel="context per sequence (tokens)",
          ylabel="sequences that fit", title="Llama-3-8B, bf16, reserve 10%")

# %% [markdown]
# ## The fewest GPUs
# `min_gpus` for the lesson's questions, with and without `choices`, and a target no count up
# to `max_gpus` reaches (None). The last column checks minimality: the next smaller allowed count
# holds fewer sequences than asked for.

# %%
questions = [(LLAMA2_7B, 64, 4096, None), (LLAMA2_7B, 100, 4096, None),
             (LLAMA2_7B, 100, 4096, (1, 2, 4, 8)), (LLAMA3_8B, 256, 8192, None),
             (LLAMA3_8B, 10**6, 8192, None)]
print(f"{'model':12} {'batch':>9} {'context':>8} {'choices':>14} {'GPUs':>5} "
      f"{'next smaller count holds':>26}")
for cfg, batch, ctx, choices in questions:
    n = min_gpus(cfg, H100, batch, ctx, choices=choices)
    allowed = [c for c in (choices or range(1, 65)) if n is not None and c < n]
    fewer = "-"
    if allowed:
        fewer = f"{plan(cfg, H100, max(allowed), context_len=ctx).max_batch_at_context} " \
                f"on {max(allowed)}"
    print(f"{cfg.name:12} {batch:9,} {ctx:8} {str(choices):>14} {str(n):>5} {fewer:>26}")

# %% [markdown]
# ## Run the visible tests
# The same tests as `pytest exercises/lesson06` in a terminal. Your instructor's graders go
# further (random configurations, every GPU fixture, the planner's properties with hypothesis).

# %%
run_tests("lesson06")

# %% [markdown]
# # Lesson 05: MHA, MQA and GQA
#
# A notebook to try this lesson's pieces on **your own code** (`exercises/lesson05/`) while you
# write them. Read [the lesson](../learning/lesson05.md) first. Each cell below calls one of your
# functions; until you write it, the cell stops with `NotImplementedError` naming the section to
# read. Edit the file, re-run the cell: the new code runs (autoreload is on). The last cell runs
# the lesson's visible tests.

# %%
from autograder.lab import run_tests, setup, show_plot

setup("lesson05")

# %% [markdown]
# ## Which KV head each query head reads
# Three KV heads, each filled with its own number, repeated for 9 query heads (SmolLM2's shape).
# Your `repeat_kv` must give the order of `repeat_interleave`; `torch.repeat` gives another
# order, the silent bug the lesson warns about.

# %%
import torch
import torch.nn.functional as F

from exercises.lesson05.grouped_attention import gqa_attention, gqa_attention_spec, repeat_kv

kv = torch.arange(3.0).view(1, 3, 1, 1).expand(1, 3, 2, 4).contiguous()  # head j holds j


def heads(x):
    return [int(h) for h in x[0, :, 0, 0].tolist()]


print("repeat_kv(x, 3):             ", heads(repeat_kv(kv, 3)))
print("torch.repeat_interleave(x, 3):", heads(torch.repeat_interleave(kv, 3, dim=1)))
print("x.repeat(1, 3, 1, 1):         ", heads(kv.repeat(1, 3, 1, 1)), "(wrong pairing)")
print("n_rep = 1 returns x itself:", repeat_kv(kv, 1) is kv)

# %% [markdown]
# ## Grouped-query attention without copies
# Your `gqa_attention` against two oracles: SDPA on K and V expanded with `repeat_interleave`,
# and the slow per-head loop `gqa_attention_spec` given in the same file. MHA, GQA and MQA are
# the same function with a different number of KV heads.

# %%
B, T, d = 2, 5, 64
print(f"{'variant':18s} {'q heads':>7s} {'kv heads':>8s} {'out':>16s} {'vs SDPA':>9s} {'vs spec':>9s}")
for name, n_heads, n_kv in [("MHA", 8, 8), ("GQA (SmolLM2)", 9, 3), ("GQA (Llama-3)", 8, 2),
                            ("MQA", 8, 1)]:
    q, k, v = torch.randn(B, n_heads, T, d), torch.randn(B, n_kv, T, d), torch.randn(B, n_kv, T, d)
    out = gqa_attention(q, k, v)
    g = n_heads // n_kv
    want = F.scaled_dot_product_attention(q, torch.repeat_interleave(k, g, 1),
                                          torch.repeat_interleave(v, g, 1))
    spec = gqa_attention_spec(q, k, v)
    print(f"{name:18s} {n_heads:7d} {n_kv:8d} {str(tuple(out.shape)):>16s} "
          f"{(out - want).abs().max():9.1e} {(out - spec).abs().max():9.1e}")

# %% [markdown]
# ## The causal mask when there are fewer queries than keys
# Three new queries after seven cached tokens (`T = 3`, `S = 10`). The right mask aligns the
# queries with the last three positions. SDPA's `is_causal=True` aligns them with the first
# three instead; the last column shows how far that answer is from the right one.

# %%
q, k, v = torch.randn(1, 9, 3, d), torch.randn(1, 3, 10, d), torch.randn(1, 3, 10, d)
mine = gqa_attention(q, k, v, causal=True)
spec = gqa_attention_spec(q, k, v, causal=True)
top_left = F.scaled_dot_product_attention(q, repeat_kv(k, 3), repeat_kv(v, 3), is_causal=True)
print("visible keys per query (bottom-right):")
print(torch.ones(3, 10, dtype=torch.int).tril(diagonal=10 - 3))
print(f"max |yours - spec| = {(mine - spec).abs().max():.1e};  "
      f"max |top-left SDPA - spec| = {(top_left - spec).abs().max():.2f}")
one = gqa_attention(q[:, :, -1:], k, v, causal=True)
print(f"a single decode query sees every key: max |causal - not causal| = "
      f"{(one - gqa_attention(q[:, :, -1:], k, v)).abs().max():.1e}")

# %% [markdown]
# ## What the copy costs
# Bytes allocated by one decode step (one query per sequence, 4 sequences, 32 query heads and 8
# KV heads of 128 channels, float32), counted by `AllocationCounter`, against the cache length.
# Repeating K and V first allocates the repeated tensors; your `gqa_attention` should allocate
# only about the size of its output, whatever the cache length.

# %%
from course.counting import AllocationCounter
from course.plot import Line

lengths, copy_bytes, own_bytes = [64, 128, 256, 512, 1024], [], []
for S in lengths:
    q = torch.randn(4, 32, 1, 128)
    k, v = torch.randn(4, 8, S, 128), torch.randn(4, 8, S, 128)
    with AllocationCounter() as copied:
        F.scaled_dot_product_attention(q, repeat_kv(k, 4), repeat_kv(v, 4))
    with AllocationCounter() as grouped:
        gqa_attention(q, k, v)
    copy_bytes.append(copied.total_bytes)
    own_bytes.append(grouped.total_bytes)
    print(f"S = {S:5,d}: K+V {2 * k.nbytes:11,d} B | repeat_kv + SDPA allocates "
          f"{copied.total_bytes:11,d} B | gqa_attention {grouped.total_bytes:9,d} B")
show_plot("gqa_bytes", lines=[Line("repeat_kv, then SDPA", lengths, copy_bytes),
                              Line("your gqa_attention", lengths, own_bytes)],
          xlabel="cached tokens per sequence", ylabel="bytes allocated by one decode step",
          title="GQA without copies: allocation stays flat", loglog=True)

# %% [markdown]
# ## What GQA saves
# `kv_reduction_factor` for the course's models, and for Llama-3-8B with other numbers of KV
# heads. The last columns turn it into bytes for one 8,192-token Llama-3-8B sequence (its MHA
# version would hold 4 GiB, the lesson's figure) and into the time to read them once at
# 3.0 TB/s, the course's measured H100 copy bandwidth.

# %%
from course.config import LLAMA2_7B, LLAMA3_8B, SMOLLM2_135M

from exercises.lesson05.conversion import convert_mha_to_gqa, kv_reduction_factor

for cfg in (SMOLLM2_135M, LLAMA2_7B, LLAMA3_8B):
    print(f"{cfg.name:22s} {cfg.n_heads:2d} query heads, {cfg.n_kv_heads:2d} KV heads: "
          f"reduction factor {kv_reduction_factor(cfg)} against MHA")
MHA_BYTES = 4 * 2 ** 30  # one Llama-3-8B sequence of 8,192 tokens with 32 KV heads (16-bit)
print(f"\n{'Llama-3-8B KV heads':>20s} {'factor':>7s} {'KV bytes (GiB)':>15s} {'read (ms)':>10s}")
for n_kv in (32, 16, 8, 4, 2, 1):
    f = kv_reduction_factor(LLAMA3_8B, n_kv)
    print(f"{n_kv:20d} {f:7d} {MHA_BYTES / f / 2 ** 30:15.3f} {1e3 * MHA_BYTES / f / 3.0e12:10.3f}")

# %% [markdown]
# ## From MHA to GQA by mean-pooling
# First a toy: 4 heads of 2 channels, each head's rows filled with its number, pooled into 2
# groups. Each new head should be the mean of two consecutive old ones.

# %%
w = torch.arange(4.0).repeat_interleave(2)[:, None].expand(8, 3)  # head h's rows hold h
pooled_k, pooled_v = convert_mha_to_gqa(w, w, n_heads=4, n_groups=2)
print("old heads:", w[::2, 0].tolist(), "-> new heads:", pooled_k[::2, 0].tolist(),
      "| shape", tuple(w.shape), "->", tuple(pooled_k.shape))

# %% [markdown]
# Now the real SmolLM2-135M, layer 0. Repeating its 3 KV heads into 9 gives an MHA model that
# computes the same function; pooling back into 3 groups must return the original weights
# exactly. Pooling into 1 group (MQA) is an approximation: the attention block's output moves,
# which is what uptraining would repair. Attention runs on your `gqa_attention`, and the first
# line checks it against SDPA on the real projections.

# %%
import dataclasses

from course.cached_attention import project_qkv
from course.hf_layers import hf_rms_norm, hf_rope_cos_sin
from course.model import load_config, load_tokenizer, load_weights

cfg, weights, tokenizer = load_config(), load_weights(), load_tokenizer()
prefix = "model.layers.0.self_attn."
ids = torch.tensor([tokenizer.encode("Grouped-query attention shares keys and values between heads.")])
x = hf_rms_norm(weights["model.embed_tokens.weight"][ids], weights["model.layers.0.input_layernorm.weight"], cfg.rms_eps)
cos, sin = hf_rope_cos_sin(cfg, torch.arange(ids.shape[1]))


def layer0_attention(w, c):
    q, k, v = project_qkv(w, prefix, c, x, cos, sin)
    return gqa_attention(q, k, v, causal=True), (q, k, v)


out, (q, k, v) = layer0_attention(weights, cfg)
want = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
print(f"tokens: {ids.shape[1]} | q {tuple(q.shape)}, k {tuple(k.shape)} | "
      f"max |yours - SDPA| = {(out - want).abs().max():.1e}")

per_kv = cfg.n_heads // cfg.n_kv_heads
as_mha = {n: weights[prefix + n].view(cfg.n_kv_heads, cfg.d_head, -1).repeat_interleave(per_kv, 0)
          .reshape(cfg.n_heads * cfg.d_head, -1) for n in ("k_proj.weight", "v_proj.weight")}
back_k, back_v = convert_mha_to_gqa(as_mha["k_proj.weight"], as_mha["v_proj.weight"],
                                    cfg.n_heads, cfg.n_kv_heads)
print("MHA (9 heads) -> GQA (3 groups) round trip exact:",
      torch.equal(back_k, weights[prefix + "k_proj.weight"]), torch.equal(back_v, weights[prefix + "v_proj.weight"]))

mqa_k, mqa_v = convert_mha_to_gqa(weights[prefix + "k_proj.weight"], weights[prefix + "v_proj.weight"],
                                  cfg.n_kv_heads, 1)
mqa = dict(weights, **{prefix + "k_proj.weight": mqa_k, prefix + "v_proj.weight": mqa_v})
mqa_out, _ = layer0_attention(mqa, dataclasses.replace(cfg, n_kv_heads=1))
rel = (mqa_out - out).norm() / out.norm()
print(f"pooled to MQA (1 KV head, {kv_reduction_factor(cfg, 1)}x smaller cache than MHA): "
      f"relative change of the attention output {rel:.2f}")

# %% [markdown]
# ## Run the visible tests
# The same tests as `pytest exercises/lesson05` in a terminal. Your instructor's graders go
# further (hypothesis over shapes and masks, bf16, allocation limits, the real model's layer 0
# against the reference forward, a GPU bandwidth check).

# %%
run_tests("lesson05")

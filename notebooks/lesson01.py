# %% [markdown]
# # Lesson 01: The transformer at inference time
#
# A notebook to try this lesson's pieces on **your own code** (`exercises/lesson01/`) while you
# write them. Read [the lesson](../learning/lesson01.md) first. Each cell below calls one of your
# functions; until you write it, the cell stops with `NotImplementedError` naming the section to
# read. Edit the file, re-run the cell: the new code runs (autoreload is on). The last cell runs
# the lesson's visible tests.

# %%
from autograder.lab import run_tests, setup, show_plot

setup("lesson01")

# %% [markdown]
# ## Counting parameters
# Your `param_count` for the course's model and two well-known ones, with the share of each
# model that is its vocabulary table (the embedding, stored once when tied). Compare with the
# totals the lesson prints.

# %%
from course.config import LLAMA2_7B, LLAMA3_8B, SMOLLM2_135M

from exercises.lesson01.arithmetic import flops_per_token, param_count

print(f"{'model':24s} {'parameters':>15s} {'embedding share':>16s} {'tied':>5s}")
for cfg in (SMOLLM2_135M, LLAMA2_7B, LLAMA3_8B):
    n = param_count(cfg)
    vocab = cfg.vocab_size * cfg.d_model * (1 if cfg.tie_embeddings else 2)
    print(f"{cfg.name:24s} {n:15,d} {100 * vocab / n:15.1f}% {str(cfg.tie_embeddings):>5s}")

# %% [markdown]
# An independent count: build HF transformers' `LlamaForCausalLM` on small random configs (MHA,
# GQA, MQA, tied and untied) and count the numbers it stores. PyTorch lists a tied matrix once,
# so the two counts must agree exactly.

# %%
import dataclasses

from course.config import tiny
from course.model import hf_model_from_weights, random_weights

print(f"{'config':28s} {'tied':>5s} {'param_count':>12s} {'HF stores':>10s}")
for n_kv, tied in [(4, False), (2, False), (1, True)]:
    cfg = dataclasses.replace(tiny(n_kv_heads=n_kv), tie_embeddings=tied)
    hf = hf_model_from_weights(cfg, random_weights(cfg))
    stored = sum(p.numel() for p in hf.parameters())
    print(f"{cfg.name:28s} {str(tied):>5s} {param_count(cfg):12,d} {stored:10,d}")

# %% [markdown]
# ## FLOPs per token
# The matmul part of `flops_per_token` does not depend on the context; the attention part grows
# by the same amount for every key. Two calls one key apart give that amount, and taking it away
# from the call at context 1 leaves the matmul part. The picture shows how much of one decode
# step is attention as the context grows: a model with a small `d_model` gets there early.

# %%
from course.plot import Line, Marker

contexts = [2 ** i for i in range(7, 18)]  # 128 .. 131,072 tokens
lines = []
print(f"{'model':24s} {'matmul FLOPs':>15s} {'attention FLOPs per key':>24s}")
for cfg in (SMOLLM2_135M, LLAMA2_7B, LLAMA3_8B):
    per_key = flops_per_token(cfg, 2) - flops_per_token(cfg, 1)
    matmul = flops_per_token(cfg, 1) - per_key
    print(f"{cfg.name:24s} {matmul:15,d} {per_key:24,d}")
    share = [(flops_per_token(cfg, L) - matmul) / flops_per_token(cfg, L) for L in contexts]
    lines.append(Line(cfg.name, contexts, share))
at_2k = flops_per_token(SMOLLM2_135M, 2048)
print(f"SmolLM2-135M at 2,048 tokens of context: {at_2k / 1e6:.1f} MFLOP per token")
show_plot("attention_share", lines=lines,
          points=[Marker("SmolLM2 at 2k", 2048, lines[0].y[contexts.index(2048)])],
          xlabel="context length (tokens)", ylabel="attention's share of a decode step's FLOPs",
          title="Attention grows with the context, the matmuls do not", loglog=True)

# %% [markdown]
# ## RMSNorm
# The docstring's example, then your function against `torch.nn.functional.rms_norm` on random
# rows and on tiny rows, where `eps` decides the answer, and a bfloat16 input (the result
# should stay bfloat16).

# %%
import torch
import torch.nn.functional as F

from exercises.lesson01.layers import apply_rope, apply_rope_spec, rms_norm, rope_cos_sin

x = torch.tensor([3.0, 4.0])
print("rms_norm([3, 4], eps=0):", rms_norm(x, torch.ones(2), 0.0).tolist())
x = torch.randn(4, 16)
g = torch.rand(16) + 0.5
print(f"{'input':17s} {'max |yours - torch|':>20s} {'output rms':>11s} {'rms with eps=0':>15s}")
for name, inp in [("random rows", x), ("tiny rows (1e-6)", x * 1e-6)]:
    mine = rms_norm(inp, g, 1e-5)
    err = (mine - F.rms_norm(inp, (16,), g, eps=1e-5)).abs().max() / mine.abs().max()
    no_eps = rms_norm(inp, g, 0.0)
    print(f"{name:17s} {err:19.1e}* {mine.pow(2).mean().sqrt():11.2e} "
          f"{no_eps.pow(2).mean().sqrt():15.2e}")
print("* relative to the largest output. With eps the tiny rows shrink; without it they would be")
print("  blown up to the same size as the random ones.")
print("bfloat16 in ->", rms_norm(x.bfloat16(), g.bfloat16(), 1e-5).dtype)

# %% [markdown]
# ## RoPE
# The cos/sin tables have one row per position and `d_head` columns (each angle twice). Your
# vectorised `apply_rope` should match the slow pair-by-pair `apply_rope_spec` given in the same
# file, and position 0 should leave a vector as it was.

# %%
d_head = 64
positions = torch.arange(10)
cos, sin = rope_cos_sin(positions, d_head, 100000.0)
print("cos, sin:", tuple(cos.shape), tuple(sin.shape), cos.dtype)
q = torch.randn(2, 3, 10, d_head)  # [batch, heads, T, d_head]
print("max |apply_rope - apply_rope_spec| =", f"{(apply_rope(q, cos, sin) - apply_rope_spec(q, cos, sin)).abs().max():.2e}")
print("position 0 unchanged:", torch.allclose(apply_rope(q, cos, sin)[:, :, 0], q[:, :, 0]))

# %% [markdown]
# The point of rotating both queries and keys: the score of a query at position `m` and a key
# at position `n` depends only on `m - n`. Each row below puts the same two vectors at a pair of
# positions the same distance apart; the scores should agree to rounding.

# %%
qv, kv = torch.randn(1, 1, 1, d_head), torch.randn(1, 1, 1, d_head)


def score(m, n, theta=100000.0):
    cq, sq = rope_cos_sin(torch.tensor([m]), d_head, theta)
    ck, sk = rope_cos_sin(torch.tensor([n]), d_head, theta)
    return float((apply_rope(qv, cq, sq) * apply_rope(kv, ck, sk)).sum())


print(f"{'query pos':>9s} {'key pos':>8s} {'distance':>8s} {'q . k':>10s}")
for m, n in [(7, 3), (107, 103), (4007, 4003), (7, 0), (5007, 5000)]:
    print(f"{m:9d} {n:8d} {m - n:8d} {score(m, n):10.5f}")

# %% [markdown]
# A picture of the same fact: rotate one all-ones vector as the query and as the key, and watch
# their score as the distance between them grows. With a larger base `theta` the slow channel
# pairs turn more slowly, so the score changes less over long distances.

# %%
ones = torch.ones(1, 1, 1, d_head)
distances = list(range(0, 4001, 20))
lines = []
for theta in (10000.0, 100000.0):
    c, s = rope_cos_sin(torch.tensor(distances), d_head, theta)
    c0, s0 = rope_cos_sin(torch.tensor([0]), d_head, theta)
    rotated = apply_rope(ones.expand(1, 1, len(distances), d_head), c, s)[0, 0]
    key = apply_rope(ones, c0, s0)[0, 0, 0]
    lines.append(Line(f"theta = {theta:,.0f}", distances, (rotated @ key / d_head).tolist()))
show_plot("rope_distance", lines=lines, xlabel="distance between query and key (tokens)",
          ylabel="q . k / d_head (all-ones q and k)", title="RoPE: the score depends on distance",
          loglog=False)

# %% [markdown]
# ## One decoder layer
# A tiny random model (2 layers, 4 query heads, 2 KV heads). The layer keeps the shape of the
# residual stream, and it is causal: changing the last two tokens must leave the outputs of the
# first four untouched.

# %%
from exercises.lesson01.forward import decoder_layer, layer_weights, llama_forward

cfg = tiny()
weights = random_weights(cfg, seed=3)
x = torch.randn(1, 6, cfg.d_model)
out = decoder_layer(x, layer_weights(weights, 0), cfg, torch.arange(6))
changed = x.clone()
changed[0, 4:] += 1.0
out2 = decoder_layer(changed, layer_weights(weights, 0), cfg, torch.arange(6))
print("in:", tuple(x.shape), "-> out:", tuple(out.shape), out.dtype)
print("per-token change after editing tokens 4-5:",
      [f"{d:.1e}" for d in (out2 - out)[0].abs().amax(-1).tolist()])

# %% [markdown]
# ## The whole forward pass, checked against HF transformers
# First on tiny random models of each attention family, then on the real SmolLM2-135M: your
# logits against those of HF's `LlamaForCausalLM` built on the very same weights.

# %%
ids = torch.randint(0, cfg.vocab_size, (2, 9))
print(f"{'config':28s} {'logits':>16s} {'max |yours - HF|':>17s}")
for n_kv in (4, 2, 1):
    c = tiny(n_kv_heads=n_kv)
    w = random_weights(c, seed=1)
    with torch.no_grad():
        mine, theirs = llama_forward(w, c, ids), hf_model_from_weights(c, w)(ids).logits
    print(f"{c.name:28s} {str(tuple(mine.shape)):>16s} {(mine - theirs).abs().max():17.2e}")

# %% [markdown]
# The real model (the course's GGUF file, converted to float32 once and cached). The table is
# the model's top five guesses for the token after the prompt, from your forward pass; then
# every logit is compared with HF's (the lesson expects agreement to about `1e-4`), and the
# numbers stored in the real weights (the tied matrix once) with your `param_count`.

# %%
from course.model import load_config, load_hf_model, load_tokenizer, load_weights

real_cfg, real_weights, tokenizer = load_config(), load_weights(), load_tokenizer()
hf_model = load_hf_model()  # HF's LlamaForCausalLM, read from the same file
prompt = torch.tensor([tokenizer.encode("The capital of France is")])
with torch.no_grad():
    logits = llama_forward(real_weights, real_cfg, prompt)
    reference = hf_model(prompt).logits
print("prompt ids:", tuple(prompt.shape), "-> logits:", tuple(logits.shape))
probs = torch.softmax(logits[0, -1], -1)
top = probs.topk(5)
for p, i in zip(top.values.tolist(), top.indices.tolist()):
    print(f"  {tokenizer.decode([i])!r:14s} {p:6.3f}")
print(f"max |yours - HF| over all {logits.numel():,} logits: {(logits - reference).abs().max():.2e}")
stored = {t.data_ptr(): t.numel() for t in real_weights.values()}
print(f"numbers stored in the real weights: {sum(stored.values()):,}; "
      f"param_count says {param_count(real_cfg):,}")

# %% [markdown]
# ## Run the visible tests
# The same tests as `pytest exercises/lesson01` in a terminal. Your instructor's graders go
# further (random shapes against FlopCounterMode, bfloat16, a GPU speed check).

# %%
run_tests("lesson01")

# %% [markdown]
# # Lesson 16: Quantization: FP8, SmoothQuant, AWQ and an FP8 KV cache
#
# A notebook to try this lesson's pieces on **your own code** (`exercises/lesson16/`) while you
# write them. Read [the lesson](../learning/lesson16.md) first. Each cell below calls one of your
# functions; until you write it, the cell stops with `NotImplementedError` naming the section to
# read. Edit the file, re-run the cell: the new code runs (autoreload is on). The last cell runs
# the lesson's visible tests.

# %%
from autograder.lab import run_tests, setup, show_plot

setup("lesson16")

# %% [markdown]
# ## FP8 limits from the bits
# Your `fp8_limits` derives each format's range from its bit layout alone; the table puts it
# beside what torch reports for its float8 dtypes. The E4M3 maximum should read 448, not 240.

# %%
import torch

from exercises.lesson16.fp8 import (DTYPES, FORMATS, GRANULARITIES, fp8_dequantize, fp8_limits,
                                    fp8_quantize)

print(f"{'format':6} {'E, M, bias':>10} {'max':>9} {'torch max':>10} {'min normal':>11} "
      f"{'torch tiny':>11} {'min subnormal':>14}")
for fmt, (e_bits, m_bits, bias, _) in FORMATS.items():
    lim, info = fp8_limits(fmt), torch.finfo(DTYPES[fmt])
    print(f"{fmt:6} {f'{e_bits}, {m_bits}, {bias}':>10} {lim['max']:9g} {info.max:10g} "
          f"{lim['min_normal']:11.3e} {info.tiny:11.3e} {lim['min_subnormal']:14.3e}")

# %% [markdown]
# ## Scales and granularity
# Six tokens whose sizes span five orders of magnitude (row r is scaled by 10^(r - 5)), as
# activations of different tokens can. Each granularity gives a scale of a different shape. The
# error column is each row's largest error relative to that row's largest entry: with one
# scale for the whole tensor, the smallest row falls among E4M3's subnormals and loses most of
# its precision; one scale per token gives every row the whole range.

# %%
gen = torch.Generator().manual_seed(0)
sizes = torch.logspace(-5, 0, 6)[:, None]
x = torch.randn(6, 16, generator=gen) * sizes
print("row sizes (max |x| per row):", " ".join(f"{v:.0e}" for v in x.abs().amax(dim=1).tolist()))
for gran in GRANULARITIES:
    q8, s8 = fp8_quantize(x, "e4m3", gran)
    back = fp8_dequantize(q8, s8)
    rel = ((back - x).abs().amax(dim=1) / x.abs().amax(dim=1)).tolist()
    print(f"{gran:11} q {q8.dtype}, scale shape {str(tuple(s8.shape)):8}; "
          "row errors / row max: " + " ".join(f"{r:.3f}" for r in rel))

# %% [markdown]
# Why a scale at all: keys of size about 0.001 cast straight to E4M3 land among the subnormals
# and most of them come back as 0 or one step; with a scale they use the whole range.

# %%
small = torch.randn(1000, generator=gen) * 1e-3
direct = small.to(torch.float8_e4m3fn).float()
q, scale = fp8_quantize(small, "e4m3", "per_tensor")
scaled = fp8_dequantize(q, scale)
print(f"direct cast: {(direct == 0).float().mean():.0%} of values become 0, "
      f"max relative error {((direct - small).abs() / small.abs()).max():.2f}")
print(f"with a scale ({float(scale):.2e}): {(scaled == 0).float().mean():.0%} become 0, "
      f"max relative error {((scaled - small).abs() / small.abs()).max():.3f}")

# %% [markdown]
# ## SmoothQuant
# A layer whose input has three planted outlier channels. First the identity: smoothing must not
# change the layer's output (before rounding). Then the simulated W8A8 layer (`w8a8_linear`,
# given) with the smoothing strength alpha swept from 0 to 1: the error is relative to the exact
# output, and alpha = 0.5 splits the range evenly between x and W.

# %%
from course.plot import Line, Marker

from exercises.lesson16.smoothquant import smooth, smoothquant_scales, w8a8_linear

x = torch.randn(64, 128, generator=gen)
x[:, [7, 50, 99]] *= 60.0
w = torch.randn(96, 128, generator=gen) / 128**0.5
exact = x @ w.T
s = smoothquant_scales(x.abs().amax(0), w.abs().amax(0), 0.5)
xs, ws = smooth(x, w, s)
print(f"s: shape {tuple(s.shape)}, from {float(s.min()):.2f} to {float(s.max()):.2f}")
print(f"identity: max |x_s @ w_s.T - x @ w.T| = {(xs @ ws.T - exact).abs().max():.2e}")
print(f"largest |x| per channel: before {float(x.abs().amax()):.1f}, after "
      f"{float(xs.abs().amax()):.1f}; largest |w|: before {float(w.abs().amax()):.2f}, "
      f"after {float(ws.abs().amax()):.2f}")
plain = float((w8a8_linear(x, w) - exact).norm() / exact.norm())
alphas = [i / 10 for i in range(11)]
errors = []
for alpha in alphas:
    xs, ws = smooth(x, w, smoothquant_scales(x.abs().amax(0), w.abs().amax(0), alpha))
    errors.append(float((w8a8_linear(xs, ws) - exact).norm() / exact.norm()))
print(f"W8A8 relative error without smoothing: {plain:.4f}")
for alpha, err in zip(alphas, errors):
    print(f"alpha {alpha:.1f}: {err:.4f}")
show_plot("smoothquant_alpha", lines=[Line("smoothed", alphas, errors),
                                      Line("no smoothing", (0, 1), (plain, plain))],
          points=[Marker("alpha 0.5", 0.5, errors[5])],
          xlabel="migration strength alpha", ylabel="relative error of the W8A8 output",
          title="SmoothQuant on a layer with outlier channels", loglog=False)

# %% [markdown]
# ## Round-to-nearest with groups
# The lesson's example first: the group `[1, 2, 3, 4]` at 2 bits, whose range must be widened
# to include 0. Then a random weight at 3 and 4 bits: the largest error must stay within half a
# step of its group, and the mean error shrinks as groups get smaller (at the cost of more
# scales per weight: the bits column counts a 16-bit scale and a `bits`-bit zero per group).

# %%
from exercises.lesson16.awq import quantize_awq, quantize_rtn

g = quantize_rtn(torch.tensor([[1.0, 2.0, 3.0, 4.0]]), bits=2, group_size=4)
print(f"[1, 2, 3, 4] at 2 bits: q {g.q.tolist()}, scale {g.scale.item():.4f}, "
      f"zero {int(g.zero.item())}, back {[round(v, 3) for v in g.dequantize()[0].tolist()]}")

w = torch.randn(64, 512, generator=gen) / 512**0.5
sizes = [8, 16, 32, 64, 128, 256, 512]
curves = {}
for bits in (3, 4):
    curves[bits] = []
    for size in sizes:
        g = quantize_rtn(w, bits, size)
        err = (g.dequantize() - w).abs()
        half_step = (g.scale / 2).repeat_interleave(size, dim=1)
        assert (err <= half_step + 1e-6).all(), "an error above half a step"
        curves[bits].append(float(err.mean()))
print(f"{'group':>6} {'3-bit error':>12} {'4-bit error':>12} {'bits/weight at 4':>17}")
for i, size in enumerate(sizes):
    print(f"{size:6d} {curves[3][i]:12.2e} {curves[4][i]:12.2e} {4 + (16 + 4) / size:17.3f}")
show_plot("rtn_group_size", lines=[Line(f"{b}-bit RTN", sizes, curves[b]) for b in (3, 4)],
          xlabel="group size (weights per scale)", ylabel="mean |w_hat - w|",
          title="RTN error against group size", loglog=True)

# %% [markdown]
# ## AWQ
# A layer whose input has eight salient channels (twenty times louder than the rest). AWQ
# searches alpha on calibration tokens; the table compares the output error of RTN and AWQ on
# those tokens and on held-out ones. On calibration data AWQ can never lose (alpha = 0 is RTN).

# %%
d_in, d_out = 256, 128
loud = torch.ones(d_in)
loud[torch.randperm(d_in, generator=gen)[:8]] = 20.0
x = torch.randn(512, d_in, generator=gen) * loud
x_cal, x_test = x[:256], x[256:]
w = torch.randn(d_out, d_in, generator=gen) / d_in**0.5


def output_error(x, w_hat):
    return float(((x @ w_hat.T - x @ w.T) ** 2).mean())


print(f"{'bits':>4} {'alpha':>6} {'RTN calib':>10} {'AWQ calib':>10} {'RTN held-out':>13} "
      f"{'AWQ held-out':>13}")
for bits in (3, 4):
    rtn = quantize_rtn(w, bits, 64).dequantize()
    awq = quantize_awq(w, x_cal, bits, 64, n_grid=20)
    print(f"{bits:4d} {awq.alpha:6.2f} {output_error(x_cal, rtn):10.2e} "
          f"{output_error(x_cal, awq.dequantize()):10.2e} {output_error(x_test, rtn):13.2e} "
          f"{output_error(x_test, awq.dequantize()):13.2e}")
print("input scale s of the salient channels (4 bits):",
      [round(v, 2) for v in awq.input_scale[loud > 1].tolist()])

# %% [markdown]
# The lesson runs the same comparison on every linear layer of SmolLM2-135M and scores the
# model's next-token loss on held-out text (section "The experiment on the real model"); its
# code block runs as it is once your functions pass (it loads the model and quantizes all 210
# matrices, so it takes a while on a CPU).
#
# ## An FP8 KV cache
# Write keys of very different sizes into an FP8 cache (one scale per token and KV head), read
# them back, and compare attention over them with attention over the originals (the query is
# divided by the keys' size, so the softmax stays soft at every size). The relative error of the
# keys should stay within 1/16 of a row's largest entry at every size.

# %%
from exercises.lesson16.kv_fp8 import fp8_kv_read, fp8_kv_write, kv_cache_bytes

n_slots, n_kv, d_head, n = 32, 2, 64, 20
q = torch.randn(n_kv, 1, d_head, generator=gen)
print(f"{'magnitude':>9} {'max |k_hat - k| / max |k|':>26} {'attention rel. error':>21}")
for magnitude in (1e-3, 1e-1, 1.0, 1e1, 1e3):
    cache = torch.zeros(n_slots, n_kv, d_head, dtype=torch.float8_e4m3fn)
    scales = torch.ones(n_slots, n_kv)
    k = torch.randn(n, n_kv, d_head, generator=gen) * magnitude
    v = torch.randn(n, n_kv, d_head, generator=gen)
    slots = torch.randperm(n_slots, generator=gen)[:n]
    fp8_kv_write(cache, scales, k, slots)
    k_hat = fp8_kv_read(cache, scales, slots, torch.float32)
    q_m = q / magnitude / d_head**0.5                       # [n_kv, 1, d_head]
    out = torch.softmax(q_m @ k.permute(1, 2, 0), -1) @ v.transpose(0, 1)
    out_hat = torch.softmax(q_m @ k_hat.permute(1, 2, 0), -1) @ v.transpose(0, 1)
    print(f"{magnitude:9.0e} {float((k_hat - k).abs().max() / k.abs().max()):26.4f} "
          f"{float((out_hat - out).norm() / out.norm()):21.4f}")
print("cache", tuple(cache.shape), cache.dtype, "| scales", tuple(scales.shape), scales.dtype)

# %% [markdown]
# What the cache costs: bytes of one K cache (V is the same again) for Llama-3-8B's 8 KV heads
# of 128, in bf16 and in FP8 with the scales, and how many more tokens fit in the same memory.

# %%
from course.config import LLAMA3_8B

for tokens in (1, 4096, 131072):
    bf16 = kv_cache_bytes(tokens, LLAMA3_8B.n_kv_heads, LLAMA3_8B.d_head, fp8=False)
    fp8 = kv_cache_bytes(tokens, LLAMA3_8B.n_kv_heads, LLAMA3_8B.d_head, fp8=True)
    print(f"{tokens:7d} tokens, one layer's K: bf16 {bf16:>12,} B, fp8 {fp8:>12,} B, "
          f"{bf16 / fp8:.2f}x the tokens")

# %% [markdown]
# ## Run the visible tests
# The same tests as `pytest exercises/lesson16` in a terminal. Your instructor's graders go
# further (hypothesis over shapes and formats, the real model's loss, a GPU speed check).

# %%
run_tests("lesson16")

# %% [markdown]
# # Lesson 15: Weight-only INT4 GEMM (W4A16)
#
# A notebook to try this lesson's pieces on **your own code** (`exercises/lesson15/`) while you
# write them. Read [the lesson](../learning/lesson15.md) first. Each cell below calls one of your
# functions; until you write it, the cell stops with `NotImplementedError` naming the section to
# read. Edit the file, re-run the cell: the new code runs (autoreload is on). Everything runs on
# the CPU, torch's own int4 kernel included. The last cell runs the lesson's visible tests.

# %%
from autograder.lab import run_tests, setup, show_plot

setup("lesson15")

# %% [markdown]
# ## Why 4-bit weights speed up batch-1 decode
# The bytes of a 4096 x 4096 weight in BF16 and in int4 with one scale and one zero per group,
# counted by your `w4_bytes` for a few group sizes and scale widths, and the time to read them at
# the H200's datasheet bandwidth.

# %%
import hardware_fixtures as hf

from exercises.lesson15.w4a16 import w4_bytes

H200 = hf.load("h200_sxm")
BW, PEAK = H200.memory_bandwidth_bytes_per_s, H200.peak_flops("bf16")
N = K = 4096
bf16 = 2 * N * K
print(f"BF16 weight: {bf16:,} B, {bf16 / BW * 1e6:.2f} us at {BW / 1e12:.1f} TB/s")
print(f"{'int4 layout':<36} | {'bytes':>11} | bits/weight | BF16 / W4 | read time")
for label, g, sb, zb in [("groups of 128, BF16 scale and zero", 128, 2, 2),
                         ("groups of 128, FP32 scale and zero", 128, 4, 4),
                         ("groups of 64, BF16 scale and zero", 64, 2, 2),
                         ("groups of 32, BF16 scale and zero", 32, 2, 2),
                         ("one group per row, BF16", -1, 2, 2)]:
    nbytes = w4_bytes(N, K, g, sb, zb)
    print(f"{label:<36} | {nbytes:11,} | {8 * nbytes / (N * K):11.3f} | {bf16 / nbytes:9.2f} | "
          f"{nbytes / BW * 1e6:.2f} us")

# %% [markdown]
# ## The saving lasts while the product is memory-bound
# With M tokens, `x @ W.T` does `2 M N K` FLOPs over the same weight bytes, so its intensity
# grows with M: the plot draws it for the BF16 weight and for the int4 one (groups of 128),
# against the H200's ridge. Below the ridge the product's time is the weight read, where 4-bit
# weights help; the int4 product reaches the ridge at fewer tokens, and past the ridge the
# arithmetic sets the time, so fewer bytes buy nothing more.

# %%
from course.plot import Line, Marker

w4 = w4_bytes(N, K, 128)
tokens = [2 ** i for i in range(11)]
ridge = PEAK / BW  # FLOP/byte where the H200's two roofs meet (lesson 11)
lines, marks = [], []
for label, nbytes in [("BF16 weight", bf16), ("W4A16, g = 128", w4)]:
    per_token = 2 * N * K / nbytes  # FLOP/byte that each token adds
    print(f"{label}: {per_token:.2f} FLOP/byte per token; reaches the ridge "
          f"({ridge:.0f} FLOP/byte) at about {ridge / per_token:.0f} tokens")
    lines.append(Line(label, tokens, [m * per_token for m in tokens]))
    marks.append(Marker(f"{label}: {ridge / per_token:.0f} tokens", ridge / per_token, ridge))
lines.append(Line("H200 ridge, BF16", (tokens[0], tokens[-1]), (ridge, ridge)))
data = show_plot("w4_intensity", lines=lines, points=marks, xlabel="tokens M",
                 ylabel="arithmetic intensity (FLOP/byte)",
                 title="4096 x 4096 projection: intensity against tokens", loglog=True)

# %% [markdown]
# ## Packing eight nibbles into an int32
# `[1, 2, ..., 8]` packs to `0x87654321`, a negative int32 because bit 31 is set. Shifting that
# word right by 28 copies the sign bit in (the trap); masking with `0xF` gives back 8. Then a
# round trip on random nibbles, and K = 12 refused.

# %%
import torch

from exercises.lesson15.int4_pack import pack_int4, unpack_int4

word = pack_int4(torch.arange(1, 9, dtype=torch.uint8))
print("packed:", word.tolist(), f"= 0x{int(word) & 0xFFFFFFFF:08X}", word.dtype)
print("word >> 28:", int(word >> 28), "| (word >> 28) & 0xF:", int((word >> 28) & 0xF))
print("unpacked:", unpack_int4(word).tolist())
g = torch.Generator().manual_seed(15)
q = torch.randint(0, 16, (64, 256), dtype=torch.uint8, generator=g)
packed = pack_int4(q)
print(f"q {tuple(q.shape)} {q.dtype} -> packed {tuple(packed.shape)} {packed.dtype}; "
      f"round trip exact: {torch.equal(unpack_int4(packed), q)}; "
      f"negative words: {int((packed < 0).sum())} of {packed.numel()}")
try:
    pack_int4(torch.zeros(2, 12, dtype=torch.uint8))
except ValueError as exc:
    print("K = 12:", exc)

# %% [markdown]
# ## Round-to-nearest with groups and zero points
# The lesson's example first (`[1, 2, 3, 4]` at 2 bits), then the error bound on random
# weights: every entry must come back within half a step of its group, asymmetric and
# symmetric. The largest ratio of error to half a step must not exceed 1 (up to float
# rounding). A group of zeros must come back as zeros, not NaN.

# %%
from exercises.lesson15.rtn import dequantize, quantize_rtn

q2, s2, z2 = quantize_rtn(torch.tensor([[1.0, 2.0, 3.0, 4.0]]), bits=2, group_size=-1)
back = dequantize(q2, s2, z2, -1)
print(f"[1, 2, 3, 4] at 2 bits: q {q2.tolist()}, scale {float(s2):.4f}, zero {float(z2):g}, "
      f"back {[round(v, 4) for v in back[0].tolist()]}")
w = torch.randn(64, 512, generator=g)
for symmetric in (False, True):
    qq, scales, zeros = quantize_rtn(w, 4, 128, symmetric)
    err = (dequantize(qq, scales, zeros, 128) - w).abs()
    half_step = scales.repeat_interleave(128, dim=1) / 2
    print(f"{'symmetric' if symmetric else 'asymmetric'}: q {tuple(qq.shape)} {qq.dtype} in "
          f"[{int(qq.min())}, {int(qq.max())}], scales {tuple(scales.shape)}, "
          f"max error / half step = {float((err / half_step).max()):.4f}")
w0 = torch.zeros(2, 8)
qz, sz, zz = quantize_rtn(w0, 4, 8)
print("all-zero groups: scales", sz.flatten().tolist(), "back to zeros:",
      bool((dequantize(qz, sz, zz, 8) == 0).all()))

# %% [markdown]
# ## Why groups
# Rows of 1,024 unit-sized weights, with and without one outlier of 30 per row (the lesson's
# experiment). The mean squared error of 4-bit RTN against the group size, up to one group per
# row, next to the bits each weight costs with BF16 scales and zeros. Without outliers, smaller
# groups help a little; with them, they confine the outlier's large step to its own group.

# %%
rows, k = 32, 1024
clean = torch.randn(rows, k, generator=g)
spiky = clean.clone()
spiky[torch.arange(rows), torch.randint(0, k, (rows,), generator=g)] = 30.0
sizes = [32, 64, 128, 256, 512, 1024]
mse = {"no outlier": [], "one outlier of 30 per row": []}
print(f"{'group':>5} | bits/weight | MSE, no outlier | MSE, one outlier per row")
for gs in sizes:
    for label, weight in (("no outlier", clean), ("one outlier of 30 per row", spiky)):
        qq, scales, zeros = quantize_rtn(weight, 4, gs)
        mse[label].append(float((dequantize(qq, scales, zeros, gs) - weight).pow(2).mean()))
    print(f"{gs:5d} | {8 * w4_bytes(rows, k, gs) / (rows * k):11.3f} | "
          f"{mse['no outlier'][-1]:15.4f} | {mse['one outlier of 30 per row'][-1]:.4f}")
print(f"outliers, one group per row over groups of 128: "
      f"{mse['one outlier of 30 per row'][-1] / mse['one outlier of 30 per row'][2]:.1f}x the error")
data = show_plot("rtn_error_vs_group", lines=[Line(lbl, sizes, v) for lbl, v in mse.items()],
                 xlabel="group size (weights per scale)", ylabel="mean squared error",
                 title="4-bit RTN error against group size", loglog=True)

# %% [markdown]
# ## A W4A16 linear layer
# Your `w4a16_matmul` against the dequantized weight multiplied in plain torch (the same
# computation in float32; BF16 precision in BF16), and against the original float weight
# (that gap is the quantization error, not a bug). `W4Linear` (given) wraps the pieces.

# %%
from exercises.lesson15.w4a16 import W4Linear, w4a16_matmul

weight = torch.randn(48, 256, generator=g) / 16
layer = W4Linear.from_weight(weight, group_size=64)
x = torch.randn(3, 256, generator=g)
y = w4a16_matmul(x, layer.packed, layer.scales, layer.zeros, 64)
ref = x @ layer.dequantize().T
print(f"x {tuple(x.shape)} -> y {tuple(y.shape)} {y.dtype}")
print(f"float32, max |y - x @ dequant(W).T| = {float((y - ref).abs().max()):.1e}")
yb = layer(x.bfloat16())
print(f"bfloat16 input -> {yb.dtype}, max |y - reference| = {float((yb.float() - ref).abs().max()):.1e}")
print(f"against the unquantized weight: max |y - x @ W.T| = {float((y - x @ weight.T).abs().max()):.1e} "
      f"(outputs of size about {float((x @ weight.T).abs().mean()):.2f})")
print(f"bytes: {layer.nbytes():,} as int4 against {2 * weight.numel():,} in BF16")

# %% [markdown]
# ## Torch's int4 kernel layout
# Your two conversions on the lesson's small examples, then the whole layer through torch's CPU
# int4 kernel (it wants N a multiple of 16): if your scales and zeros are converted right, its
# output equals `x @ dequant(W).T`.

# %%
from exercises.lesson15.w4a16 import int4pack_mm, tinygemm_nibbles, tinygemm_scales_and_zeros

nib = tinygemm_nibbles(pack_int4(torch.arange(16, dtype=torch.uint8)[None]))
print("entries 0..15 as torch's bytes:", [f"0x{b:02X}" for b in nib[0].tolist()])
sz = tinygemm_scales_and_zeros(torch.tensor([[2.0, 0.5]]), torch.tensor([[3.0, 8.0]]))
print(f"scales [2, 0.5], zeros [3, 8] -> {tuple(sz.shape)} {sz.dtype}: {sz.float().tolist()}")
weight16, sz16 = layer.int4pack(inner_k_tiles=2, dtype=torch.float32)
out = int4pack_mm(x, weight16, sz16, 64)
print(f"torch's int4 kernel: {tuple(out.shape)}, max |kernel - x @ dequant(W).T| = "
      f"{float((out - ref).abs().max()):.1e}")

# %% [markdown]
# ## Run the visible tests
# The same tests as `pytest exercises/lesson15` in a terminal. Your instructor's graders go
# further (bit-exact packing of every nibble, groups that are all one sign, the `repeat` slip,
# and on a GPU torch's int4 kernel timed against the BF16 product).

# %%
run_tests("lesson15")

# %% [markdown]
# # Lesson 08: Arithmetic intensity
#
# A notebook to try this lesson's pieces on **your own code** (`exercises/lesson08/`) while you
# write them. Read [the lesson](../learning/lesson08.md) first. Each cell below calls one of your
# functions; until you write it, the cell stops with `NotImplementedError` naming the section to
# read. Edit the file, re-run the cell: the new code runs (autoreload is on). The last cell runs
# the lesson's visible tests.

# %%
from autograder.lab import run_tests, setup, show_plot

setup("lesson08")

# %% [markdown]
# ## FLOPs per byte
# The ridge point of an H100 SXM from its fixture: peak dense bf16 FLOP/s over memory bandwidth.
# An operator below it is memory-bound, above it compute-bound.

# %%
import hardware_fixtures

H100 = hardware_fixtures.load("h100_sxm")
PEAK, BW = H100.peak_flops("bf16"), H100.memory_bandwidth_bytes_per_s
RIDGE = PEAK / BW
print(f"H100 SXM: {PEAK / 1e12:.1f} TFLOP/s bf16 / {BW / 1e12:.2f} TB/s = {RIDGE:.0f} FLOP/byte")

# %% [markdown]
# ## Matrix multiplication
# Your `matmul_cost` on a small product, checked against torch's own FLOP counter and the sizes
# of the three tensors; then the decode case, one token through a 4096 x 4096 bf16 weight.

# %%
import torch

from course.counting import count_flops

from exercises.lesson08.intensity import attention_cost, elementwise_cost, matmul_cost

a, b = torch.randn(5, 7), torch.randn(7, 3)
cost = matmul_cost(5, 7, 3, 4, 4, 4)
c = a @ b
print(f"5x7 @ 7x3 float32: FLOPs {cost.flops} (torch counts {count_flops(torch.mm, a, b)}), "
      f"bytes {cost.bytes} (tensors hold {a.nbytes + b.nbytes + c.nbytes})")
gemv = matmul_cost(1, 4096, 4096, 2, 2, 2)
print(f"decode GEMV: {gemv.flops:,} FLOPs over {gemv.bytes:,} B = {gemv.intensity:.4f} FLOP/byte")
print(f"  on an H100: bytes take {gemv.bytes / BW * 1e6:.1f} us, FLOPs {gemv.flops / PEAK * 1e6:.3f} us")
print(f"  4-bit weights: {matmul_cost(1, 4096, 4096, 2, 0.5, 2).intensity:.2f} FLOP/byte")

# %% [markdown]
# Intensity of the same layer as the number of tokens grows (prefill, or a batch of decodes):
# about S for small S, levelling off at d / 2. The flat line is the H100's ridge point; the
# printout finds the first S past it.

# %%
from course.plot import Line, Marker

tokens = [2**k for k in range(0, 15)]
intensity = [matmul_cost(s, 4096, 4096, 2, 2, 2).intensity for s in tokens]
for s, i in zip(tokens, intensity):
    print(f"S = {s:6d}: {i:8.1f} FLOP/byte")
crossing = next(s for s in range(1, 10**5) if matmul_cost(s, 4096, 4096, 2, 2, 2).intensity > RIDGE)
print(f"compute-bound on an H100 from S = {crossing} tokens")
show_plot("intensity_vs_tokens",
          lines=[Line("4096 x 4096 bf16 layer", tokens, intensity),
                 Line("H100 ridge point", (tokens[0], tokens[-1]), (RIDGE, RIDGE))],
          points=[Marker(f"S = {crossing}", crossing, RIDGE)],
          xlabel="tokens per weight read (S)", ylabel="intensity (FLOP/byte)",
          title="A linear layer's intensity against tokens")

# %% [markdown]
# ## Attention, fused and unfused
# A small case against torch's FLOP counter (the two matrix products of
# `softmax(Q K^T) V`), then the lesson's prompt of 4096 tokens, 32 heads of 128, bf16, and a
# decode step over the same 4096 keys: only prefill is rescued by fusion.

# %%
q, k, v = torch.randn(2, 3, 4, 8), torch.randn(2, 3, 6, 8), torch.randn(2, 3, 6, 8)
counted = count_flops(lambda: torch.softmax(q @ k.transpose(-1, -2), -1) @ v)
print(f"small case: attention_cost says {attention_cost(2, 3, 4, 6, 8, 4, True).flops} FLOPs, "
      f"torch counts {counted}")
print(f"{'case':24} {'FLOPs':>18} {'bytes':>16} {'FLOP/byte':>10} {'bound by':>8}")
for name, q_len, fused in [("prefill 4096, fused", 4096, True), ("prefill 4096, unfused", 4096, False),
                           ("decode over 4096, fused", 1, True), ("decode, unfused", 1, False)]:
    cost = attention_cost(1, 32, q_len, 4096, 128, 2, fused)
    bound = "compute" if cost.intensity > RIDGE else "memory"
    print(f"{name:24} {cost.flops:18,} {cost.bytes:16,} {cost.intensity:10.1f} {bound:>8}")

# %% [markdown]
# ## Elementwise chains
# The SwiGLU gate `silu(gate) * up`, and chains of n one-input operators: fused, the bytes fall
# by the factor in the last column while the FLOPs stay put, and the intensity stays far below
# any ridge point.

# %%
numel = 4096 * 14336
print(f"{'chain':22} {'unfused B':>14} {'fused B':>14} {'ratio':>6} {'fused FLOP/byte':>16}")
for name, ops in [("silu(gate) * up", [1, 2]), ("2 one-input ops", [1] * 2),
                  ("4 one-input ops", [1] * 4), ("8 one-input ops", [1] * 8)]:
    unf, fus = elementwise_cost(numel, ops, 2, False), elementwise_cost(numel, ops, 2, True)
    print(f"{name:22} {unf.bytes:14,} {fus.bytes:14,} {unf.bytes / fus.bytes:6.2f} "
          f"{fus.intensity:16.3f}")

# %% [markdown]
# ## The roofline, with this lesson's operators on it
# Each operator sits on the roof at its intensity: the time it can take at best is its FLOPs
# over the height of the roof there. Everything left of the ridge point waits for memory.

# %%
kernels = {
    "decode GEMV": matmul_cost(1, 4096, 4096, 2, 2, 2),
    "GEMV, 4-bit weights": matmul_cost(1, 4096, 4096, 2, 0.5, 2),
    "batch 64 decode": matmul_cost(64, 4096, 4096, 2, 2, 2),
    "prefill 4096": matmul_cost(4096, 4096, 4096, 2, 2, 2),
    "attention fused": attention_cost(1, 32, 4096, 4096, 128, 2, True),
    "attention unfused": attention_cost(1, 32, 4096, 4096, 128, 2, False),
    "decode attention": attention_cost(1, 32, 1, 4096, 128, 2, True),
    "SwiGLU gate, fused": elementwise_cost(numel, [1, 2], 2, True),
}
xs = sorted([0.05 * 2**k for k in range(18)] + [RIDGE])  # the corner of the roof included
roof = [min(PEAK, x * BW) / 1e12 for x in xs]
points = [Marker(name, c.intensity, min(PEAK, c.intensity * BW) / 1e12) for name, c in kernels.items()]
for name, c in kernels.items():
    print(f"{name:22} {c.intensity:9.2f} FLOP/byte -> at best "
          f"{min(PEAK, c.intensity * BW) / 1e12:7.2f} TFLOP/s")
show_plot("roofline", lines=[Line("H100 SXM roof (bf16)", xs, roof)], points=points,
          xlabel="arithmetic intensity (FLOP/byte)", ylabel="attainable TFLOP/s",
          title="The roofline and this lesson's operators")

# %% [markdown]
# ## Fusing RMSNorm and RoPE
# Your `fused_rmsnorm_rope` against HF's own pair of operators (`course.hf_layers`), in float32
# and bf16, on a few heads of SmolLM2's shape (d_head 64): the max error should be a rounding step
# or two of the dtype, since the two round at slightly different places.

# %%
from course.config import SMOLLM2_135M
from course.hf_layers import hf_apply_rope, hf_rms_norm, hf_rope_cos_sin

from exercises.lesson08.fusion import fused_rmsnorm_rope, rmsnorm_rope_bytes

cos, sin = hf_rope_cos_sin(SMOLLM2_135M, torch.arange(5, 12))  # 7 tokens at positions 5..11
for dtype in (torch.float32, torch.bfloat16):
    x = (torch.randn(2, 3, 7, 64) * 4).to(dtype)
    weight = (1 + 0.1 * torch.randn(64)).to(dtype)
    mine = fused_rmsnorm_rope(x, weight, cos, sin, 1e-5)
    normed = hf_rms_norm(x, weight, 1e-5)
    theirs = hf_apply_rope(normed, normed, cos, sin)[0]
    err = (mine.float() - theirs.float()).abs().max().item()
    step = torch.finfo(dtype).eps * theirs.float().abs().max().item()
    print(f"{str(dtype):15} shape {tuple(mine.shape)} {mine.dtype}: max |mine - HF| = {err:.2e}"
          f" (one rounding step at the largest output: {step:.2e})")

# %% [markdown]
# Is it one graph? TorchDynamo (the front end of `torch.compile`) traces your function without
# compiling it: a graph break would show up as more than one graph, with its reason.

# %%
x = torch.randn(1, 2, 4, 64)
report = torch._dynamo.explain(fused_rmsnorm_rope)(x, torch.ones(64), cos[:4], sin[:4], 1e-5)
print(f"graphs: {report.graph_count}, graph breaks: {report.graph_break_count}, "
      f"ops in the graph: {report.op_count}")
for reason in report.break_reasons:
    print("break:", reason.reason)

# %% [markdown]
# ## What fusion saves
# Your byte counts against a count of the bytes every op of the eager chain really reads and
# writes on this CPU (`course.traffic`), then the lesson's prefill of 16384 tokens x 32 heads x
# 128 in bf16, and the least time each version needs at the H200 copy rate the lesson quotes.

# %%
from course.traffic import count_traffic

for dtype in (torch.float32, torch.bfloat16):
    x = torch.randn(1, 2, 4, 64).to(dtype)
    weight = torch.ones(64, dtype=dtype)

    def eager(x=x, weight=weight):
        normed = hf_rms_norm(x, weight, 1e-6)
        return hf_apply_rope(normed, normed[:, :0], cos[:4], sin[:4])[0]

    counted = count_traffic(eager)
    print(f"{str(dtype):15} unfused: yours {rmsnorm_rope_bytes(1, 2, 4, 64, x.element_size(), False):,} B,"
          f" counted {counted.total_bytes:,} B")

COPY_H200 = 4.18e12  # bytes/s, the lesson's measured H200 copy rate
fused = rmsnorm_rope_bytes(1, 32, 16384, 128, 2, fused=True)
unfused = rmsnorm_rope_bytes(1, 32, 16384, 128, 2, fused=False)
print(f"16384 x 32 x 128 bf16: fused {fused:,} B ({fused / COPY_H200 * 1e6:.0f} us), "
      f"unfused {unfused:,} B ({unfused / COPY_H200 * 1e3:.2f} ms), {unfused / fused:.1f} x")

# %% [markdown]
# ## Run the visible tests
# The same tests as `pytest exercises/lesson08` in a terminal. Your instructor's graders go
# further (hypothesis over shapes and formats, hard inputs for the fused function, and a GPU
# timing of the compiled kernel against the eager chain).

# %%
run_tests("lesson08")

# %% [markdown]
# # Lesson 11: The roofline
#
# A notebook to try this lesson's pieces on **your own code** (`exercises/lesson11/`) while you
# write them. Read [the lesson](../learning/lesson11.md) first. Each cell below calls one of your
# functions; until you write it, the cell stops with `NotImplementedError` naming the section to
# read. Edit the file, re-run the cell: the new code runs (autoreload is on). Everything here is
# arithmetic on the spec sheets in `hardware_fixtures/`: no GPU needed. The last cell runs the
# lesson's visible tests.

# %%
from autograder.lab import run_tests, setup, show_plot

setup("lesson11")

# %% [markdown]
# ## The model
# The roof of an H100 SXM at a few intensities, from 1/8 FLOP per byte to 4096. Watch the rate
# grow in proportion to the intensity (the bandwidth roof), then stop growing once it meets the
# compute peak. The last line types the bandwidth in TB/s, without its 10^12: the function
# refuses it and says why.

# %%
import hardware_fixtures as hf

from exercises.lesson11.roofline import attainable_flops

H100 = hf.load("h100_sxm")
PEAK, BW = H100.peak_flops("bf16"), H100.memory_bandwidth_bytes_per_s
print(f"{H100.name}: bf16 peak {PEAK / 1e12:.1f} TFLOP/s, DRAM {BW / 1e12:.2f} TB/s")
print(f"{'FLOP/byte':>10} | {'roof (TFLOP/s)':>14} | limited by")
for ai in [1 / 8, 1, 16, 64, 256, 1024, 4096]:
    roof = attainable_flops(ai, PEAK, BW)
    print(f"{ai:10g} | {roof / 1e12:14.2f} | {'bandwidth' if roof < PEAK else 'compute peak'}")
try:
    attainable_flops(1.0, PEAK, 3.35)
except ValueError as exc:
    print("\nbandwidth given as 3.35:", exc)

# %% [markdown]
# ## Ridge points of real GPUs
# Where the two roofs meet, for every GPU in the course's fixtures and each of the two dtypes the
# lesson compares. Compare the H100 row with the H200 row (same tensor cores, faster memory) and
# the BF16 column with the FP8 one (twice the peak over the same bytes).

# %%
from exercises.lesson11.roofline import ridge_point

print(f"{'GPU':<28} | {'BF16 ridge':>10} | {'FP8 ridge':>10}   (FLOP/byte)")
for name in hf.names():
    spec = hf.load(name)
    cells = []
    for dt in ("bf16", "fp8"):
        cells.append(f"{ridge_point(spec, dt):10.0f}" if dt in spec.peak_flops_per_s
                     else f"{'(none)':>10}")
    print(f"{spec.name:<28} | {cells[0]} | {cells[1]}")

# %% [markdown]
# ## Counting the operators of a transformer layer
# The operators of the lesson's table, counted by your `gemm_op`, `softmax_op` and `sdpa_op`,
# each classified against the H100's BF16 ridge by your `classify`, with the time the roof
# allows (FLOPs over the roof's rate). The softmax row is one row of 4096 scores.

# %%
from exercises.lesson11.ops import gemm_op, sdpa_op, softmax_op
from exercises.lesson11.roofline import classify

d = 4096
table = [
    ("decode GEMV, 1 token", gemm_op(1, d, d, "bf16")),
    ("decode GEMM, 16 sequences", gemm_op(16, d, d, "bf16")),
    ("prefill GEMM, 2048 tokens", gemm_op(2048, d, d, "bf16")),
    ("softmax, 1 x 4096", softmax_op(1, 4096, "bf16")),
    ("decode attention, 32 heads, 4096 cached", sdpa_op(1, 32, 1, 4096, 128, "bf16")),
    ("prefill attention, fused, 4096 tokens", sdpa_op(1, 32, 4096, 4096, 128, "bf16")),
    ("prefill GEMM, 2048 tokens, FP32", gemm_op(2048, d, d, "fp32")),
]
print(f"ridge: {ridge_point(H100, 'bf16'):.0f} FLOP/byte in bf16\n")
print(f"{'operator':<40} | {'FLOPs':>9} | {'bytes':>9} | {'FLOP/B':>7} | {'side':<7} | time at roof")
for label, op in table:
    roof = attainable_flops(op.intensity, H100.peak_flops(op.dtype), BW)
    print(f"{label:<40} | {op.flops:9.3g} | {op.nbytes:9.3g} | {op.intensity:7.1f} | "
          f"{classify(op, H100):<7} | {op.flops / roof * 1e6:9.3f} us")

# %% [markdown]
# ## Where prefill crosses the ridge
# A GEMM of `T` tokens through a 4096 x 4096 weight, for `T` from 1 to 8192: its intensity
# against `T`, with the ridges of the H100 and the H200 drawn flat. The first `T` your
# `classify` calls compute-bound on each GPU is printed; the faster memory of the H200 moves it
# left.

# %%
from course.plot import Line, Marker

H200 = hf.load("h200_sxm")
tokens = [2 ** i for i in range(14)]
intensity = [gemm_op(t, d, d, "bf16").intensity for t in tokens]
markers = []
for spec in (H100, H200):
    first = next(t for t in range(1, 8193) if classify(gemm_op(t, d, d, "bf16"), spec) == "compute")
    print(f"{spec.name}: compute-bound from T = {first} tokens")
    markers.append(Marker(f"{spec.key}: T = {first}", first, gemm_op(first, d, d, "bf16").intensity))
data = show_plot("prefill_intensity",
          lines=[Line("GEMM T x 4096 x 4096, bf16", tokens, intensity)]
          + [Line(f"{s.key} ridge", (1, tokens[-1]), (ridge_point(s, "bf16"),) * 2)
             for s in (H100, H200)],
          points=markers, xlabel="tokens T", ylabel="arithmetic intensity (FLOP/byte)",
          title="Prefill GEMM intensity against the ridge", loglog=True)

# %% [markdown]
# ## A report from measured times
# No GPU here, so the times are made up from the H100 fixture's own calibration (measured with
# `course.bench`): memory-bound operators move bytes at the measured copy rate, the decode
# attention at its measured rate, the GEMMs run at the measured BF16 GEMM rate. Look at the
# fraction column: how close each operator comes to its roof, and on which side it sits.

# %%
from exercises.lesson11.roofline import roofline_report

cal = H100.calibration
ops = [gemm_op(1, 8192, 8192, "bf16"), gemm_op(8192, 8192, 8192, "bf16"),
       softmax_op(65536, 1024, "bf16"), sdpa_op(64, 32, 1, 4096, 128, "bf16")]
times = [ops[0].nbytes / cal["copy_bytes_per_s"], ops[1].flops / cal["bf16_gemm_flops_per_s"],
         ops[2].nbytes / cal["copy_bytes_per_s"], ops[3].nbytes / cal["sdpa_decode_bytes_per_s"]]
report = roofline_report(ops, times, H100)
print(f"{'operator':<28} | {'FLOP/B':>7} | {'time':>9} | {'achieved':>13} | {'roof':>13} | "
      f"fraction | side")
for row in report:
    print(f"{row.name:<28} | {row.intensity:7.1f} | {row.time_s * 1e6:6.1f} us | "
          f"{row.achieved_flops / 1e12:7.2f} TFLOP/s | {row.roof_flops / 1e12:7.2f} TFLOP/s | "
          f"{row.fraction:8.2f} | {row.bound}")

# %% [markdown]
# ## A point above its roof
# The same 8192^3 GEMM timed with a host clock around an asynchronous launch, without a
# synchronize: say the clock read 20 us. The report must refuse it and name the operator,
# because no kernel runs faster than its roof.

# %%
from course.bench import RooflineViolation

try:
    roofline_report([ops[1]], [20e-6], H100)
except RooflineViolation as exc:
    print("refused:", exc)
else:
    print("accepted a point above its roof: roofline_report should raise RooflineViolation")

# %% [markdown]
# ## The plot
# Your `plot_roofline` draws the report: the bandwidth diagonal, the BF16 roof, and one dot per
# operator. An FP8 GEMM at the FP8 calibration rate is added, so a second, higher compute roof
# appears. The list printed under the figure is the data your function drew.

# %%
from dataclasses import replace

from IPython.display import Image, display

from autograder.lab import figure_dir
from exercises.lesson11.roofline_plot import plot_roofline

fp8 = replace(gemm_op(8192, 8192, 8192, "fp8"), name="gemm 8192^3 fp8")
mixed = report + roofline_report([fp8], [fp8.flops / cal["fp8_gemm_flops_per_s"]], H100)
data = plot_roofline(mixed, H100, figure_dir() / "roofline_h100.png")
display(Image(filename=str(data.path)))
for line in data.lines:
    print(f"line {line.label!r}: x from {line.x[0]:.3g} to {line.x[-1]:.3g} FLOP/byte")
for point in data.points:
    print(f"point {point.label!r} at ({point.x:.3g} FLOP/byte, {point.y / 1e12:.3g} TFLOP/s)")

# %% [markdown]
# ## Run the visible tests
# The same tests as `pytest exercises/lesson11` in a terminal. Your instructor's graders go
# further (every fixture's ridges, mixed-dtype reports, the 5% tolerance at its edge, and on a
# GPU your `measure_suite` against rates measured in the same run).

# %%
run_tests("lesson11")

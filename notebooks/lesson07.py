# %% [markdown]
# # Lesson 07: GPU architecture and the memory hierarchy
#
# A notebook to try this lesson's pieces on **your own code** (`exercises/lesson07/`) while you
# write them. Read [the lesson](../learning/lesson07.md) first. Each cell below calls one of your
# functions; until you write it, the cell stops with `NotImplementedError` naming the section to
# read. Edit the file, re-run the cell: the new code runs (autoreload is on). The last cell runs
# the lesson's visible tests. The two probes need a CUDA GPU; without one their cell says so and
# the rest of the notebook still runs.

# %%
from autograder.lab import run_tests, setup, show_plot

setup("lesson07")

# %% [markdown]
# ## Occupancy: what fits on one SM
# The lesson's worked example on an H100 (256 threads, 33 registers per thread, no shared
# memory), then the same kernel with 32 registers and with 45 KiB of shared memory per block.
# Read `blocks_by_limit` first: the smallest entry wins, and `limited_by` names it.

# %%
import hardware_fixtures

from exercises.lesson07.occupancy import LIMITS, occupancy

H100 = hardware_fixtures.load("h100_sxm").sm
cases = [(256, 33, 0), (256, 32, 0), (256, 32, 45 * 1024)]
print(f"{'threads':>7} {'regs':>5} {'smem':>7} | " + " ".join(f"{n:>13}" for n in LIMITS)
      + f" | {'blocks':>6} {'warps':>5} {'occupancy':>9}  limited by")
for threads, regs, smem in cases:
    occ = occupancy(threads, regs, smem, H100)
    print(f"{threads:7} {regs:5} {smem:7} | "
          + " ".join(f"{occ.blocks_by_limit[n]:13}" for n in LIMITS)
          + f" | {occ.blocks_per_sm:6} {occ.active_warps:5} {occ.occupancy_fraction:9.3f}  "
          + ", ".join(occ.limited_by))

# %% [markdown]
# Occupancy against registers per thread, for three block sizes: a staircase, not a slope.
# Each step is a register count where one warp fewer fits in a quarter of the register file
# (after rounding each warp's registers up to 256); one register past a step can cost a whole
# block. Large blocks fall in bigger steps, and at 1024 threads the launch fails (0) once a
# block's warps no longer fit.

# %%
from course.plot import Line

registers = list(range(16, 256))
lines = [Line(f"{threads} threads per block", registers,
              [occupancy(threads, r, 0, H100).occupancy_fraction for r in registers])
         for threads in (128, 256, 1024)]
steps = [r for r in registers[1:]
         if occupancy(256, r, 0, H100).blocks_per_sm < occupancy(256, r - 1, 0, H100).blocks_per_sm]
print("256 threads: the block count drops at", steps, "registers per thread")
show_plot("occupancy_vs_registers", lines=lines, xlabel="registers per thread",
          ylabel="occupancy (active warps / 64)", title="H100 SM, no shared memory",
          loglog=False)

# %% [markdown]
# The same for shared memory per block, with blocks small enough (64 threads, 32 registers) that
# warps and registers allow 32 of them: blocks per SM fall as `233,472 // (smem + 1 KiB)` (in
# 128 B units) until one block is all that fits. Look at 113 and 114 KiB: the 1 KiB the driver
# keeps per block decides whether two blocks fit.

# %%
smem_sizes = [1024 * k for k in range(0, 228, 1)]
blocks = [occupancy(64, 32, s, H100).blocks_per_sm for s in smem_sizes]
for kib in (0, 8, 16, 45, 64, 100, 112, 113, 114, 227):
    print(f"{kib:4d} KiB per block -> {occupancy(64, 32, kib * 1024, H100).blocks_per_sm:2d} "
          "resident per SM")
show_plot("blocks_vs_smem", lines=[Line("64 threads, 32 registers", [s / 1024 for s in smem_sizes],
                                        blocks)],
          xlabel="shared memory per block (KiB)", ylabel="resident blocks per SM",
          title="H100 SM: shared memory limits blocks", loglog=False)

# %% [markdown]
# ## Shared memory of a pipelined tile
# A few matmul tiles (bf16 unless the row says fp8) and whether one block of each fits on an
# H100 and on an A10G. The last column is what the tile's shared memory does to occupancy on the
# H100, with 128 threads and 128 registers per thread (a typical tensor-core kernel).

# %%
from exercises.lesson07.occupancy import smem_bytes_for_tile, tile_fits

A10G = hardware_fixtures.load("a10g").sm
tiles = [(64, 64, 32, 2, 2), (128, 128, 32, 2, 3), (128, 128, 64, 2, 4), (128, 256, 64, 2, 3),
         (128, 256, 64, 2, 4), (128, 128, 128, 1, 4), (256, 128, 64, 2, 4)]
print(f"{'bm x bn x bk':>14} {'bytes':>5} {'stages':>6} {'smem':>10} {'H100':>5} {'A10G':>5} "
      f"{'blocks/SM on H100':>18}")
for bm, bn, bk, size, stages in tiles:
    smem = smem_bytes_for_tile(bm, bn, bk, size, stages)
    fits_h, fits_a = tile_fits(bm, bn, bk, size, stages, H100), tile_fits(bm, bn, bk, size, stages, A10G)
    per_sm = occupancy(128, 128, smem, H100).blocks_per_sm if fits_h else "-"
    print(f"{bm:>4} x{bn:>4} x{bk:>3} {size:5} {stages:6} {smem / 1024:6.0f} KiB {str(fits_h):>5} "
          f"{str(fits_a):>5} {per_sm:>18}")
limit = H100.max_shared_memory_per_block_bytes
print(f"H100 per-block limit: {limit:,} B = {limit / 1024:.0f} KiB")

# %% [markdown]
# ## Measuring the hierarchy
# On a CUDA GPU this cell runs your two probes: a 1 GiB copy (compared with the fixture's
# datasheet bandwidth) and the L2 probe over working sets from 1 MiB to 512 MiB, with your knee.
# Without a GPU it only says so; the next cell tries `find_knee` on a curve made up for it.

# %%
import torch

from course.bench import spec_or_measure

from exercises.lesson07.probes import copy_bandwidth, find_knee, l2_probe

if torch.cuda.is_available():
    spec = spec_or_measure()  # the fixture of this GPU, or one measured now for an unknown GPU
    rate = copy_bandwidth(1 << 30)
    print(f"{spec.name}: copy {rate / 1e12:.2f} TB/s, "
          f"{rate / spec.memory_bandwidth_bytes_per_s:.2f} of the spec's "
          f"{spec.memory_bandwidth_bytes_per_s / 1e12:.2f} TB/s")
    sizes = [int(2 ** (20 + k / 2)) // 8 * 8 for k in range(0, 19)]  # 1 MiB .. 512 MiB
    rates = l2_probe(sizes, bytes_per_size=1 << 29)
    knee = find_knee(sizes, rates)
    for size, r in zip(sizes, rates):
        print(f"{size / 2**20:8.1f} MiB  {r / 1e12:5.2f} TB/s")
    print(f"knee: {knee / 2**20:.1f} MiB" if knee else "no knee",
          f"(L2: {spec.l2_bytes / 2**20:.0f} MiB)")
else:
    print("no CUDA GPU here: copy_bandwidth and l2_probe are graded on a GPU")

# %% [markdown]
# ## The L2 knee
# A curve shaped the way the lesson describes the H200's (not a measurement): low for small
# working sets (fixed cost per copy), a plateau near the lesson's 5.9 TB/s up to 32 MiB, then
# down to the HBM rate of 4.2 TB/s past 64 MiB. Your `find_knee` marks where it crosses half-way
# between the peak and the floor. A flat curve has no knee.

# %%
import math

from course.plot import Marker

MiB = 2**20
sizes = [int(2 ** (18 + k / 2)) for k in range(0, 25)]  # 256 KiB .. 1 GiB
plateau, floor = 5.9e12, 4.2e12


def made_up_rate(size):
    if size <= 32 * MiB:
        steady = plateau
    elif size >= 64 * MiB:
        steady = floor
    else:  # straight in log2(size) between 32 and 64 MiB
        steady = plateau + (floor - plateau) * math.log2(size / (32 * MiB))
    return steady * size / (size + MiB // 2)  # a fixed cost worth 0.5 MiB of copying


rates = [made_up_rate(s) for s in sizes]
knee = find_knee(sizes, rates)
print(f"peak {max(rates) / 1e12:.2f} TB/s, knee at {knee / MiB:.1f} MiB")
print("a flat curve:", find_knee(sizes, [5e12] * len(sizes)))
print("a 20% drop, under the default min_drop_ratio of 1.25:",
      find_knee(sizes, [5e12] * 12 + [4.2e12] * (len(sizes) - 12)))
show_plot("l2_knee", lines=[Line("made-up copy rate", [s / MiB for s in sizes],
                                 [r / 1e12 for r in rates])],
          points=[Marker(f"knee {knee / MiB:.0f} MiB", knee / MiB, made_up_rate(knee) / 1e12)],
          xlabel="working set (MiB)", ylabel="copy rate (TB/s)",
          title="find_knee on a made-up L2 curve")

# %% [markdown]
# ## Run the visible tests
# The same tests as `pytest exercises/lesson07` in a terminal. Your instructor's graders go
# further (sixteen hand-worked occupancy cases, every NVIDIA fixture, and the probes on a GPU).

# %%
run_tests("lesson07")

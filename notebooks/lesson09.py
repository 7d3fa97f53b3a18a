# %% [markdown]
# # Lesson 09: Benchmarking correctly
#
# A notebook to try this lesson's pieces on **your own code** (`exercises/lesson09/`) while you
# write them. Read [the lesson](../learning/lesson09.md) first. Each cell below calls one of your
# functions; until you write it, the cell stops with `NotImplementedError` naming the section to
# read. Edit the file, re-run the cell: the new code runs (autoreload is on). The last cell runs
# the lesson's visible tests. Everything here runs on the simulated device of
# `course.simdevice`, whose answers are exact; one cell also times a real GPU when there is one.

# %%
from autograder.lab import run_tests, setup, show_plot

setup("lesson09")

# %% [markdown]
# ## Why host timers lie
# No code of yours yet: a 40 us kernel on a fresh simulated device (at full clock), timed four
# ways. The host clock around the launch sees the launch (and, the first time, the kernel's
# set-up), never the kernel. With a synchronize it sees the launch plus the kernel. Events read
# before a synchronize are refused. Events read after one see device time, but around a single
# call on an idle device that still includes the launch: the start event is stamped at once and
# the kernel arrives 5 us later. The protocol below avoids that by keeping the queue busy.

# %%
from course.simdevice import EventNotReady, SimDevice

US = 1e-6
device = SimDevice(slow_kernels=0)  # full clock from the start, to isolate the timer's error
kernel = device.kernel(40 * US)
for attempt in ("first call", "second call"):
    t0 = device.host_time()
    kernel()
    print(f"host timer, no sync, {attempt}: {(device.host_time() - t0) / US:8.1f} us")
device.synchronize()
t0 = device.host_time()
kernel()
device.synchronize()
print(f"host timer with synchronize:     {(device.host_time() - t0) / US:8.1f} us")
start, end = device.event(), device.event()
device.record(start)
kernel()
device.record(end)
try:
    device.elapsed_s(start, end)
except EventNotReady as exc:
    print("events read before synchronize:  EventNotReady")
device.synchronize()
print(f"events after synchronize:        {device.elapsed_s(start, end) / US:8.1f} us")

# %% [markdown]
# ## The timing protocol
# Your `time_kernel` on the lesson's kernel (40 us cold, 25 us with its operand in L2), under
# four settings: no warm-up and no flush, warm-up only, and warm-up with and without the flush.
# The first timed calls show what each setting does; the median is what a benchmark reports.

# %%
import statistics

from exercises.lesson09.timing import detect_missing_sync, time_kernel

print(f"{'setting':28} {'first five samples (us)':40} {'median':>8}")
for name, warmup, flush in [("no warm-up, no flush", 0, False), ("no warm-up, flush", 0, True),
                            ("warm-up 10, no flush", 10, False), ("warm-up 10, flush", 10, True)]:
    device = SimDevice()
    kernel = device.kernel(40 * US, 25 * US, buffer="weights")
    samples = time_kernel(kernel, device, warmup=warmup, iters=20, flush=flush)
    first = " ".join(f"{s / US:7.1f}" for s in samples[:5])
    print(f"{name:28} {first:40} {statistics.median(samples) / US:8.1f}")
print("device counters of the last run: kernels", device.kernels_run, "| flushes", device.flushes,
      "| synchronizes", device.syncs)

# %% [markdown]
# The same function on a real GPU, through `course.simdevice.CudaDevice` (the same six
# methods over `torch.cuda`), next to `course.bench.cuda_time` on the same matrix product.
# Without a GPU the cell only says so.

# %%
import torch

if torch.cuda.is_available():
    from course.bench import cuda_time
    from course.simdevice import CudaDevice

    a = torch.randn(4096, 4096, device="cuda", dtype=torch.bfloat16)
    mine = time_kernel(lambda: a @ a, CudaDevice(), warmup=10, iters=50)
    theirs = cuda_time(lambda: a @ a)
    print(f"4096^3 bf16 matmul: your median {statistics.median(mine) * 1e6:.1f} us, "
          f"course.bench {theirs.median_s * 1e6:.1f} us")
else:
    print("no CUDA GPU here: the simulated device above is what the CPU tests use")

# %% [markdown]
# ## Catching a missing synchronize
# Four candidate timers, judged by your `detect_missing_sync`: two forget to wait for the device
# (one reads the host clock, one reads its events too early), one waits but also counts the
# launch, and one is your `time_kernel`. Only the first two should be flagged.


# %%
def host_clock_no_sync(fn, device):
    t0 = device.host_time()
    fn()
    return device.host_time() - t0


def events_read_too_early(fn, device):
    start, end = device.event(), device.event()
    device.record(start)
    fn()
    device.record(end)
    return device.elapsed_s(start, end)


def host_clock_synced(fn, device):
    device.synchronize()
    t0 = device.host_time()
    fn()
    device.synchronize()
    return device.host_time() - t0


def median_of_time_kernel(fn, device):
    return statistics.median(time_kernel(fn, device, warmup=3, iters=10, flush=False))


for timer in (host_clock_no_sync, events_read_too_early, host_clock_synced, median_of_time_kernel):
    print(f"{timer.__name__:24} flagged: {detect_missing_sync(timer)}")

# %% [markdown]
# ## Medians, percentiles and means
# A hundred calls of 0.2 ms and one stall of 10 ms (made-up numbers): the mean moves with the
# outlier, the median does not.

# %%
samples = [0.2e-3] * 100 + [10e-3]
print(f"mean {statistics.mean(samples) * 1e3:.3f} ms, median {statistics.median(samples) * 1e3:.3f} ms, "
      f"p90 {torch.quantile(torch.tensor(samples), 0.9).item() * 1e3:.3f} ms")

# %% [markdown]
# ## A confidence interval for a percentile
# Your `percentile_ci` on 100 samples of an exponential distribution with rate 1, whose true
# median is ln 2. Then the check the lesson describes, on fewer data sets to stay fast: how
# often does the 95% interval hold the truth? (These tensors are tiny: one CPU thread runs them
# faster than several, by a wide margin on a busy machine.)

# %%
import math

torch.set_num_threads(1)

from exercises.lesson09.bootstrap import exponential_quantile, percentile_ci
from exercises.lesson09.load import exponential_times

data = exponential_times(1.0, 100, seed=0)
lo, hi = percentile_ci(data, 0.5, level=0.95, n_boot=2000, seed=0)
print(f"sample median {statistics.median(data):.3f}, 95% interval ({lo:.3f}, {hi:.3f}), "
      f"true median ln 2 = {math.log(2):.3f}")
print("same call, same interval:", percentile_ci(data, 0.5, seed=0) == percentile_ci(data, 0.5, seed=0))
trials, truth, covered = 100, exponential_quantile(0.5, 1.0), 0
for seed in range(trials):
    lo, hi = percentile_ci(exponential_times(1.0, 100, seed=1000 + seed), 0.5, n_boot=500, seed=seed)
    covered += lo <= truth <= hi
print(f"the 95% interval held the true median in {covered} of {trials} data sets")

# %% [markdown]
# The interval narrows as the number of samples grows, slowly (about as one over the square
# root). For p99 it is wide and lopsided: with few samples, very few of them lie above the
# estimate, and the bootstrap cannot invent larger ones.

# %%
from course.plot import Line

sizes = [25, 50, 100, 200, 400, 800]
lines = []
for q, name in ((0.5, "median"), (0.99, "p99")):
    bounds = [percentile_ci(exponential_times(1.0, n, seed=7), q, n_boot=500) for n in sizes]
    lines += [Line(f"{name}: 95% interval, low", sizes, [b[0] for b in bounds]),
              Line(f"{name}: 95% interval, high", sizes, [b[1] for b in bounds]),
              Line(f"{name}: truth", (sizes[0], sizes[-1]), (exponential_quantile(q, 1.0),) * 2)]
    print(name, "intervals:", [f"({a:.2f}, {b:.2f})" for a, b in bounds])
show_plot("ci_width", lines=lines, xlabel="samples", ylabel="quantile (seconds, rate 1)",
          title="Bootstrap intervals for an exponential's median and p99")

# %% [markdown]
# ## Open and closed loops
# Mean response time against load, for one server doing 100 requests/s (exponential service).
# The open loop (Poisson arrivals, your `open_loop_latencies`) follows the M/M/1 formula
# 1 / (mu - lambda) and grows without bound as the load nears 1. A closed loop of 4 users and
# no think time (your `closed_loop_latencies`) keeps the server always busy yet never queues
# more than 4 deep: its mean is about 4 service times, drawn flat because it has no arrival rate. Near full load
# the simulated mean settles slowly (one long busy period moves it), so expect it to stray
# above the formula there.

# %%
from exercises.lesson09.load import closed_loop_latencies, open_loop_latencies, poisson_arrivals

MU, N = 100.0, 20_000
service = exponential_times(1 / MU, N, seed=1)
loads = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95]
open_mean = [statistics.mean(open_loop_latencies(poisson_arrivals(rho * MU, N, seed=2), service))
             for rho in loads]
mm1 = [1 / (MU - rho * MU) for rho in loads]
closed_mean = statistics.mean(closed_loop_latencies(4, 0.0, service))
for rho, got, want in zip(loads, open_mean, mm1):
    print(f"load {rho:4.2f}: open loop mean {got * 1e3:7.1f} ms, M/M/1 {want * 1e3:7.1f} ms")
print(f"closed loop, 4 users, no think time: mean {closed_mean * 1e3:.1f} ms, server always busy")
show_plot("open_vs_closed", lines=[Line("open loop (simulated)", loads, [m * 1e3 for m in open_mean]),
                                   Line("M/M/1: 1 / (mu - lambda)", loads, [m * 1e3 for m in mm1]),
                                   Line("closed loop, 4 users", (loads[0], loads[-1]),
                                        (closed_mean * 1e3,) * 2)],
          xlabel="load (arrival rate / service rate)", ylabel="mean response time (ms)",
          title="A server doing 100 requests/s")

# %% [markdown]
# Coordinated omission: one 1 s stall among 10,000 requests of 1 ms. Four closed-loop users
# stop sending while the server is stuck; an open loop at half the server's rate keeps sending.
# Compare the two p99s.

# %%
stalled = [1e-3] * 10_000  # seconds of service per request
stalled[5000] = 1.0        # the stall
closed = torch.tensor(closed_loop_latencies(4, 0.0, stalled))
open_ = torch.tensor(open_loop_latencies(poisson_arrivals(500.0, 10_000, seed=0), stalled))
for name, lat in (("closed loop, 4 users", closed), ("open loop, 500/s", open_)):
    print(f"{name:22} p50 {lat.quantile(0.5).item() * 1e3:7.2f} ms   p99 "
          f"{lat.quantile(0.99).item() * 1e3:7.2f} ms   over 100 ms: {int((lat > 0.1).sum())}")

# %% [markdown]
# ## Run the visible tests
# The same tests as `pytest exercises/lesson09` in a terminal. Your instructor's graders go
# further (every step of the protocol moved, coverage over 200 data sets, the stall on a seed of
# their own, and the protocol on a GPU).

# %%
run_tests("lesson09")

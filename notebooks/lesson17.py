# %% [markdown]
# # Lesson 17: Serving metrics
#
# A notebook to try this lesson's pieces on **your own code** (`exercises/lesson17/`) while you
# write them. Read [the lesson](../learning/lesson17.md) first. Each cell below calls one of your
# functions; until you write it, the cell stops with `NotImplementedError` naming the section to
# read. Edit the file, re-run the cell: the new code runs (autoreload is on). The last cell runs
# the lesson's visible tests.

# %%
from autograder.lab import run_tests, setup, show_plot

setup("lesson17")

# %% [markdown]
# ## The lesson's two requests
# The trace of the lesson's table, events interleaved as an engine writes them. Your
# `request_metrics` should give back the table's row for each request: TTFT, TPOT, ITL, E2E.

# %%
from course.trace import Event, validate

from exercises.lesson17.metrics import (percentile, request_metrics, slo_attainment, summarize,
                                        unfinished_requests)

TRACE = [
    Event(0, "arrival", 0.0), Event(0, "scheduled", 0.1), Event(1, "arrival", 0.2),
    Event(1, "scheduled", 0.4), Event(0, "first_token", 0.5), Event(0, "token", 0.6),
    Event(1, "first_token", 0.7), Event(0, "token", 0.8), Event(0, "finish", 0.8),
    Event(1, "token", 1.0), Event(1, "finish", 1.0),
]
for m in request_metrics(TRACE):
    print(f"request {m.request}: n_out {m.n_out}, TTFT {m.ttft_s:.2f} s, TPOT {m.tpot_s:.2f} s, "
          f"ITL {tuple(round(g, 2) for g in m.itl_s)} s, E2E {m.e2e_s:.2f} s")

# %% [markdown]
# ## A trace of a busy server
# A made-up run to measure: 400 requests arrive as a Poisson process on a host clock that reads
# 10^6 s (times stay Python floats); one server prefills them in turn (so requests queue), then
# decodes each with jittery gaps, an occasional long stall (a preemption), and now and then an
# event that delivers two tokens. The run stops at a fixed time, so the last requests never
# finish. Nothing here is metric code: it only writes events.

# %%
import random

from course.loadgen import poisson_arrivals

rng = random.Random(17)
ORIGIN, END = 1e6, 60.0
events, server_free = [], 0.0
for rid, t_arrive in enumerate(poisson_arrivals(400, rate=7.0, seed=17)):
    prompt = rng.randint(16, 2048)
    start = max(t_arrive, server_free)
    server_free = start + 0.02 + prompt * 5e-5          # prefill time grows with the prompt
    mine = [(t_arrive, "arrival", prompt), (start, "scheduled", 0), (server_free, "first_token", 1)]
    t, left = server_free, rng.randint(1, 200) - 1
    while left > 0:
        t += 0.02 + rng.expovariate(200.0) + (0.4 if rng.random() < 0.003 else 0.0)
        n = 2 if left >= 2 and rng.random() < 0.05 else 1
        mine.append((t, "token", n))
        left -= n
    mine.append((t, "finish", 0))
    events += [(time, rid, i, kind, n) for i, (time, kind, n) in enumerate(mine) if time <= END]
events.sort()
trace = [Event(rid, kind, ORIGIN + time, n) for time, rid, _, kind, n in events]
validate(trace)
print(f"{len(trace)} events; the first five (times from the clock's origin):")
for e in trace[:5]:
    print(f"  {e.time_s - ORIGIN:8.4f} s  request {e.request}  {e.kind:12} tokens {e.tokens}")

# %% [markdown]
# Your metrics over it: how many requests finished (and how many the run cut off, which a
# report must state beside the latencies), and the summary in milliseconds. Your `percentile`
# is also compared with numpy's at every whole q, on the TTFTs.

# %%
import numpy as np

metrics = request_metrics(trace)
print(f"finished {len(metrics)}, unfinished {len(unfinished_requests(trace))}")
ttfts = [m.ttft_s for m in metrics]
worst = max(abs(percentile(ttfts, q) - float(np.percentile(ttfts, q))) for q in range(101))
print(f"largest |percentile - numpy.percentile| over q = 0..100: {worst:.2e} s")
table = summarize(metrics)
print(f"{table['requests']} requests, {table['output_tokens']} output tokens in "
      f"{table['duration_s']:.1f} s: {table['output_tokens_per_s']:.0f} tokens/s")
print(f"{'':5} " + " ".join(f"{'p' + str(q):>9}" for q in (50, 90, 99)))
for key in ("ttft_ms", "tpot_ms", "itl_ms", "e2e_ms"):
    print(f"{key[:-3].upper():5} " + " ".join(f"{table[key][q]:7.1f}ms" for q in (50, 90, 99)))
print(f"longest single gap: {1e3 * max(g for m in metrics for g in m.itl_s):.0f} ms")

# %% [markdown]
# The whole distribution, not three points of it, drawn as a tail: each latency against the
# share of its values that are longer (p99 sits at 1%). TTFT is shaped by the queue. The pooled
# ITL keeps the rare stalls (its curve jumps where they begin), while each request's mean TPOT
# smooths them away.

# %%
from course.plot import Line, Marker

tails = [50, 20, 10, 5, 2, 1, 0.5, 0.2, 0.1, 0.05, 0.02, 0.01]  # percent of values longer
itls = [g for m in metrics for g in m.itl_s]
tpots = [m.tpot_s for m in metrics if m.tpot_s is not None]
lines = [Line(name, tails, [1e3 * percentile(values, 100 - t) for t in tails])
         for name, values in (("TTFT", ttfts), ("ITL (every gap)", itls),
                              ("TPOT (one per request)", tpots))]
show_plot("latency_tails", lines=lines,
          points=[Marker(f"p99 {name} {1e3 * percentile(values, 99):.0f} ms", 1,
                         1e3 * percentile(values, 99))
                  for name, values in (("TTFT", ttfts), ("ITL", itls))],
          xlabel="share of values longer (%)", ylabel="latency (ms)",
          title="Latency tails of the made-up run", loglog=True)

# %% [markdown]
# ## SLO attainment
# The share of requests that meet both targets, as the TTFT target loosens, for three TPOT
# targets. A strict TPOT target caps what any TTFT target can reach.

# %%
ttft_targets = [0.05 * i for i in range(1, 41)]
curves = []
for tpot_target in (0.022, 0.025, 0.03):
    shares = [slo_attainment(metrics, t, tpot_target) for t in ttft_targets]
    curves.append(Line(f"TPOT <= {1e3 * tpot_target:.0f} ms", ttft_targets, shares))
    print(f"TPOT <= {1e3 * tpot_target:.0f} ms: attainment {shares[3]:.2f} at TTFT <= "
          f"{ttft_targets[3]:.1f} s, {shares[-1]:.2f} at TTFT <= {ttft_targets[-1]:.1f} s")
show_plot("slo_attainment", lines=curves, xlabel="TTFT target (s)",
          ylabel="requests meeting both targets (share)", title="SLO attainment", loglog=False)

# %% [markdown]
# ## MBU and MFU
# The lesson's worked examples, Llama-3-8B in bf16 on an H200 (bandwidth and dense BF16 peak
# from the course's hardware fixture). Batch 1 at a TPOT of 10 ms, then a batch of 32 with a
# 20 ms step; last, the same batch with the weights counted once per sequence, which your
# `mbu` must refuse.

# %%
import hardware_fixtures

from exercises.lesson17.utilization import decode_step_bytes, mbu, mfu

h200 = hardware_fixtures.load("h200_sxm")
BW, PEAK = h200.memory_bandwidth_bytes_per_s, h200.peak_flops("bf16")
PARAMS, KV = 8_030_261_248, 131_072  # Llama-3-8B: parameters, KV bytes per token in bf16
for batch, step_s in ((1, 10e-3), (32, 20e-3)):
    step_bytes = decode_step_bytes(2 * PARAMS, KV, [2048] * batch)
    print(f"batch {batch:2d}: {step_bytes / 1e9:6.2f} GB per step, MBU "
          f"{mbu(step_bytes, step_s, BW):.2f}, MFU {mfu(batch / step_s, 2 * PARAMS, PEAK):.4f}")
wrong = 32 * decode_step_bytes(2 * PARAMS, KV, [2048])
try:
    mbu(wrong, 20e-3, BW)
except ValueError as exc:
    print("weights once per sequence:", exc)

# %% [markdown]
# ## Run the visible tests
# The same tests as `pytest exercises/lesson17` in a terminal. Your instructor's graders go
# further (random interleaved traces, every q, contexts that differ within a batch).

# %%
run_tests("lesson17")

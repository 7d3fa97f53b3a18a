# %% [markdown]
# # Lesson 24: The knee, chunked prefill, goodput, Little's Law
#
# A notebook to try this lesson's pieces on **your own code** (`exercises/lesson24/`) while you
# write them. Read [the lesson](../learning/lesson24.md) first. Each cell below calls one of your
# functions; until you write it, the cell stops with `NotImplementedError` naming the section to
# read. Edit the file, re-run the cell: the new code runs (autoreload is on). Everything runs on
# the given simulator with the lesson's roofline step cost, no GPU. The last cell runs the
# lesson's visible tests.

# %%
from autograder.lab import run_tests, setup, show_plot

setup("lesson24")

# %% [markdown]
# ## The knee
# The M/M/1 queue's mean time in system, `(1 / mu) / (1 - rho)`, against the load, for a server
# of 1 request per second. The lesson quotes 2x the service time at rho = 0.5, 10x at 0.9 and
# 100x at 0.99. Your `find_knee` marks where the curve turns; then a curve of two straight
# pieces, whose knee is its corner.

# %%
from course.plot import Line, Marker

from exercises.lesson24.load import find_knee

rhos = [i / 100 for i in range(5, 100, 5)] + [0.99]
wait = [1.0 / (1 - rho) for rho in rhos]
for rho in (0.5, 0.9, 0.99):
    print(f"rho = {rho}: time in system {1.0 / (1 - rho):.0f}x the service time")
knee = find_knee(rhos, wait)
print("knee of the M/M/1 curve at rho =", knee)
print("knee of two straight pieces:", find_knee([1, 2, 3, 4, 5, 6], [1, 1.1, 1.2, 1.3, 4, 7]))
show_plot("mm1_knee", lines=[Line("M/M/1, mu = 1 /s", rhos, wait)],
          points=[Marker(f"knee: rho = {knee:g}", knee, 1.0 / (1 - knee))],
          xlabel="utilisation rho = lambda / mu", ylabel="mean time in system (s)",
          title="Waiting explodes as arrivals approach the service rate", loglog=False)

# %% [markdown]
# ## Little's Law
# The lesson's hand example first (A in the system for 10 s, B for 1 s of them: the time average
# is 1.1, the mean over events 1.0). Then a trace of the given simulator (the prefill-first
# baseline, 200 requests at 40 per second): over the whole run L equals lambda x W; in a window
# that cuts the run, the two sides agree approximately.

# %%
from course.trace import Event

from exercises.lesson24.chunking import prefill_first_plan
from exercises.lesson24.load import littles_law
from exercises.lesson24.simulator import poisson_requests, simulate


def cost(n, k):  # seconds: the lesson's roofline, 7e9 parameters in bf16 on an H200 SXM
    return max(2 * 7e9 * n / 989.4e12, (2 * 7e9 + 131_072 * k) / 4.8e12)


by_hand = [Event("A", "arrival", 0.0), Event("B", "arrival", 2.0),
           Event("B", "first_token", 3.0), Event("B", "finish", 3.0),
           Event("A", "first_token", 10.0), Event("A", "finish", 10.0)]
check = littles_law(by_hand)
print(f"by hand: L = {check.mean_in_system:.2f}, lambda = {check.arrival_rate_per_s:.2f} /s, "
      f"W = {check.mean_time_in_system_s:.2f} s, lambda x W = {check.predicted:.2f}")

requests = poisson_requests(40.0, 200, [256] * 7 + [3072], [32, 64, 128], seed=0)
run = simulate(requests, prefill_first_plan, cost, token_budget=4096, chunk_size=512)
end = run.events[-1].time_s
for name, window in (("whole run", (None, None)), ("middle half", (end / 4, 3 * end / 4))):
    c = littles_law(run.events, *window)
    print(f"{name:11}: L = {c.mean_in_system:.3f}, lambda x W = {c.predicted:.3f} "
          f"({c.arrival_rate_per_s:.1f} /s x {1e3 * c.mean_time_in_system_s:.0f} ms), "
          f"relative error {c.relative_error:.2%}")

# %% [markdown]
# ## Chunked prefill and stall-free batching
# The docstring's example first. Then one step planned both ways for 40 running decodes and two
# waiting prompts under a budget of 512: the baseline runs whole prompts and pauses all 40
# decodes; your stall-free plan feeds every decode and fills the rest of the budget with chunks.
# The table gives each plan's tokens, its roofline time and the decodes it leaves out.

# %%
from exercises.lesson24.chunking import PrefillWork, chunked_prefill_plan

print(chunked_prefill_plan([7, 8], [PrefillWork(3, 0, 100), PrefillWork(5, 40, 50)], 16, 8))
decodes = list(range(40))
prefills = [PrefillWork(100, 0, 3072), PrefillWork(101, 0, 256)]
print("plan          | tokens | decodes | chunks                                    | step ms")
for name, planner, budget in (("prefill first", prefill_first_plan, 4096),
                              ("stall-free", chunked_prefill_plan, 512)):
    plan = planner(decodes, prefills, budget, 512)
    kv = sum(c.start + c.length for c in plan.chunks) + 1000 * len(plan.decodes)
    chunks = ", ".join(f"{c.id}: [{c.start}, {c.start + c.length})" for c in plan.chunks)
    print(f"{name:13} | {plan.num_tokens:6d} | {len(plan.decodes):7d} | {chunks:41} | "
          f"{1e3 * cost(plan.num_tokens, kv):.2f}")

# %% [markdown]
# ## Goodput
# The docstring's example (attainment 100%, 92% and 60% at 1, 2 and 3 requests/s, target 90%),
# then a rate that passes above a failing one, which does not count.

# %%
from exercises.lesson24.load import goodput


def run_with(share_ok, n=100):  # n requests, the first share_ok of them within the SLOs
    ok = round(share_ok * n)
    return [(0.1, 0.01)] * ok + [(2.0, 0.01)] * (n - ok)


print("100%, 92%, 60%:", goodput([1, 2, 3], [run_with(1.0), run_with(0.92), run_with(0.6)],
                                 ttft_slo_s=0.5, tpot_slo_s=0.05))
print("100%, 80%, 95%:", goodput([1, 2, 3], [run_with(1.0), run_with(0.8), run_with(0.95)],
                                 ttft_slo_s=0.5, tpot_slo_s=0.05))
print("exactly at the SLO:", goodput([1], [[(0.5, 0.05)]], ttft_slo_s=0.5, tpot_slo_s=0.05))

# %% [markdown]
# ## The sweep and its two figures
# The lesson's workload and policies on the given simulator, with 120 requests per rate instead
# of the lesson's 400 (so the numbers differ a little from its figures): p99 TTFT against the
# arrival rate with each policy's knee, then goodput at 90% attainment (TTFT SLO 500 ms) against
# the TPOT SLO. The last lines give each policy's worst inter-token gap.

# %%
from exercises.lesson24.figures import runs_of
from exercises.lesson24.simulator import sweep

rates = [float(r) for r in range(10, 131, 10)]
work = dict(n=120, prompt_lens=[256] * 7 + [3072], out_lens=[32, 64, 128], seed=0,
            chunk_size=512)
runs = {"prefill first": sweep(rates, prefill_first_plan, cost, token_budget=4096, **work),
        "chunked": sweep(rates, chunked_prefill_plan, cost, token_budget=512, **work)}
lines, points = [], []
for name, results in runs.items():
    p99_ms = [1e3 * r.p99("ttft_s") for r in results]
    knee = find_knee(rates, p99_ms)
    lines.append(Line(name, rates, p99_ms))
    points.append(Marker(f"{name} knee: {knee:g}/s", knee, p99_ms[rates.index(knee)]))
    print(f"{name:13}: p99 TTFT {p99_ms[0]:.0f} ms at {rates[0]:g}/s, {p99_ms[-1]:.0f} ms at "
          f"{rates[-1]:g}/s, knee at {knee:g} requests/s, "
          f"{results[-1].throughput_tokens_per_s:,.0f} output tokens/s at {rates[-1]:g}/s")
show_plot("knee", lines=lines, points=points, xlabel="arrival rate (requests/s)",
          ylabel="p99 TTFT (ms)", title="Latency against load", loglog=False)

slos = [0.005, 0.006, 0.0075, 0.01, 0.015, 0.02]
good = {name: [goodput(rates, runs_of(results), 0.5, s) for s in slos]
        for name, results in runs.items()}
for name, g in good.items():
    print(f"goodput, {name:13}:", dict(zip([f"{1e3 * s:g} ms" for s in slos], g)))
    print(f"  worst gap between two tokens over all rates: "
          f"{1e3 * max(r.p99('max_itl_s') for r in runs[name]):.1f} ms (p99 over requests)")
show_plot("goodput", lines=[Line(name, [1e3 * s for s in slos], g) for name, g in good.items()],
          xlabel="TPOT SLO (ms)", ylabel="goodput (requests/s)",
          title="Goodput at 90% SLO attainment", loglog=False)

# %% [markdown]
# ## Run the visible tests
# The same tests as `pytest exercises/lesson24` in a terminal. Your instructor's graders go
# further (chunked prefill through a real HF Llama, Little's Law on a long run).

# %%
run_tests("lesson24")

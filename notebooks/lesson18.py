# %% [markdown]
# # Lesson 18: Scheduling and preemption
#
# A notebook to try this lesson's pieces on **your own code** (`exercises/lesson18/`) while you
# write them. Read [the lesson](../learning/lesson18.md) first. Each cell below calls one of your
# functions; until you write it, the cell stops with `NotImplementedError` naming the section to
# read. Edit the file, re-run the cell: the new code runs (autoreload is on). The last cell runs
# the lesson's visible tests.

# %%
from autograder.lab import run_tests, setup, show_plot

setup("lesson18")

# %% [markdown]
# ## Admission control
# A cache of 4 blocks of 4 slots. A request of 10 prompt tokens and 7 new ones may hold 16
# slots, exactly the cache: `add` accepts it. One more new token makes 17 slots, 5 blocks: it
# could never run, and `add` must say so.

# %%
from exercises.lesson18.scheduler import Request, Scheduler

sched = Scheduler(num_blocks=4, block_size=4, token_budget=64)
sched.add(Request(0, [1] * 10, max_new_tokens=7))
print("accepted; waiting:", [s.id for s in sched.waiting])
try:
    sched.add(Request(1, [1] * 10, max_new_tokens=8))
except ValueError as exc:
    print("refused:", exc)

# %% [markdown]
# ## The loop, step by step
# A small cache (6 blocks of 4 slots), a budget of 8 tokens per step, four requests. The engine
# here is a stand-in (`toy_next_token`, given): it samples a token for every sequence whose
# plan reaches the end of its tokens. Watch decodes come first, a long prompt split over
# steps (chunked prefill), admission stop when a head of the queue does not fit, and a LIFO
# preemption when a running sequence needs a block and none is free.

# %%
from exercises.lesson18.simulator import reference_output, toy_next_token

sched = Scheduler(num_blocks=6, block_size=4, token_budget=8, policy="lifo", mode="recompute")
requests = [Request(0, [3] * 5, 6), Request(1, [4] * 3, 8, arrival=0),
            Request(2, [5] * 11, 3, arrival=1), Request(3, [6] * 2, 4, arrival=2)]
streamed = {r.id: [] for r in requests}
print(f"{'step':>4} | {'tokens fed (id: n)':24} | {'admitted':8} | {'preempted':9} | free | "
      "running / waiting")
step = 0
while step < 40 and (step <= 2 or sched.has_unfinished()):
    for r in requests:
        if r.arrival == step:
            sched.add(r)
    plan = sched.schedule()
    running = {s.id: s for s in sched.running}
    sampled = {sid: toy_next_token(running[sid].tokens) for sid, n in plan.tokens.items()
               if running[sid].num_computed + n == len(running[sid].tokens)}
    for sid, token in sampled.items():
        streamed[sid].append(token)
    sched.update(plan, sampled)
    print(f"{step:4d} | {str(plan.tokens):24} | {str(plan.admitted):8} | "
          f"{str(plan.preempted):9} | {sched.free_blocks:4d} | "
          f"{[s.id for s in sched.running]} / {[s.id for s in sched.waiting]}")
    step += 1
for r in requests:
    seq = next(s for s in sched.finished if s.id == r.id)
    print(f"request {r.id}: preempted {seq.preemptions}x, streams what it would alone: "
          f"{streamed[r.id] == reference_output(r)}")

# %% [markdown]
# ## Policies and modes under load
# The given simulator checks every rule at every step (it raises `InvariantError` at the first
# one broken). The same seeded workload, 60 requests on a cache of 16 blocks, under both victim
# policies and both ways back; the latency is in steps from arrival to finish.

# %%
import random

from exercises.lesson18.simulator import simulate

rng = random.Random(18)
workload = [Request(i, [rng.randrange(1000) for _ in range(rng.randint(1, 24))],
                    rng.randint(1, 24), arrival=rng.randint(0, 80), priority=rng.randint(0, 2))
            for i in range(60)]
print(f"{'policy':8} {'mode':9} {'steps':>5} {'preemptions':>11} {'peak blocks':>11} "
      f"{'mean latency':>12} {'max latency':>11} {'swapped blocks':>14}")
for policy in ("lifo", "priority"):
    for mode in ("recompute", "swap"):
        sched = Scheduler(num_blocks=16, block_size=4, token_budget=16, policy=policy, mode=mode)
        result = simulate(sched, workload)
        latency = [result.finish_step[r.id] - r.arrival for r in workload]
        swapped = sum(sum(p.swap_out.values()) + sum(p.swap_in.values()) for p in result.plans)
        print(f"{policy:8} {mode:9} {result.steps:5d} {sum(result.preemptions.values()):11d} "
              f"{result.peak_blocks_used:11d} {sum(latency) / len(latency):12.1f} "
              f"{max(latency):11d} {swapped:14d}")

# %% [markdown]
# ## Starvation and aging
# One low-priority request (priority 3) arrives first, then an important request (priority 0)
# every 4 steps for 60 requests. Without aging it is always the victim and always behind the
# newcomers; with aging it gains a level every `aging_steps` steps and finishes much earlier.

# %%
from course.plot import Line, Marker

stream_end = None
rows = []
for aging in (None, 64, 32, 16, 8, 4):
    stream = [Request(0, [1] * 8, 16, arrival=0, priority=3)]
    stream += [Request(i, [i % 7 + 1] * 8, 16, arrival=4 * (i - 1), priority=0)
               for i in range(1, 61)]
    stream_end = stream[-1].arrival
    sched = Scheduler(num_blocks=12, block_size=4, token_budget=32, policy="priority",
                      aging_steps=aging)
    result = simulate(sched, stream)
    rows.append((aging, result.finish_step[0], result.preemptions[0]))
print(f"the last important request arrives at step {stream_end}")
for aging, finish, preempted in rows:
    print(f"aging_steps {str(aging):>4}: the low-priority request finishes at step {finish:3d}, "
          f"preempted {preempted}x")

# %% [markdown]
# ## Swap or recompute
# Both costs for Llama-3-8B (grouped-query attention, small KV) and Llama-2-7B (full multi-head
# attention, four times the KV), on an H100 SXM over PCIe Gen5 at the dense BF16 peak (the
# course's hardware fixture). The two times are close on a log scale, so the figure shows their
# ratio: above 1, swapping is cheaper. The marker is where that starts for Llama-2-7B.

# %%
import hardware_fixtures
from course.config import LLAMA2_7B, LLAMA3_8B

from exercises.lesson18.swap import recompute_seconds, swap_seconds, swap_vs_recompute

h100 = hardware_fixtures.load("h100_sxm")
LINK, PEAK = h100.pcie_x16_bytes_per_s_per_direction, h100.peak_flops("bf16")
lengths = [2**i for i in range(4, 16)]
lines = [Line("equal cost", (lengths[0], lengths[-1]), (1, 1))]
for cfg in (LLAMA3_8B, LLAMA2_7B):
    lines.append(Line(cfg.name, lengths, [recompute_seconds(cfg, n, PEAK) / swap_seconds(cfg, n, LINK)
                                          for n in lengths]))
    at_2048 = swap_vs_recompute(cfg, 2048, LINK, PEAK)
    print(f"{cfg.name}: at 2,048 tokens swap {1e3 * at_2048.swap_s:.2f} ms, recompute "
          f"{1e3 * at_2048.recompute_s:.2f} ms -> {at_2048.choice}; swap wins from "
          f"a context of {at_2048.crossover_tokens:,}")
cross = swap_vs_recompute(LLAMA2_7B, 2048, LINK, PEAK).crossover_tokens
show_plot("swap_or_recompute", lines=lines,
          points=[Marker(f"{LLAMA2_7B.name}: swap wins from {cross:,}", cross,
                         recompute_seconds(LLAMA2_7B, cross, PEAK)
                         / swap_seconds(LLAMA2_7B, cross, LINK))],
          xlabel="context length (tokens)", ylabel="recompute time / swap time",
          title="Swap over PCIe Gen5 or recompute at the BF16 peak (H100 SXM)", loglog=True)

# %% [markdown]
# ## Run the visible tests
# The same tests as `pytest exercises/lesson18` in a terminal. Your instructor's graders go
# further (every rule at its exact boundary, generated workloads, aging bounds, the real model
# preempted and recomputed token for token).

# %%
run_tests("lesson18")

# %% [markdown]
# # Lesson 20: Pipeline and context parallelism
#
# A notebook to try this lesson's pieces on **your own code** (`exercises/lesson20/`) while you
# write them. Read [the lesson](../learning/lesson20.md) first. Each cell below calls one of your
# functions; until you write it, the cell stops with `NotImplementedError` naming the section to
# read. Edit the file, re-run the cell: the new code runs (autoreload is on). Everything here
# runs in one process: the schedules are simulated on a clock and the ring is a loop over ranks.
# The last cell runs the lesson's visible tests (they also start real process groups for
# `pipeline_forward`).

# %%
from autograder.lab import run_tests, setup, show_plot

setup("lesson20")

# %% [markdown]
# ## Stages
# How a model's layers are cut into consecutive blocks, one per stage: the lesson's rule puts the
# remainder on the first stages. Check SmolLM2-135M's 30 layers over 4 stages against the lesson
# (8, 8, 7 and 7 layers).

# %%
from exercises.lesson20.schedule import split_layers

for n_layers, pp in [(10, 4), (30, 4), (30, 8), (7, 7)]:
    blocks = split_layers(n_layers, pp)
    print(f"{n_layers:2d} layers over {pp} stages: sizes {[len(b) for b in blocks]}  "
          f"first block {blocks[0]}, last block {blocks[-1]}")
try:
    split_layers(3, 4)
except ValueError as exc:
    print("more stages than layers:", exc)

# %% [markdown]
# ## The bubble
# The idle fraction `(p - 1) / (m + p - 1)` against the number of micro-batches, for three
# pipeline depths. The dot is the lesson's worked example (p = 4, m = 8); the curves only
# approach zero as `m` grows well past `p`.

# %%
from course.plot import Line, Marker

from exercises.lesson20.schedule import bubble_fraction

ms = list(range(1, 65))
lines = [Line(f"p = {p}", ms, [bubble_fraction(p, m) for m in ms]) for p in (2, 4, 8)]
example = bubble_fraction(4, 8)
print(f"p = 4, m = 8: bubble {example:.3f}; 4 GPUs give {4 * (1 - example):.2f}x one GPU")
smallest = next(m for m in ms if bubble_fraction(4, m) < 0.1)
print(f"p = 4: the smallest m with a bubble under 10% is {smallest}")
show_plot("bubble", lines=lines, points=[Marker("p=4, m=8", 8, example)],
          xlabel="micro-batches m", ylabel="idle fraction of each stage",
          title="Pipeline bubble against micro-batches", loglog=False)

# %% [markdown]
# ## Three schedules on one clock
# Your `pipeline_schedule` for 4 stages and 8 micro-batches, drawn tick by tick: `F3` is the
# forward of micro-batch 3 (1 tick), `B3` its backward (2 ticks), `..` an idle tick. Below each
# timeline: the idle fraction measured on it (it should equal the formula above for all three)
# and, per stage, the most micro-batches whose activations are held at once (forward done,
# backward not yet): GPipe holds all of them, 1F1B at most `p - s`.

# %%
from exercises.lesson20.schedule import pipeline_schedule

P, M = 4, 8


def timeline(ops, makespan):
    cells = [".."] * makespan
    for op in ops:
        for tick in range(op.start, op.end):
            cells[tick] = f"{op.kind}{op.microbatch}"
    return " ".join(cells)


def held_at_once(ops):
    events = sorted([(op.end, +1) for op in ops if op.kind == "F"]
                    + [(op.end, -1) for op in ops if op.kind == "B"])
    live = peak = 0
    for _, change in events:
        live += change
        peak = max(peak, live)
    return peak


for kind in ("forward", "gpipe", "1f1b"):
    stages = pipeline_schedule(P, M, kind)
    makespan = max(op.end for ops in stages for op in ops)
    busy = sum(op.duration for ops in stages for op in ops)
    print(f"--- {kind}: {makespan} ticks")
    for s, ops in enumerate(stages):
        print(f"stage {s}  {timeline(ops, makespan)}")
    idle = 1 - busy / (P * makespan)
    print(f"idle fraction measured {idle:.4f}, formula {bubble_fraction(P, M):.4f}")
    if kind != "forward":
        print("activations held at once, per stage:", [held_at_once(ops) for ops in stages])

# %% [markdown]
# ## Merging two softmax states
# The online-softmax merge of lesson 10, again: the keys of one row split in two sets, each set's
# state `(m, l, o)` computed on its own, merged, and compared with plain softmax attention over
# all the keys. An empty set, `(-inf, 0, 0)`, must merge without NaN.

# %%
import torch

from exercises.lesson20.ring_attention import merge_states

n_q, n_k, d = 3, 10, 8
q, k, v = torch.randn(n_q, d), torch.randn(n_k, d), torch.randn(n_k, d)
scores = q @ k.T / d ** 0.5


def state(s, v):  # softmax state of one key set (not the merge itself)
    m = s.amax(-1)
    p = torch.exp(s - m[:, None])
    return m, p.sum(-1), p @ v


m, l, o = merge_states(*state(scores[:, :4], v[:4]), *state(scores[:, 4:], v[4:]))
exact = torch.softmax(scores, -1) @ v
print("merged output shape:", tuple((o / l[:, None]).shape))
print(f"max |merged - softmax attention| = {(o / l[:, None] - exact).abs().max():.2e}")
empty = (torch.full((n_q,), float("-inf")), torch.zeros(n_q), torch.zeros(n_q, d))
m2, l2, o2 = merge_states(*empty, *empty)
print("two empty sets merged: m =", m2.tolist(), "| any NaN:", bool(o2.isnan().any()))

# %% [markdown]
# ## Ring attention against one big attention
# A 22-token sequence cut into 4 contiguous chunks (4 does not divide 22, so the chunks differ
# in length), two heads. Each rank's output is compared with PyTorch's causal attention over the
# whole sequence, and `visited` lists the KV chunks each rank computed with, in ring order:
# chunks wholly in a rank's future are skipped.

# %%
import torch.nn.functional as F

from exercises.lesson20.ring_attention import ring_attention, zigzag_positions

heads, seq, d_head, ranks = 2, 22, 16, 4
Q, K, V = (torch.randn(heads, seq, d_head) for _ in range(3))
reference = F.scaled_dot_product_attention(Q, K, V, is_causal=True)
chunks = [list(t.tensor_split(ranks, dim=-2)) for t in (Q, K, V)]
outputs, visited = ring_attention(*chunks, causal=True)
print("chunk lengths:", [c.shape[-2] for c in chunks[0]])
print("output shapes:", [tuple(o.shape) for o in outputs])
error = (torch.cat(outputs, dim=-2) - reference).abs().max()
print(f"max |ring - full causal attention| = {error:.2e}")
for r, seen in enumerate(visited):
    print(f"rank {r} computed with KV chunks {seen}")

# %% [markdown]
# ## Balancing causal work with the zig-zag layout
# The same ring on a 32-token sequence, first in contiguous chunks and then in the zig-zag
# layout (rank `r` holds pieces `r` and `2p - 1 - r`). The table counts, per rank, the KV chunks
# it computed with and the (query, key) pairs its causal mask lets through: a query at position
# `i` sees `i + 1` keys. Contiguous chunks load the last rank most; zig-zag evens it out.

# %%
seq = 32
Q, K, V = (torch.randn(heads, seq, d_head) for _ in range(3))
reference = F.scaled_dot_product_attention(Q, K, V, is_causal=True)
layouts = {"contiguous": list(torch.arange(seq).tensor_split(ranks)),
           "zig-zag": zigzag_positions(seq, ranks)}
work = {}
for name, positions in layouts.items():
    outputs, visited = ring_attention([Q[:, pos] for pos in positions],
                                      [K[:, pos] for pos in positions],
                                      [V[:, pos] for pos in positions], positions=positions)
    error = max((out - reference[:, pos]).abs().max().item()
                for out, pos in zip(outputs, positions))
    work[name] = [(len(seen), int((pos + 1).sum())) for seen, pos in zip(visited, positions)]
    print(f"{name}: max error {error:.2e}; rank 1 holds positions {positions[1].tolist()}")
print("rank | contiguous: chunks, pairs | zig-zag: chunks, pairs")
for r in range(ranks):
    (c_chunks, c_pairs), (z_chunks, z_pairs) = work["contiguous"][r], work["zig-zag"][r]
    print(f"{r:4d} | {c_chunks:18d} {c_pairs:6d} | {z_chunks:15d} {z_pairs:6d}")

# %% [markdown]
# ## Run the visible tests
# The same tests as `pytest exercises/lesson20` in a terminal; they include a two-stage
# pipeline on real processes. Your instructor's graders go further.

# %%
run_tests("lesson20")

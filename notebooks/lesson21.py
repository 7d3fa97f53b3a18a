# %% [markdown]
# # Lesson 21: Mixture of experts and expert parallelism
#
# A notebook to try this lesson's pieces on **your own code** (`exercises/lesson21/`) while you
# write them. Read [the lesson](../learning/lesson21.md) first. Each cell below calls one of your
# functions; until you write it, the cell stops with `NotImplementedError` naming the section to
# read. Edit the file, re-run the cell: the new code runs (autoreload is on). Everything here
# runs in one process with toy sizes; `ep_moe_layer` needs several ranks, and the visible tests
# in the last cell start them.

# %%
from autograder.lab import run_tests, setup, show_plot

setup("lesson21")

# %% [markdown]
# ## The router: softmax, then top-k
# First the lesson's tie example (experts 0 and 1 tie, the lower id wins), then six tokens over
# four experts, routed top-2 with Mixtral's renormalised weights and with the raw probabilities.
# The renormalised pair of each token sums to 1; the raw one sums to less.

# %%
import torch

from exercises.lesson21.routing import topk_route

ids, weights = topk_route(torch.tensor([[0.0, 0.0, 1.0]]), k=2)
print("logits [0, 0, 1], k = 2 -> ids", ids.tolist())
logits = torch.randn(6, 4)
ids, mixtral = topk_route(logits, k=2)
_, raw = topk_route(logits, k=2, renormalize=False)
print("shapes:", tuple(ids.shape), tuple(mixtral.shape), mixtral.dtype)
print("token | experts | renormalised weights | raw probabilities | raw sum")
for t in range(6):
    print(f"{t:5d} | {ids[t].tolist()!s:7} | {[round(w, 3) for w in mixtral[t].tolist()]!s:20} | "
          f"{[round(w, 3) for w in raw[t].tolist()]!s:17} | {raw[t].sum():.3f}")

# %% [markdown]
# ## Capacity and the lesson's worked example
# Rows per expert buffer for the docstring's examples, then `dispatch` on the lesson's table:
# four tokens, three experts, top-2, capacity 2. Compare the printed rows with the lesson's
# table: first choices are served before second choices, and token 3 loses both. With experts
# that return their input, `combine` gives back half of each kept copy: token 3 comes out zero.

# %%
from exercises.lesson21.dispatch import combine, dispatch, expert_capacity

print("8 tokens, 4 experts, top-2, factor 1.25:", expert_capacity(8, 4, 2, 1.25), "rows")
print("6 tokens, 4 experts, top-1, factor 1.0: ", expert_capacity(6, 4, 1, 1.0), "rows")
print("45 tokens, 3 experts, top-2, factor 1.1:", expert_capacity(45, 3, 2, 1.1), "rows")
capacity = expert_capacity(4, 3, 2, 0.75)
print("the worked example (4 tokens, 3 experts, top-2, factor 0.75):", capacity, "rows")

x = torch.arange(1.0, 5.0)[:, None] * torch.ones(4, 2)  # token t's vector is (t + 1, t + 1)
choices = torch.tensor([[0, 1], [1, 0], [0, 2], [0, 1]])  # the lesson's table
buffers, slots, dropped = dispatch(x, choices, n_experts=3, capacity=capacity)
print("buffers shape:", tuple(buffers.shape))
for t in range(4):
    cells = [f"expert {int(e)}: " + ("dropped" if int(s) < 0 else f"row {int(s)}")
             for e, s in zip(choices[t], slots[t])]
    print(f"token {t}: 1st {cells[0]:18} 2nd {cells[1]}")
print("token + 1 held in each row of each expert (0 = empty):")
print(buffers[..., 0].long())
back = combine(buffers, choices, slots, torch.full((4, 2), 0.5))  # experts = identity
print("combine with identity experts and weights 0.5, first channel:", back[:, 0].tolist())

# %% [markdown]
# ## The whole layer against its oracle
# `moe_layer` (route, dispatch, batched experts, combine) against the given one-token-at-a-time
# `moe_layer_spec`, dropless and with a tight capacity. Then the picture: the fraction of
# assignments dropped as the capacity factor grows, for a router that spreads tokens evenly and
# for one that favours a few experts.

# %%
from course.plot import Line, Marker

from exercises.lesson21.dispatch import moe_layer, moe_layer_spec

tokens, d_model, d_ff, n_experts, k = 32, 16, 24, 8, 2
x = torch.randn(tokens, d_model)
router_w = torch.randn(n_experts, d_model) / d_model ** 0.5
w_gate, w_up = (torch.randn(n_experts, d_ff, d_model) / d_model ** 0.5 for _ in range(2))
w_down = torch.randn(n_experts, d_model, d_ff) / d_ff ** 0.5
for factor in (None, 1.0, 0.5):
    capacity = expert_capacity(tokens, n_experts, k, factor)
    ours = moe_layer(x, router_w, w_gate, w_up, w_down, k, capacity_factor=factor)
    spec = moe_layer_spec(x, router_w, w_gate, w_up, w_down, k, capacity=capacity)
    print(f"capacity factor {factor}: {capacity:2d} rows per expert, output "
          f"{tuple(ours.shape)}, max |moe_layer - spec| = {(ours - spec).abs().max():.2e}")

factors = [0.25 * i for i in range(1, 13)]
curves = {}
for name, skew in (("even router", 0.0), ("skewed router", 2.0)):
    logits = torch.randn(256, n_experts) + skew * torch.linspace(1, 0, n_experts)
    ids, _ = topk_route(logits, k)
    drops = []
    for factor in factors:
        cap = expert_capacity(256, n_experts, k, factor)
        _, _, d = dispatch(torch.zeros(256, 1), ids, n_experts, cap)
        drops.append(d.float().mean().item())
    curves[name] = drops
    print(f"{name}: dropped at factor 1.0: {drops[factors.index(1.0)]:.1%}, "
          f"at 2.0: {drops[factors.index(2.0)]:.1%}")
show_plot("dropped", lines=[Line(n, factors, d) for n, d in curves.items()],
          xlabel="capacity factor", ylabel="fraction of assignments dropped",
          title="256 tokens, 8 experts, top-2", loglog=False)

# %% [markdown]
# ## The load-balancing loss
# The lesson's hand example first (it gives 1.25), then an even router (close to 1, the
# minimum) against routers that favour the first experts more and more: the loss grows as the
# load concentrates.

# %%
from exercises.lesson21.routing import load_balance_loss

by_hand = torch.log(torch.tensor([[0.75, 0.25], [0.5, 0.5]]))
print("hand example:", load_balance_loss(by_hand, torch.tensor([[0], [0]])).item())
print("skew | assignments on the busiest expert | loss")
for skew in (0.0, 1.0, 2.0, 4.0):
    logits = torch.randn(512, n_experts) + skew * torch.linspace(1, 0, n_experts)
    ids, _ = topk_route(logits, k)
    busiest = torch.bincount(ids.reshape(-1), minlength=n_experts).max().item() / ids.numel()
    print(f"{skew:4.1f} | {busiest:34.1%} | {load_balance_loss(logits, ids).item():.3f}")

# %% [markdown]
# ## Total and active parameters
# Mixtral-8x7B counted by your `moe_params`; the lesson quotes 46,702,792,704 total and
# 12,879,925,248 active. Then a simulation of the lesson's last table: how many of the 8 experts
# a decode batch touches per layer, with your router on random logits, against
# `8 x (1 - 0.75^B)` for independent, even routing.

# %%
from course.moe import MIXTRAL_8X7B

from exercises.lesson21.sizing import moe_params

total, active = moe_params(MIXTRAL_8X7B)
print(f"Mixtral-8x7B: total {total:,} parameters, active {active:,} "
      f"({active / total:.1%} of them per token)")
print(f"resident in bf16: {2 * total / 1e9:.1f} GB = {2 * total / 2 ** 30:.1f} GiB")

batches = [1, 2, 4, 8, 16, 32]
touched = []
for batch in batches:
    counts = [topk_route(torch.randn(batch, 8), 2)[0].unique().numel() for _ in range(200)]
    touched.append(sum(counts) / len(counts))
formula = [8 * (1 - 0.75 ** b) for b in batches]
for b, t, f in zip(batches, touched, formula):
    print(f"batch {b:2d}: experts touched {t:.2f} (simulated), {f:.2f} (formula)")
show_plot("experts_touched", lines=[Line("your router, random logits", batches, touched),
                                    Line("8 (1 - 0.75^B)", batches, formula)],
          points=[Marker("batch 1: 2 experts", 1, 2.0)],
          xlabel="decode batch B (tokens)", ylabel="experts read per layer (of 8)",
          title="Small-batch decode reads almost every expert", loglog=False)

# %% [markdown]
# ## Bytes of one dispatch all-to-all
# The lesson's example (4,096 tokens, top-2, d_model 4,096, bf16, 8 ranks: 58,720,256 B) and how
# the bytes a rank sends grow with the number of ranks: the share that stays local shrinks as
# `1 / ep`. A layer sends this twice (dispatch and combine).

# %%
from exercises.lesson21.sizing import ep_all_to_all_bytes

print("ep | bytes sent by one rank per dispatch | MiB")
for ep in (1, 2, 4, 8, 16):
    sent = ep_all_to_all_bytes(4096, 2, 4096, ep, 2)
    print(f"{ep:2d} | {sent:35,.0f} | {sent / 2 ** 20:6.1f}")

# %% [markdown]
# ## Run the visible tests
# The same tests as `pytest exercises/lesson21` in a terminal; they run `ep_moe_layer` on gloo
# ranks. Your instructor's graders go further.

# %%
run_tests("lesson21")

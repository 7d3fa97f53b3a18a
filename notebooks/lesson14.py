# %% [markdown]
# # Lesson 14: Speculative decoding
#
# A notebook to try this lesson's pieces on **your own code** (`exercises/lesson14/`) while you
# write them. Read [the lesson](../learning/lesson14.md) first. Each cell below calls one of your
# functions; until you write it, the cell stops with `NotImplementedError` naming the section to
# read. Edit the file, re-run the cell: the new code runs (autoreload is on). The last cell runs
# the lesson's visible tests.

# %%
from autograder.lab import run_tests, setup, show_plot

setup("lesson14")

# %% [markdown]
# ## Two distributions and their overlap
# A target and a draft over a vocabulary of 8 tokens (the draft a blurred, noisy copy of the
# target). The picture draws both and their pointwise minimum: your `acceptance_rate` is the area
# under that minimum. It is checked against one minus the total variation distance, computed
# here from its own formula, for a batch of rows too.

# %%
import torch

from course.plot import Line, Marker
from exercises.lesson14.acceptance import acceptance_rate

VOCAB = 8
g = torch.Generator().manual_seed(14)
logits = 2.0 * torch.randn(VOCAB, generator=g)
p_target = torch.softmax(logits, -1)
p_draft = torch.softmax(0.6 * logits + 0.5 * torch.randn(VOCAB, generator=g), -1)
beta = acceptance_rate(p_draft, p_target)
print(f"acceptance_rate: {float(beta):.4f}   1 - TV distance: "
      f"{float(1 - 0.5 * (p_draft - p_target).abs().sum()):.4f}")
rows_t = torch.softmax(torch.randn(4, 3, VOCAB, generator=g), -1)
rows_d = torch.softmax(torch.randn(4, 3, VOCAB, generator=g), -1)
batch = acceptance_rate(rows_d, rows_t)
print("a [4, 3, 8] batch gives shape", tuple(batch.shape), "| max error against 1 - TV:",
      f"{float((batch - (1 - 0.5 * (rows_d - rows_t).abs().sum(-1))).abs().max()):.1e}")
print(f"identical rows: {float(acceptance_rate(p_target, p_target)):.6f}")
ids = list(range(VOCAB))
data = show_plot("overlap", lines=[Line("target", ids, p_target.tolist()),
                                   Line("draft", ids, p_draft.tolist()),
                                   Line("min(draft, target)", ids,
                                        torch.minimum(p_draft, p_target).tolist())],
                 xlabel="token id", ylabel="probability",
                 title=f"Overlap of draft and target: beta = {float(beta):.3f}", loglog=False)

# %% [markdown]
# ## The rejection rule
# One step with `gamma = 3`: the draft samples three tokens from its row, your
# `speculative_accept` keeps a prefix of them and adds one token. Then 5,000 seeded steps: the
# first token each step emits should follow the **target**, not the draft, even though the draft
# proposed it. The table compares the frequencies; the last lines compare the mean number of
# tokens per step with the lesson's formula at `alpha = beta` (same rows at every position, so
# the acceptances are independent).

# %%
from exercises.lesson14.acceptance import speculative_accept

GAMMA = 3
gen = torch.Generator().manual_seed(0)
P_DRAFT, P_TARGET = p_draft.expand(GAMMA, VOCAB), p_target.expand(GAMMA + 1, VOCAB)
drafted = torch.multinomial(p_draft, GAMMA, replacement=True, generator=gen)
n, nxt = speculative_accept(P_DRAFT, P_TARGET, drafted, gen)
print(f"drafted {drafted.tolist()}: kept {n}, then token {nxt}; emitted {drafted[:n].tolist() + [nxt]}")

STEPS = 5000
first = torch.zeros(VOCAB)
emitted = 0
for _ in range(STEPS):
    drafted = torch.multinomial(p_draft, GAMMA, replacement=True, generator=gen)
    n, nxt = speculative_accept(P_DRAFT, P_TARGET, drafted, gen)
    first[int(drafted[0]) if n > 0 else nxt] += 1
    emitted += n + 1
freq = first / STEPS
print(f"\n{'token':>5} | {'draft':>6} | {'target':>6} | first emitted ({STEPS} steps)")
for t in range(VOCAB):
    print(f"{t:5d} | {float(p_draft[t]):6.3f} | {float(p_target[t]):6.3f} | {float(freq[t]):6.3f}")
print(f"max |frequency - target| = {float((freq - p_target).abs().max()):.3f}, "
      f"max |frequency - draft| = {float((freq - p_draft).abs().max()):.3f}")
mc_tokens = emitted / STEPS
print(f"tokens per step: {mc_tokens:.3f} measured; the formula comes next")

# %% [markdown]
# ## How many tokens a step emits
# Your `expected_tokens_per_step` for the lesson's table, then drawn against the draft length
# for five acceptance rates. Each curve flattens towards its ceiling `1 / (1 - alpha)`. The dot
# is the Monte-Carlo mean of the previous cell, at its own `beta` and `gamma = 3`.

# %%
from exercises.lesson14.draft_length import expected_tokens_per_step

alphas, gammas = [0.5, 0.6, 0.7, 0.8, 0.9], [1, 2, 4, 8]
print("alpha | " + " | ".join(f"gamma = {g}" for g in gammas))
for a in alphas:
    print(f"  {a} | " + " | ".join(f"{expected_tokens_per_step(a, g):9.2f}" for g in gammas))
print("alpha = 1, gamma = 4:", expected_tokens_per_step(1.0, 4))
b = float(beta)
print(f"beta = {b:.3f}, gamma = {GAMMA}: formula {expected_tokens_per_step(b, GAMMA):.3f}, "
      f"Monte Carlo {mc_tokens:.3f}")
span = list(range(0, 17))
data = show_plot("tokens_per_step",
                 lines=[Line(f"alpha = {a}", span, [expected_tokens_per_step(a, g) for g in span])
                        for a in alphas],
                 points=[Marker(f"5,000 steps, beta = {b:.2f}", GAMMA, mc_tokens)],
                 xlabel="draft length gamma", ylabel="expected tokens per step",
                 title="Tokens per target run against draft length", loglog=False)

# %% [markdown]
# ## The best draft length
# The speedup against the draft length at `alpha = 0.8`, for a draft that costs 5% and 20% of a
# target run; your `optimal_gamma` marks each peak. The table repeats the lesson's: the best
# length and its speedup for both costs.

# %%
from exercises.lesson14.draft_length import expected_speedup, optimal_gamma

lines, points = [], []
for cost in (0.05, 0.2):
    best = optimal_gamma(0.8, cost, 16)
    lines.append(Line(f"cost_ratio {cost}", span, [expected_speedup(0.8, g, cost) for g in span]))
    points.append(Marker(f"cost {cost}: best gamma {best}", best, expected_speedup(0.8, best, cost)))
print("alpha | best gamma at cost_ratio 0.05 | best gamma at cost_ratio 0.2")
for a in alphas:
    cells = []
    for cost in (0.05, 0.2):
        best = optimal_gamma(a, cost, 16)
        cells.append(f"{best:2d} ({expected_speedup(a, best, cost):.2f}x)")
    print(f"  {a} | {cells[0]:>29} | {cells[1]:>28}")
print("a draft that is always wrong:", optimal_gamma(0.0, 0.05, 16))
data = show_plot("speedup", lines=lines, points=points, xlabel="draft length gamma",
                 ylabel="expected speedup (x)", title="Speedup at alpha = 0.8", loglog=False)

# %% [markdown]
# ## The draft and verify loop
# Two small table models (the next token's logits depend on the last token and the position),
# as in the visible tests. Greedy `spec_decode` must give the target's own greedy tokens
# whatever the draft; what the draft changes is how many target calls it takes. A draft equal
# to the target needs one call per `gamma + 1` tokens.

# %%
from exercises.lesson14.spec_decode import prompt_lookup_draft, spec_decode

V = 5


def table_model(seed, scale=2.0):
    gt = torch.Generator().manual_seed(seed)
    table, by_pos = scale * torch.randn(V, V, generator=gt), torch.randn(64, V, generator=gt)
    return lambda ids, n_last: table[ids[len(ids) - n_last:]] + by_pos[len(ids) - n_last:len(ids)]


def counted(model, calls):
    def run(ids, n_last):
        calls.append(n_last)
        return model(ids, n_last)
    return run


target, prompt, N = table_model(0), torch.tensor([1, 4, 2]), 24
seq = prompt.tolist()
for _ in range(N):  # plain greedy decoding of the target, one call per token
    seq.append(int(target(torch.tensor(seq), 1)[-1].argmax()))
want = seq[len(prompt):]
print("target alone, greedy:", want)
print(f"{'draft':<22} | gamma | same tokens | target calls")
for name, draft in [("the target itself", table_model(0)), ("another table model", table_model(1)),
                    ("prompt lookup", prompt_lookup_draft(V))]:
    for gamma in (1, 4):
        calls = []
        got = spec_decode(counted(target, calls), draft, prompt, N, gamma)
        print(f"{name:<22} | {gamma:5d} | {str(got == want):>11} | {len(calls)} "
              f"(rows asked: {set(calls)})")

# %% [markdown]
# ## Sampling with a seeded generator
# At a temperature above 0 the loop samples, and the generator is its only source of
# randomness: the same seed gives the same tokens, whatever the global seed is meanwhile.
# (That the sampled tokens follow the target's distribution is what the rejection-rule cell
# above measured, one step at a time.)

# %%
runs = []
for global_seed in (1, 2):
    torch.manual_seed(global_seed)
    seeded = torch.Generator().manual_seed(5)
    runs.append(spec_decode(target, table_model(1), prompt, 16, 3, temperature=0.7,
                            generator=seeded))
print("temperature 0.7, seed 5:", runs[0])
print("same tokens under another global seed:", runs[0] == runs[1])

# %% [markdown]
# ## On the real model, with prompt lookup
# SmolLM2-135M as the target (behind the given `hf_logits_fn`, which keeps its own KV cache) and
# prompt lookup as the draft, greedy. The oracle is one teacher-forced pass of HF
# transformers over the result: every token must be the model's argmax given the ones before
# it. On text that repeats itself (24 tokens) many drafts are kept and the target runs far
# fewer times than there are tokens; on prose (8 tokens) most drafts are rejected. The model loads once (a few seconds; the first load
# ever converts the file and takes longer).

# %%
from course.testing import is_greedy_continuation
from exercises.lesson14.spec_decode import hf_logits_fn

try:
    from course.model import load_hf_model, load_tokenizer
    model, tok = load_hf_model(), load_tokenizer()
except (ModuleNotFoundError, FileNotFoundError) as exc:
    print("the real model is not installed, skipping this cell:", exc)
    model = None
if model is not None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # batch-1 decode of a small model: more threads only contend
    for text, n_new in [("red, green, blue, red, green, blue, red, green, blue, red,", 24),
                        ("The capital of France is", 8)]:
        ids = torch.tensor(tok.encode(text), dtype=torch.long)
        calls = []
        got = spec_decode(counted(hf_logits_fn(model), calls),
                          prompt_lookup_draft(model.config.vocab_size), ids, n_new, 4)
        print(f"{text!r}\n  -> {tok.decode(got)!r}\n  every token the model's greedy choice: "
              f"{is_greedy_continuation(model, ids.tolist(), got)}; {len(got)} tokens in "
              f"{len(calls)} target calls ({len(got) / len(calls):.2f} tokens per call)")
    torch.set_num_threads(threads)

# %% [markdown]
# ## Run the visible tests
# The same tests as `pytest exercises/lesson14` in a terminal. Your instructor's graders go
# further (chi-square tests of the emitted tokens, the formula against your rule, `eos_id`,
# and greedy decoding on the real model against HF transformers).

# %%
run_tests("lesson14")

# %% [markdown]
# # Lesson 02: Generation and sampling
#
# A notebook to try this lesson's pieces on **your own code** (`exercises/lesson02/`) while you
# write them. Read [the lesson](../learning/lesson02.md) first. Each cell below calls one of your
# functions; until you write it, the cell stops with `NotImplementedError` naming the section to
# read. Edit the file, re-run the cell: the new code runs (autoreload is on). The last cell runs
# the lesson's visible tests.

# %%
from autograder.lab import run_tests, setup, show_plot

setup("lesson02")

# %% [markdown]
# ## The filters on the lesson's worked example
# Four tokens with probabilities `[0.5, 0.3, 0.15, 0.05]`. Each row is one setting of your
# `filtered_probs`; compare with the table in the lesson, in particular the two top-p rows (the
# token that crosses the threshold is kept).

# %%
import torch

from exercises.lesson02.sampling import filtered_probs, sample

p = torch.tensor([0.5, 0.3, 0.15, 0.05])
logits = p.log()
settings = [dict(), dict(top_k=3), dict(top_p=0.7), dict(top_p=0.8), dict(min_p=0.2),
            dict(top_k=3, top_p=0.9, min_p=0.4)]
print(f"{'setting':34s} {'distribution after the filters':>32s}")
for kw in settings:
    q = filtered_probs(logits, **kw)
    name = ", ".join(f"{k}={v}" for k, v in kw.items()) or "no filter"
    print(f"{name:34s} {str([round(v, 3) for v in q.tolist()]):>32s}")

# %% [markdown]
# Temperature divides the logits before the softmax: below 1 it sharpens, above 1 it flattens.
# The entropy column (in bits) measures how spread out each distribution is.

# %%
print(f"{'temperature':>11s} {'distribution':>34s} {'entropy (bits)':>15s}")
for t in (0.25, 0.5, 1.0, 2.0, 4.0):
    q = filtered_probs(logits, temperature=t)
    entropy = -(q * q.log2()).sum()
    print(f"{t:11.2f} {str([round(v, 3) for v in q.tolist()]):>34s} {entropy:15.3f}")

# %% [markdown]
# ## Drawing tokens
# `sample` at temperature 0 is the argmax. Otherwise it draws from the filtered distribution
# using only the generator you pass: the same seed gives the same tokens, and the global RNG is
# not touched. Then 20,000 draws with `top_k=3`: the observed frequencies should sit near the
# filtered probabilities, and token 3 should never come up.

# %%
batch = logits.expand(5, 4)
print("greedy:", sample(batch, temperature=0).tolist())
state = torch.random.get_rng_state()
first = sample(batch, generator=torch.Generator().manual_seed(7))
again = sample(batch, generator=torch.Generator().manual_seed(7))
print("seed 7 twice:", first.tolist(), again.tolist())
print("global RNG untouched:", torch.equal(state, torch.random.get_rng_state()))

draws = sample(logits.expand(20000, 4), top_k=3, generator=torch.Generator().manual_seed(0))
counts = torch.bincount(draws, minlength=4)
expected = filtered_probs(logits, top_k=3)
print(f"{'token':>5s} {'observed':>9s} {'expected':>9s}")
for i in range(4):
    print(f"{i:5d} {counts[i] / 20000:9.4f} {expected[i]:9.4f}")

# %% [markdown]
# ## The filters on a real next-token distribution
# SmolLM2-135M's distribution for the token after an open-ended prompt, its 25 most probable
# tokens ranked from the top. Each curve is what your `filtered_probs` leaves: temperature
# reshapes the whole curve, the filters cut its tail to zero and lift what is kept. The table
# says how many tokens each setting keeps out of the whole vocabulary.

# %%
from course.model import hf_forward_with_cache, load_hf_model, load_tokenizer
from course.plot import Line

model, tokenizer = load_hf_model(), load_tokenizer()
prompt = torch.tensor([tokenizer.encode("I went to the market and bought some")])
with torch.no_grad():
    next_logits = model(prompt).logits[0, -1]
order = next_logits.argsort(descending=True)
ranks = list(range(1, 26))
curves = {"T = 1, no filter": dict(), "T = 0.7": dict(temperature=0.7),
          "T = 1.5": dict(temperature=1.5), "top_k = 5": dict(top_k=5),
          "top_p = 0.5": dict(top_p=0.5), "min_p = 0.2": dict(min_p=0.2)}
lines = []
print(f"{'setting':18s} {'tokens kept':>12s} {'top token prob':>15s}")
for name, kw in curves.items():
    q = filtered_probs(next_logits, **kw)
    print(f"{name:18s} {int((q > 0).sum()):12,d} {q.max():15.3f}")
    lines.append(Line(name, ranks, q[order[:25]].tolist()))
print("most probable next tokens:", [tokenizer.decode([int(i)]) for i in order[:8]])
show_plot("filters", lines=lines, xlabel="rank of the token (by the model's probability)",
          ylabel="probability after the filter", loglog=False,
          title="Temperature, top-p, min-p and top-k on one real distribution")

# %% [markdown]
# ## The generation loop
# Your `generate` drives HF's model through a `forward_fn` that also records what it is given.
# The prompt should go in once, then one token per call with the cache: `n` calls for `n` new
# tokens.

# %%
from exercises.lesson02.generation import generate

calls = []


def recording_forward(ids, cache):
    calls.append((tuple(ids.shape), cache is None))
    return hf_forward_with_cache(model, ids, cache)


out = generate(recording_forward, prompt, 12, lambda l: sample(l, temperature=0))
print("output:", tuple(prompt.shape), "->", tuple(out.shape))
print("calls (input shape, cache empty?):", calls)
print("greedy:", repr(tokenizer.decode(out[0].tolist())))
for seed in (0, 1):
    gen = torch.Generator().manual_seed(seed)
    out = generate(recording_forward, prompt, 12,
                   lambda l: sample(l, temperature=0.8, top_p=0.9, generator=gen))
    print(f"T=0.8, top_p=0.9, seed {seed}:", repr(tokenizer.decode(out[0, prompt.shape[1]:].tolist())))

# %% [markdown]
# What the cache saves: the tokens your loop runs through the model (counted by the recording
# `forward_fn`) against a loop that re-runs the whole sequence at every step, for a 50-token
# prompt. Matmul work is proportional to these counts; one curve grows linearly, the other as
# the square of the number of new tokens.

# %%
def fake_model(vocab=16):
    def forward_fn(ids, cache):
        fed.append(ids.shape[1])
        return torch.zeros(ids.shape[0], ids.shape[1], vocab), cache
    return forward_fn


T, news, cached, uncached = 50, [1, 2, 5, 10, 20, 50, 100, 200, 500], [], []
for n in news:
    fed = []
    generate(fake_model(), torch.zeros(1, T, dtype=torch.long), n, lambda l: l.argmax(-1))
    cached.append(sum(fed))
    uncached.append(sum(T + s for s in range(n)))
for n, c, u in zip(news, cached, uncached):
    print(f"{n:4d} new tokens: cached loop ran {c:6,d} tokens, re-running everything {u:7,d}")
show_plot("cache_saving", lines=[Line("with the cache (your generate)", news, cached),
                                 Line("re-running the whole sequence", news, uncached)],
          xlabel="new tokens", ylabel="tokens run through the model", loglog=True,
          title="A 50-token prompt: tokens processed with and without a cache")

# %% [markdown]
# ## Stopping at `eos_id`
# A scripted model whose logits always point at (last token + 1) mod 10, with `eos_id = 0`: the
# second row reaches 0 first and is padded with it while the first row goes on; the loop stops
# once both rows have finished.

# %%
def plus_one(ids, cache):
    return torch.nn.functional.one_hot((ids + 1) % 10, 10).float(), cache


print(generate(plus_one, torch.tensor([[1, 2], [6, 7]]), 12, lambda l: l.argmax(-1), eos_id=0))

# %% [markdown]
# ## Run the visible tests
# The same tests as `pytest exercises/lesson02` in a terminal. Your instructor's graders go
# further (a chi-square test of the sampler, brute-force filters, greedy text against HF's
# `generate`).

# %%
run_tests("lesson02")

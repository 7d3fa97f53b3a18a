"""Hidden grader, lesson 14: spec_decode on small table models.

A table model's logits depend on the last token and its position, through the
``(ids, n_last) -> [n_last, vocab]`` contract. References: greedy decoding of the target alone
(one token at a time, written here), the target's own chain of distributions for sampled
output (Pearson's chi-square over seeded runs, course.stats.chi_square), and a log of calls.
"""

import math

import pytest
import torch

from course.stats import chi_square
from course.testing import torch_threads
from exercises.lesson14.spec_decode import prompt_lookup_draft, spec_decode

VOCAB = 5


@pytest.fixture
def one_thread():
    with torch_threads(1):
        yield


def table_model(seed, scale=2.0, calls=None, vocab=VOCAB, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    table = scale * torch.randn(vocab, vocab, generator=g)
    by_pos = torch.randn(128, vocab, generator=g)

    def logits(ids, n_last):
        if calls is not None:
            calls.append((len(ids), n_last))
        T = len(ids)
        return (table[ids[T - n_last:]] + by_pos[T - n_last:T]).to(dtype)
    return logits


def sharp_model(seed, gap=300.0, vocab=VOCAB):
    """A model whose top token leads the rest by ``gap`` logits: sampling equals argmax."""
    g = torch.Generator().manual_seed(seed)
    best = torch.randint(0, vocab, (vocab, 128), generator=g)

    def logits(ids, n_last):
        T = len(ids)
        rows = torch.randn(n_last, vocab, generator=torch.Generator().manual_seed(T))
        hot = best[ids[T - n_last:], torch.arange(T - n_last, T)]
        return rows.index_put((torch.arange(n_last), hot), torch.full((n_last,), gap))
    return logits


def greedy_decode(model, prompt, n):
    seq = prompt.tolist()
    for _ in range(n):
        seq.append(int(model(torch.tensor(seq), 1)[-1].argmax()))
    return seq[len(prompt):]


@pytest.mark.points(3)
@pytest.mark.parametrize("gamma", [1, 2, 5])
def test_greedy_equals_greedy_decoding_of_the_target(gamma):
    """Bugs: the target's rows misaligned with the drafts (scoring draft i with the row that
    predicts draft i + 1), accepted drafts dropped (one token per step), counting the kept
    tokens off by one, the next token taken from the draft."""
    target, prompt = table_model(0), torch.tensor([1, 4, 2])
    want = greedy_decode(target, prompt, 17)
    for name, draft in [("target itself", table_model(0)), ("another table", table_model(1)),
                        ("a weak table", table_model(9, scale=0.3)),
                        ("prompt lookup", prompt_lookup_draft(VOCAB))]:
        got = spec_decode(target, draft, prompt, 17, gamma)
        assert got == want, (f"draft = {name}, gamma = {gamma}: greedy speculative decoding gave "
                             f"{got}, greedy decoding of the target gives {want}")
    assert prompt.tolist() == [1, 4, 2], "the prompt must be left unchanged"


@pytest.mark.points(2)
def test_one_target_call_per_step():
    """Bug: the target run once per draft token (or once more for the next token) instead of
    once per step over all gamma + 1 positions."""
    for gamma, n in [(3, 10), (4, 5), (1, 7)]:
        calls = []
        spec_decode(table_model(0, calls=calls), table_model(0), torch.tensor([3, 1]), n, gamma)
        steps = math.ceil(n / (gamma + 1))
        assert len(calls) == steps and all(k == gamma + 1 for _, k in calls), (
            f"gamma={gamma}, {n} tokens, a draft that always agrees: expected {steps} target "
            f"calls for {gamma + 1} rows each; got (length, n_last) = {calls}")
    calls = []
    never = prompt_lookup_draft(VOCAB)  # mostly wrong: every step still costs one target call
    out = spec_decode(table_model(0, calls=calls), never, torch.tensor([3, 1]), 9, 3)
    assert len(calls) <= len(out), f"{len(calls)} target calls for {len(out)} tokens"


@pytest.mark.points(2)
@pytest.mark.parametrize("n", [1, 4, 5, 6, 11])
def test_exactly_max_new_tokens(n):
    """Bug: the last step's tokens not cut at max_new_tokens (or cut one short / one long)."""
    got = spec_decode(table_model(0), table_model(0), torch.tensor([2]), n, 4)
    assert got == greedy_decode(table_model(0), torch.tensor([2]), n), got
    assert spec_decode(table_model(0), table_model(0), torch.tensor([2]), 0, 4) == []


@pytest.mark.points(2)
def test_eos_stops_generation_even_mid_step():
    """Bugs: tokens after eos kept when a step accepted several at once; eos id 0 ignored
    (``if eos_id:``)."""
    target, prompt = table_model(0), torch.tensor([1, 4, 2])
    full = greedy_decode(target, prompt, 30)
    for eos in sorted(set(full))[:3]:
        want = full[:full.index(eos) + 1]
        for draft in (table_model(0), table_model(1)):
            got = spec_decode(target, draft, prompt, 30, 4, eos_id=eos)
            assert got == want, f"eos_id={eos}: expected {want}, got {got}"
    assert 0 in full, "test setup: token 0 must appear in the greedy output"


def pair_counts(target, draft, temp, runs, seed, gamma=2):
    g = torch.Generator().manual_seed(seed)
    counts = torch.zeros(VOCAB, VOCAB)
    for _ in range(runs):
        a, b = spec_decode(target, draft, torch.tensor([0]), 2, gamma, temperature=temp,
                           generator=g)
        counts[a, b] += 1
    first = torch.softmax(target(torch.tensor([0]), 1)[-1] / temp, -1)
    second = torch.stack([torch.softmax(target(torch.tensor([0, a]), 1)[-1] / temp, -1)
                          for a in range(VOCAB)])
    return counts, first[:, None] * second


@pytest.mark.points(4)
@pytest.mark.parametrize("temp", [1.0, 0.6])
def test_sampled_output_follows_the_target(temp, one_thread):
    """Bugs: temperature applied to the draft's sampling but not to the distribution handed to
    the rule (or not to the target's); drafts sampled from one distribution and verified
    against another. The pair (first, second token) over 1,500 seeded runs must follow the
    target's chain at that temperature (p > 1e-4)."""
    counts, want = pair_counts(table_model(2), table_model(3, scale=1.0), temp, 1500, seed=1)
    stat, dof, p = chi_square(counts, want)
    assert p > 1e-4, (f"temperature {temp}: the pairs of tokens do not follow the target "
                      f"(chi-square {stat:.1f}, {dof} degrees of freedom, p = {p:.2g})")


@pytest.mark.points(1)
def test_huge_logits_sample_like_argmax():
    """Bug: exp(logits / temperature) without subtracting the maximum (inf / inf = NaN) on
    logits that lead by 300. Sampling such a model equals greedy decoding."""
    target, draft = sharp_model(0), sharp_model(1)
    want = greedy_decode(target, torch.tensor([1, 2]), 12)
    got = spec_decode(target, draft, torch.tensor([1, 2]), 12, 3, temperature=1.0,
                      generator=torch.Generator().manual_seed(0))
    assert got == want, f"got {got}, expected the argmax chain {want}"


@pytest.mark.points(1)
def test_same_seed_same_tokens():
    """Bug: the global RNG used for the draft's samples or the rule (so a seed does not fix
    the output), or an int list not returned."""
    target, draft = table_model(2), table_model(3)
    runs = []
    for global_seed in (0, 1):
        torch.manual_seed(global_seed)
        runs.append(spec_decode(target, draft, torch.tensor([0]), 20, 3, temperature=0.8,
                                generator=torch.Generator().manual_seed(5)))
    assert runs[0] == runs[1], f"same generator seed, different tokens: {runs}"
    assert all(type(t) is int for t in runs[0]), "return a list of Python ints"

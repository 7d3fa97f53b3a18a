"""Lesson 14, part 3: speculative decoding end to end. Run: pytest exercises/lesson14

The models are small tables of logits (next token from the last token and its position):
greedy speculative decoding must equal greedy decoding of the target alone, and sampled
speculative decoding must draw the first two tokens as the target alone would (chi-square).
"""

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


def table_model(seed, scale=2.0, calls=None):
    """logits of row t depend on ids[t] and on t (so the context matters, not just one token)."""
    g = torch.Generator().manual_seed(seed)
    table, by_pos = scale * torch.randn(VOCAB, VOCAB, generator=g), torch.randn(64, VOCAB, generator=g)

    def logits(ids, n_last):
        if calls is not None:
            calls.append((len(ids), n_last))
        T = len(ids)
        return table[ids[T - n_last:]] + by_pos[T - n_last:T]
    return logits


def greedy_decode(model, prompt, n):
    seq = prompt.tolist()
    for _ in range(n):
        seq.append(int(model(torch.tensor(seq), 1)[-1].argmax()))
    return seq[len(prompt):]


@pytest.mark.parametrize("gamma", [1, 3])
def test_greedy_speculative_equals_greedy_target(gamma):
    target, prompt = table_model(0), torch.tensor([1, 4, 2])
    want = greedy_decode(target, prompt, 12)
    for draft in (table_model(0), table_model(1), prompt_lookup_draft(VOCAB)):
        got = spec_decode(target, draft, prompt, 12, gamma)
        assert got == want, f"greedy speculative decoding gave {got}, greedy decoding of the " \
                            f"target gives {want} (gamma={gamma})"


def test_target_runs_once_per_step():
    calls = []
    target = table_model(0, calls=calls)
    got = spec_decode(target, table_model(0), torch.tensor([3]), 10, 3)
    assert len(got) == 10, f"asked for 10 tokens, got {len(got)}: cut the last step's tokens"
    assert calls == [(4, 4), (8, 4), (12, 4)], (
        f"a draft equal to the target has every token accepted: each step emits gamma + 1 = 4 "
        f"tokens, so 10 tokens take ceil(10 / 4) = 3 target calls, each for gamma + 1 = 4 rows "
        f"of the prompt plus the tokens so far plus 3 drafts; got (length, n_last) = {calls}")
    assert spec_decode(target, table_model(0), torch.tensor([3]), 0, 3) == []


def test_sampled_output_follows_the_target(one_thread):
    """First two tokens of 1,500 seeded runs at temperature 0.7, against the target's chain."""
    target, draft, prompt, temp = table_model(2), table_model(3), torch.tensor([0]), 0.7
    g = torch.Generator().manual_seed(0)
    counts = torch.zeros(VOCAB, VOCAB)
    for _ in range(1500):
        a, b = spec_decode(target, draft, prompt, 2, 2, temperature=temp, generator=g)
        counts[a, b] += 1
    first = torch.softmax(target(prompt, 1)[-1] / temp, -1)
    second = torch.stack([torch.softmax(target(torch.tensor([0, a]), 1)[-1] / temp, -1)
                          for a in range(VOCAB)])
    stat, dof, p = chi_square(counts, first[:, None] * second)
    assert p > 1e-4, (f"the pairs (first, second token) do not follow the target at temperature "
                      f"{temp}: chi-square {stat:.1f} with {dof} degrees of freedom, p = {p:.2g}")

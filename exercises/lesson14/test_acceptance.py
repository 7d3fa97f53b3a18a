"""Lesson 14, part 1: the rejection rule. Run: pytest exercises/lesson14

References: hand-worked one-hot cases (the greedy limit), and the target's own probabilities
checked by Pearson's chi-square over many seeded draws (course.stats.chi_square). The draws use
a fixed seed, so each run gives the same statistic: the test never flakes.
"""

import pytest
import torch

from course.stats import chi_square
from course.testing import torch_threads
from exercises.lesson14.acceptance import acceptance_rate, speculative_accept

P_MIN = 1e-4  # the chi-square p-value below which the output is not the target's distribution


@pytest.fixture
def one_thread():
    """Thousands of calls on tiny tensors: extra threads only add overhead on a busy machine."""
    with torch_threads(1):
        yield


def one_hot(ids, vocab):
    return torch.nn.functional.one_hot(torch.tensor(ids), vocab).float()


def test_one_hot_distributions_make_the_rule_greedy():
    # Draft proposes 3, 5, 1; the target's argmax is 3, 5, 2 and 7 after all three.
    p_draft, p_target = one_hot([3, 5, 1], 8), one_hot([3, 5, 2, 7], 8)
    g = torch.Generator().manual_seed(0)
    assert speculative_accept(p_draft, p_target, torch.tensor([3, 5, 1]), g) == (2, 2), \
        "tokens 3 and 5 match the target and are kept; token 1 has target probability 0 and " \
        "is rejected; the residual max(0, p_target - p_draft) is one-hot at 2"
    assert speculative_accept(p_draft[:2], p_target[[0, 1, 3]], torch.tensor([3, 5]), g) == (2, 7), \
        "both drafts kept: the bonus token comes from the last row of p_target"
    assert speculative_accept(one_hot([4], 8), one_hot([6, 0], 8), torch.tensor([4]), g) == (0, 6)
    n, nxt = speculative_accept(p_draft, p_target, torch.tensor([3, 5, 1]), g)
    assert isinstance(n, int) and isinstance(nxt, int), "return Python ints, not tensors"


def test_equal_distributions_accept_everything():
    """p_target == p_draft: every ratio is 1, nothing is rejected, the residual (all zeros)
    must never be sampled; the bonus comes from row gamma."""
    g = torch.Generator().manual_seed(1)
    p = torch.softmax(torch.randn(3, 5, generator=g), -1)
    p_target = torch.cat([p, one_hot([4], 5)])
    for _ in range(20):
        tokens = torch.multinomial(p, 1, generator=g)[:, 0]
        assert speculative_accept(p, p_target, tokens, g) == (3, 4)


def test_acceptance_rate_is_the_overlap_of_the_two_distributions():
    p_draft = torch.tensor([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5]])
    p_target = torch.tensor([[0.0, 0.5, 0.5], [0.2, 0.3, 0.5]])
    got = acceptance_rate(p_draft, p_target)
    assert got.shape == (2,), f"one rate per row: expected shape (2,), got {tuple(got.shape)}"
    assert torch.allclose(got, torch.tensor([0.5, 1.0])), got


def test_emitted_tokens_follow_the_target_distribution(one_thread):
    """Position j of a step's output (a kept draft token, the residual sample or the bonus)
    must be distributed as p_target[j], counting the steps that reach position j."""
    vocab, gamma, draws = 6, 2, 5_000
    g = torch.Generator().manual_seed(14)
    p_target = torch.softmax(1.5 * torch.randn(gamma + 1, vocab, generator=g), -1)
    p_draft = torch.softmax(p_target.log()[:gamma] + torch.randn(gamma, vocab, generator=g), -1)
    drafts = torch.multinomial(p_draft, draws, replacement=True, generator=g).T  # [draws, gamma]
    counts = torch.zeros(gamma + 1, vocab)
    for tokens in drafts:
        n, nxt = speculative_accept(p_draft, p_target, tokens, g)
        for j, tok in enumerate(tokens[:n].tolist() + [nxt]):
            counts[j, tok] += 1
    for j in range(gamma + 1):
        stat, dof, p = chi_square(counts[j], p_target[j])
        assert p > P_MIN, (
            f"position {j}: the tokens emitted there ({int(counts[j].sum())} steps) do not follow "
            f"p_target[{j}]: chi-square {stat:.1f} with {dof} degrees of freedom, p = {p:.2g}. "
            f"Counts {counts[j].int().tolist()}, expected proportions "
            f"{[round(x, 3) for x in p_target[j].tolist()]}")


def test_bad_inputs_are_refused_in_plain_words():
    p = torch.full((2, 4), 0.25)
    p_target = torch.full((3, 4), 0.25)
    speculative_accept(p, p_target, torch.tensor([0, 1]), torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="gamma"):
        speculative_accept(p[:0], p_target[:1], torch.tensor([], dtype=torch.int64))
    with pytest.raises(ValueError, match="p_target"):
        speculative_accept(p, p_target[:2], torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="probabilities"):
        speculative_accept(p * 4, p_target, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="probability 0"):
        speculative_accept(torch.tensor([[1.0, 0, 0, 0], [0.25] * 4]), p_target,
                           torch.tensor([2, 1]))

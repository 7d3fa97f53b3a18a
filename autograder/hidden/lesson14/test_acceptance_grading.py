"""Hidden grader, lesson 14: the rejection rule and the acceptance rate.

References: one-hot distributions (the greedy limit, where the rule is deterministic), the
target's own probabilities checked by Pearson's chi-square over seeded draws
(course.stats.chi_square; the seed is fixed, so the statistic is one number per implementation),
the closed form 1 + alpha + ... + alpha^gamma with alpha computed here as sum(min(p, q)).
"""

import pytest
import torch

from course.stats import chi_square
from course.testing import torch_threads
from exercises.lesson14.acceptance import acceptance_rate, speculative_accept

P_MIN = 1e-4


@pytest.fixture
def one_thread():
    with torch_threads(1):
        yield


def one_hot(ids, vocab):
    return torch.nn.functional.one_hot(torch.tensor(ids), vocab).float()


def distributions(vocab, gamma, seed):
    """Target rows that differ by position; a draft that puts too much mass on some tokens
    (so the residual matters) and too little on others."""
    g = torch.Generator().manual_seed(seed)
    p_target = torch.softmax(1.5 * torch.randn(gamma + 1, vocab, generator=g), -1)
    p_draft = torch.softmax(p_target.log()[:gamma] + 1.2 * torch.randn(gamma, vocab, generator=g), -1)
    return p_draft, p_target, g


@pytest.mark.points(4)
def test_every_emitted_position_follows_the_target(one_thread):
    """Bugs: accepting with probability p_target[x] (or p_draft/p_target) instead of
    min(1, p_target/p_draft); sampling the correction from p_target instead of the residual
    max(0, p_target - p_draft); the residual of the wrong row or pooled over every row; the
    bonus token from row gamma - 1. Position j of a step (kept draft, residual sample or bonus)
    must follow p_target[j] over the steps that reach it; 5,000 seeded steps, p > 1e-4 at each
    position."""
    vocab, gamma, draws = 8, 3, 5_000
    p_draft, p_target, g = distributions(vocab, gamma, seed=7)
    drafts = torch.multinomial(p_draft, draws, replacement=True, generator=g).T
    counts = torch.zeros(gamma + 1, vocab)
    for tokens in drafts:
        n, nxt = speculative_accept(p_draft, p_target, tokens, g)
        assert 0 <= n <= gamma and 0 <= nxt < vocab, f"got n_accepted={n}, next_token={nxt}"
        for j, tok in enumerate(tokens[:n].tolist() + [nxt]):
            counts[j, tok] += 1
    for j in range(gamma + 1):
        stat, dof, p = chi_square(counts[j], p_target[j])
        assert p > P_MIN, (
            f"position {j} of a step: {int(counts[j].sum())} emitted tokens do not follow "
            f"p_target[{j}] (chi-square {stat:.1f}, {dof} degrees of freedom, p = {p:.2g}); "
            f"counts {counts[j].int().tolist()}, expected "
            f"{[round(x * counts[j].sum().item()) for x in p_target[j].tolist()]}")


@pytest.mark.points(2)
def test_mean_tokens_per_step_matches_the_formula(one_thread):
    """Bug: an acceptance probability other than min(1, p_t/p_d), seen as the wrong number of
    tokens per step. The same draft and target at every position: tokens per step must average
    (1 - alpha^(gamma+1)) / (1 - alpha), alpha = sum(min(p_d, p_t)); 3,000 steps, 5 standard
    errors."""
    g = torch.Generator().manual_seed(3)
    vocab, gamma, draws = 6, 4, 3000
    p_t = torch.softmax(torch.randn(vocab, generator=g), -1)
    p_d = torch.softmax(torch.randn(vocab, generator=g), -1)
    alpha = torch.minimum(p_d, p_t).sum().item()
    want = sum(alpha ** i for i in range(gamma + 1))
    drafts = torch.multinomial(p_d, draws * gamma, replacement=True, generator=g).view(draws, gamma)
    emitted = torch.tensor([speculative_accept(p_d.expand(gamma, vocab), p_t.expand(gamma + 1, vocab),
                                               d, g)[0] + 1 for d in drafts], dtype=torch.float64)
    mean, se = emitted.mean().item(), emitted.std().item() / draws ** 0.5
    assert abs(mean - want) < 5 * se, (
        f"alpha = {alpha:.4f}, gamma = {gamma}: steps emitted {mean:.4f} tokens on average "
        f"(+- {se:.4f}); the formula gives {want:.4f}")


@pytest.mark.points(2)
def test_one_hot_cases_are_deterministic():
    """Bugs: rejecting a draft whose ratio is exactly 1, counting the accepted tokens off by
    one, the bonus from the wrong row, token id 0 treated as "none". With one-hot rows the rule
    is greedy verification: keep drafts while they equal the target's token."""
    g = torch.Generator().manual_seed(0)
    cases = [  # draft tokens, target tokens per row, expected (n_accepted, next_token)
        ([3, 5, 1], [3, 5, 2, 7], (2, 2)),
        ([3, 5, 1], [3, 5, 1, 0], (3, 0)),
        ([0, 0], [0, 0, 0], (2, 0)),
        ([4], [6, 0], (0, 6)),
        ([0, 2], [1, 2, 3], (0, 1)),
    ]
    for draft, target, want in cases:
        got = speculative_accept(one_hot(draft, 8), one_hot(target, 8), torch.tensor(draft), g)
        assert got == want, (f"draft {draft}, target argmax per row {target}: expected "
                             f"(n_accepted, next_token) = {want}, got {got}")


@pytest.mark.points(2)
def test_a_ratio_of_one_is_always_accepted():
    """Bugs: sampling the residual before knowing a rejection happened (it is all zeros when
    p_target == p_draft), or a test that can reject at a ratio of exactly 1 (``u <= ratio``
    failing for u drawn in (0, 1], a strict ``ratio > 1`` shortcut). The drafted tokens have
    p_target == p_draft while other tokens differ; every draft must be kept."""
    g = torch.Generator().manual_seed(5)
    p_draft = torch.tensor([[0.5, 0.5, 0.0, 0.0], [0.25, 0.25, 0.25, 0.25]])
    p_target = torch.tensor([[0.5, 0.0, 0.25, 0.25], [0.25, 0.25, 0.25, 0.25], [0, 0, 0, 1.0]])
    for _ in range(50):
        got = speculative_accept(p_draft, p_target, torch.tensor([0, 3]), g)
        assert got == (2, 3), f"both drafts have ratio exactly 1 and must be kept; got {got}"
    same = torch.softmax(torch.randn(3, 6, generator=g), -1)
    for _ in range(50):
        tokens = torch.multinomial(same[:2], 1, generator=g)[:, 0]
        n, nxt = speculative_accept(same[:2], same, tokens, g)
        assert n == 2, f"p_target == p_draft: nothing may be rejected; got n_accepted={n}"


@pytest.mark.points(1)
def test_returns_python_ints_and_leaves_inputs_alone():
    """Bug: tensors returned instead of ints (an engine then indexes lists with 0-d tensors),
    probabilities renormalised in place."""
    p_draft, p_target, g = distributions(5, 2, seed=1)
    before = (p_draft.clone(), p_target.clone())
    for tokens in ([1, 2], [0, 0], [4, 3], [2, 1]) * 5:  # rejections and full acceptances
        n, nxt = speculative_accept(p_draft, p_target, torch.tensor(tokens), g)
        assert type(n) is int and type(nxt) is int, \
            f"expected two ints, got {type(n).__name__} and {type(nxt).__name__}"
    assert torch.equal(p_draft, before[0]) and torch.equal(p_target, before[1])


@pytest.mark.points(1)
def test_seeded_generator_is_the_only_randomness():
    """Bug: torch.rand or multinomial without the generator (the global RNG): the same seed
    must give the same decisions whatever the global seed."""
    p_draft, p_target, _ = distributions(6, 3, seed=2)
    tokens = torch.tensor([0, 1, 2])
    runs = []
    for global_seed in (0, 1):
        torch.manual_seed(global_seed)
        g = torch.Generator().manual_seed(11)
        runs.append([speculative_accept(p_draft, p_target, tokens, g) for _ in range(30)])
    assert runs[0] == runs[1], "same generator seed, different results: the global RNG was used"


@pytest.mark.points(1)
def test_acceptance_rate_per_row():
    """Bug: the overlap summed over the whole batch instead of per row."""
    p_draft, p_target, _ = distributions(6, 3, seed=4)
    got = acceptance_rate(p_draft, p_target[:3])
    want = torch.tensor([sum(min(a, b) for a, b in zip(p_draft[i].tolist(), p_target[i].tolist()))
                         for i in range(3)])
    assert got.shape == (3,), f"one rate per row: shape (3,), got {tuple(got.shape)}"
    assert torch.allclose(got, want, atol=1e-6), f"got {got.tolist()}, expected {want.tolist()}"

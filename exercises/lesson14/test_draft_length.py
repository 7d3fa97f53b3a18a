"""Lesson 14, part 2: expected tokens per step and the best draft length.
Run: pytest exercises/lesson14

References: the sum 1 + alpha + ... + alpha^gamma, a Monte-Carlo run of independent
acceptances drawn here, and a search over every draft length.
"""

import pytest
import torch

from exercises.lesson14.draft_length import (expected_speedup, expected_tokens_per_step,
                                             optimal_gamma)


@pytest.mark.parametrize("alpha,gamma", [(0.0, 3), (0.5, 1), (0.8, 4), (0.95, 7), (0.3, 0)])
def test_expected_tokens_is_a_geometric_sum(alpha, gamma):
    want = sum(alpha ** i for i in range(gamma + 1))
    assert expected_tokens_per_step(alpha, gamma) == pytest.approx(want, rel=1e-12)


def test_alpha_one_gives_gamma_plus_one():
    assert expected_tokens_per_step(1.0, 4) == 5.0, "at alpha = 1 the limit of the formula is gamma + 1"


def test_formula_matches_monte_carlo():
    """Each draft token accepted independently with probability alpha; a step emits the
    leading run of acceptances plus one token. 200,000 seeded steps; 5 standard errors."""
    g = torch.Generator().manual_seed(0)
    for alpha, gamma in [(0.6, 3), (0.85, 5)]:
        accepted = torch.rand(200_000, gamma, generator=g) < alpha
        emitted = accepted.int().cumprod(dim=1).sum(dim=1) + 1
        mean, se = emitted.double().mean().item(), emitted.double().std().item() / 200_000 ** 0.5
        got = expected_tokens_per_step(alpha, gamma)
        assert abs(got - mean) < 5 * se, (
            f"alpha={alpha}, gamma={gamma}: formula gives {got:.4f} tokens per step, "
            f"a Monte-Carlo run of 200,000 steps gives {mean:.4f} +- {se:.4f}")


def test_speedup_and_best_draft_length():
    assert expected_speedup(0.8, 0, 0.3) == 1.0, "gamma = 0 is plain decoding: speedup 1"
    assert expected_speedup(0.8, 4, 0.05) == pytest.approx(3.3616 / 1.2)
    for alpha, c in [(0.8, 0.05), (0.6, 0.1), (0.9, 0.2), (0.5, 0.5)]:
        speed = [sum(alpha ** i for i in range(g + 1)) / (g * c + 1) for g in range(17)]
        want = max(range(17), key=lambda g: (speed[g], -g))
        assert optimal_gamma(alpha, c, max_gamma=16) == want, (alpha, c, speed)
    assert optimal_gamma(0.2, 0.5) == 0, "a poor draft that costs half a target run never pays"

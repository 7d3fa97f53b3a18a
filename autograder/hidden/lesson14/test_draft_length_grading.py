"""Hidden grader, lesson 14: expected tokens per step, speedup and the best draft length.

References: the geometric sum 1 + alpha + ... + alpha^gamma written out here, and a search over
every draft length with the cost model of Leviathan et al. (2023, section 3.4): one step costs
gamma draft runs of cost_ratio each plus one target run.
"""

import pytest

from exercises.lesson14.draft_length import (expected_speedup, expected_tokens_per_step,
                                             optimal_gamma)


def geometric(alpha, gamma):
    return sum(alpha ** i for i in range(gamma + 1))


@pytest.mark.points(2)
@pytest.mark.parametrize("alpha", [0.0, 0.3, 0.6, 0.8, 0.95])
def test_expected_tokens_equals_the_geometric_sum(alpha):
    """Bugs: alpha^gamma instead of alpha^(gamma + 1) (the bonus token forgotten), gamma
    tokens at most instead of gamma + 1."""
    for gamma in range(0, 9):
        got = expected_tokens_per_step(alpha, gamma)
        assert got == pytest.approx(geometric(alpha, gamma), rel=1e-9), (
            f"alpha={alpha}, gamma={gamma}: got {got}, expected 1 + alpha + ... + alpha^gamma = "
            f"{geometric(alpha, gamma)}")


@pytest.mark.points(2)
def test_alpha_one_and_alpha_near_one():
    """Bugs: the closed form at alpha = 1 (0 / 0: ZeroDivisionError or NaN); a shortcut that
    snaps alpha near 1 to gamma + 1 far too early, or a float32 computation that turns
    1 - 1e-9 into 1."""
    for gamma in (0, 1, 4, 10):
        assert expected_tokens_per_step(1.0, gamma) == gamma + 1, \
            f"alpha = 1, gamma = {gamma}: every draft is accepted, expected {gamma + 1} tokens"
    for alpha in (1 - 1e-3, 1 - 1e-6, 1 - 1e-9):
        got = expected_tokens_per_step(alpha, 6)
        assert got == pytest.approx(geometric(alpha, 6), rel=1e-5), (alpha, got)


@pytest.mark.points(2)
def test_speedup_counts_draft_runs_and_one_target_run():
    """Bugs: the denominator without the target's run (gamma * c), with gamma + 1 draft runs,
    or the cost ratio inverted."""
    for alpha, gamma, c in [(0.8, 4, 0.05), (0.6, 2, 0.5), (0.9, 7, 0.0), (0.5, 0, 0.3)]:
        want = geometric(alpha, gamma) / (gamma * c + 1)
        got = expected_speedup(alpha, gamma, c)
        assert got == pytest.approx(want, rel=1e-9), (
            f"alpha={alpha}, gamma={gamma}, cost_ratio={c}: got {got}, expected "
            f"E[tokens] / (gamma * cost_ratio + 1) = {want}")


def brute_force(alpha, c, max_gamma):
    speed = [geometric(alpha, g) / (g * c + 1) for g in range(max_gamma + 1)]
    return max(range(max_gamma + 1), key=lambda g: (speed[g], -g))


@pytest.mark.points(2)
def test_optimal_gamma_on_a_grid():
    """Bug: a search that skips gamma = 0 (speculation that does not pay) or the last length,
    or maximises expected tokens without the cost."""
    for alpha in (0.0, 0.2, 0.5, 0.7, 0.8, 0.9, 0.97):
        for c in (0.0, 0.01, 0.05, 0.1, 0.3, 0.8):
            got, want = optimal_gamma(alpha, c, 12), brute_force(alpha, c, 12)
            assert got == want, f"alpha={alpha}, cost_ratio={c}, max_gamma=12: got {got}, expected {want}"


@pytest.mark.points(1)
def test_ties_go_to_the_shorter_draft():
    """Bug: ``>=`` in the search, so equal speedups pick the longer draft. With alpha = 1 and
    cost_ratio = 1 every length gives exactly 1.0; with alpha = 0 and a free draft too."""
    assert optimal_gamma(1.0, 1.0, 8) == 0
    assert optimal_gamma(0.0, 0.0, 8) == 0


@pytest.mark.points(1)
def test_max_gamma_is_honoured():
    """Bug: max_gamma ignored (a fixed range). A perfect free draft wants the longest draft."""
    for m in (1, 3, 20):
        assert optimal_gamma(1.0, 0.0, m) == m
        assert optimal_gamma(0.9, 0.01, m) == brute_force(0.9, 0.01, m)

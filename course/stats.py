"""Goodness of fit for tests that sample: Pearson's chi-square against known probabilities.

Tests that check a sampler's output distribution draw many tokens from a seeded generator, so
the statistic is a fixed number for a given implementation: the test is deterministic, never
flaky. A correct sampler lands above a small p-value (``1e-4`` in the course) with probability
``1 - 1e-4`` over implementations; a wrong one with a clear bias lands far below it.
"""

from __future__ import annotations

import torch


def chi_square(counts: torch.Tensor, probs: torch.Tensor, min_expected: float = 5.0
               ) -> tuple[float, int, float]:
    """Pearson's chi-square of observed ``counts`` against category ``probs``.

    Args:
        counts: ``[k]`` observed counts (any number type).
        probs: ``[k]`` the probabilities the counts should follow (summing to 1).
        min_expected: categories expected fewer times than this are pooled into one, so the
            chi-square approximation holds; a count seen where ``probs`` is 0 gives p = 0.
    Returns:
        ``(statistic, degrees_of_freedom, p_value)``; ``p_value`` is the chance that a sampler
        drawing from ``probs`` gives a statistic at least this large.
    """
    counts, probs = counts.double().flatten(), probs.double().flatten()
    if counts.shape != probs.shape:
        raise ValueError(f"counts {tuple(counts.shape)} and probs {tuple(probs.shape)} differ")
    n = counts.sum()
    if n <= 0:
        raise ValueError("no observations to test")
    if bool((counts[probs == 0] > 0).any()):
        return float("inf"), 0, 0.0
    expected = probs * n
    small = expected < min_expected
    obs = torch.cat([counts[~small], counts[small].sum()[None]]) if small.any() else counts
    exp = torch.cat([expected[~small], expected[small].sum()[None]]) if small.any() else expected
    keep = exp > 0
    obs, exp = obs[keep], exp[keep]
    dof = int(obs.numel()) - 1
    if dof < 1:
        return 0.0, 0, 1.0
    stat = ((obs - exp) ** 2 / exp).sum()
    p = torch.special.gammaincc(torch.tensor(dof / 2, dtype=torch.float64), stat / 2)
    return float(stat), dof, float(p)

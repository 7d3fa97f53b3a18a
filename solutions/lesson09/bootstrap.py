"""A confidence interval for a percentile of timing samples: the percentile bootstrap.

Efron (1979), "Bootstrap methods: another look at the jackknife", Annals of Statistics 7(1).
Resample the n samples with replacement, n at a time, many times; the statistic of each
resample is one draw from (an estimate of) its sampling distribution; the middle `level` of
those draws is the interval.

Read: learning/lesson09.md#a-confidence-interval-for-a-percentile
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch


def check_ci_inputs(samples, q: float, level: float, n_boot: int) -> torch.Tensor:
    """The samples as a 1-D float64 tensor; ValueError, in plain words, for what cannot work."""
    x = torch.as_tensor(samples, dtype=torch.float64).flatten()
    if x.numel() == 0:
        raise ValueError("percentile_ci needs at least one sample, got none")
    if not bool(torch.isfinite(x).all()):
        raise ValueError("percentile_ci: every sample must be a finite number (no NaN or inf)")
    if not 0 < q < 1:
        raise ValueError(f"q is a fraction strictly between 0 and 1 (0.5 for the median, 0.99 "
                         f"for p99), got {q!r}")
    if not 0 < level < 1:
        raise ValueError(f"level is a fraction strictly between 0 and 1 (0.95), got {level!r}")
    if int(n_boot) != n_boot or n_boot < 1:
        raise ValueError(f"n_boot must be a whole number >= 1, got {n_boot!r}")
    return x


def percentile_ci(samples: Sequence[float] | torch.Tensor, q: float, *, level: float = 0.95,
                  n_boot: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Percentile-bootstrap interval ``(lo, hi)`` for the `q`-quantile of `samples`.

    Args:
        samples: n measurements (a list, tuple or tensor of any shape, read as n numbers).
        q: the quantile, a fraction in (0, 1): 0.5 for the median, 0.99 for p99.
        level: the confidence level, in (0, 1).
        n_boot: how many resamples.
        seed: seeds a ``torch.Generator``, so the same call gives the same interval.
    Returns:
        Two Python floats ``lo <= hi``: the ``(1 - level) / 2`` and ``(1 + level) / 2``
        quantiles of the `n_boot` resampled `q`-quantiles. Quantiles interpolate linearly
        (``torch.quantile``'s default).

    Each resample draws n indices with replacement (``torch.randint(0, n, (n_boot, n))``), so
    it may repeat a sample and leave another out; its statistic is the `q`-quantile of ITS OWN
    n values (one per row). No Python loop over resamples. About 6 lines.

    Read: learning/lesson09.md#a-confidence-interval-for-a-percentile
    """
    x = check_ci_inputs(samples, q, level, n_boot)
    ### BEGIN SOLUTION
    gen = torch.Generator().manual_seed(seed)
    rows = torch.randint(0, x.numel(), (int(n_boot), x.numel()), generator=gen)
    stats = torch.quantile(x[rows], q, dim=1)
    tails = torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=torch.float64)
    lo, hi = torch.quantile(stats, tails).tolist()
    return lo, hi
    ### END SOLUTION


def exponential_quantile(q: float, rate: float) -> float:
    """The q-quantile of an exponential distribution with `rate` (mean 1 / rate)."""
    return -math.log1p(-q) / rate

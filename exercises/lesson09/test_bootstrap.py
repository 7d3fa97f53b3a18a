"""Lesson 09, part 2: a bootstrap interval for a percentile. Run: pytest exercises/lesson09"""

import math

import pytest
import torch

from exercises.lesson09.bootstrap import percentile_ci


def exponential_samples(n, rate, seed):
    gen = torch.Generator().manual_seed(seed)
    return torch.empty(n, dtype=torch.float64).exponential_(rate, generator=gen)


def test_interval_is_ordered_inside_the_data_and_repeatable():
    x = exponential_samples(50, 2.0, seed=0)
    lo, hi = percentile_ci(x, 0.5, n_boot=500, seed=1)
    assert isinstance(lo, float) and isinstance(hi, float), "return two Python floats"
    assert x.min() <= lo <= hi <= x.max(), f"({lo}, {hi}) must lie inside the samples"
    assert (lo, hi) == percentile_ci(x, 0.5, n_boot=500, seed=1), "the same seed, another answer"
    assert percentile_ci([3.0] * 7, 0.9, n_boot=50) == (3.0, 3.0)


def test_bad_arguments_are_refused():
    assert percentile_ci([1.0, 2.0], 0.5, n_boot=10) is not None
    with pytest.raises(ValueError, match="at least one sample"):
        percentile_ci([], 0.5)
    for q in (0.0, 1.0, 50):
        with pytest.raises(ValueError, match="strictly between 0 and 1"):
            percentile_ci([1.0, 2.0], q)


def test_covers_the_true_median_about_95_percent_of_the_time():
    """100 seeded data sets of 100 exponential samples (rate 2: true median ln 2 / 2).
    Correct implementations cover it 90-98 times in 100; the band allows for the randomness."""
    true_median = math.log(2) / 2.0
    hits = 0
    for trial in range(100):
        lo, hi = percentile_ci(exponential_samples(100, 2.0, seed=1000 + trial), 0.5,
                               n_boot=400, seed=trial)
        hits += lo <= true_median <= hi
    assert 85 <= hits <= 100, f"the 95% interval held the true median in {hits} of 100 trials"

"""Hidden grader, lesson 09: the percentile-bootstrap interval.

The oracle is the truth, known in closed form: the median of an exponential distribution with
rate r is ln 2 / r, the q-quantile of a lognormal is exp(mu + sigma Phi^-1(q)). Over 200 seeded
data sets the interval must hold it about as often as its level promises. Every seed is fixed,
so a given implementation gets the same count on every run; the band allows for the ways
correct implementations differ (another generator, another quantile interpolation).
"""

import math
from statistics import NormalDist

import pytest
import torch

from course.testing import torch_threads
from exercises.lesson09.bootstrap import percentile_ci

TRIALS, N, N_BOOT = 200, 100, 500
# (distribution, q, level) -> accepted count of the 200 intervals that hold the truth.
# The reference holds it in 190 (exponential median, 0.95), 158 (0.8) and 185 (lognormal p90,
# 0.95); four other correct implementations (numpy's generator with linear, lower, nearest and
# hazen quantiles) in 189-190, 158-162 and 184-185. One binomial standard deviation is about
# 3.5 trials at 0.93 and 6 at 0.79; the lower ends sit 3.5 of them below the reference. Bugs
# land outside: a zero-width interval (no resampling) or the mean for the median near 0, a
# 60% interval for 80% (tails not halved) at 125, min..max of the resamples at 200 (0.8).
CASES = {
    "exponential median, 95%": ("exponential", 0.5, 0.95, (172, 200)),
    "exponential median, 80%": ("exponential", 0.5, 0.80, (136, 180)),
    "lognormal p90, 95%": ("lognormal", 0.9, 0.95, (172, 200)),
}


@pytest.fixture(autouse=True)
def one_thread():
    """Intra-op threads only add overhead on tensors this small (a busy 2-core machine ran the
    coverage loop ten times slower with two); the answers do not depend on it."""
    with torch_threads(1):
        yield


def data_set(dist, q, seed):
    """N samples and the true q-quantile of their distribution."""
    g = torch.Generator().manual_seed(seed)
    if dist == "exponential":
        rate = 2.0
        return (torch.empty(N, dtype=torch.float64).exponential_(rate, generator=g),
                -math.log1p(-q) / rate)
    mu, sigma = -1.0, 0.5
    x = torch.exp(mu + sigma * torch.randn(N, generator=g, dtype=torch.float64))
    return x, math.exp(mu + sigma * NormalDist().inv_cdf(q))


@pytest.mark.points(1)
@pytest.mark.parametrize("case", list(CASES))
def test_coverage_on_known_distributions(case):
    """Bugs: resampling without replacement (every resample is the data: zero width); the mean
    (or the data's own quantile) instead of each resample's q-quantile; tails at (1 - level)
    instead of (1 - level) / 2, or level ignored; the quantile taken down the resamples instead
    of along each one (wrong axis)."""
    dist, q, level, (low, high) = CASES[case]
    hits = 0
    for trial in range(TRIALS):
        x, truth = data_set(dist, q, seed=10_000 + trial)
        lo, hi = percentile_ci(x, q, level=level, n_boot=N_BOOT, seed=trial)
        hits += lo <= truth <= hi
    assert low <= hits <= high, (
        f"{case}: the interval held the true quantile in {hits} of {TRIALS} seeded data sets; "
        f"a correct percentile bootstrap holds it in {low}-{high}")


@pytest.mark.points(1)
def test_interval_is_ordered_inside_the_data_repeatable_and_seeded():
    """Bugs: lo and hi swapped; the seed ignored (a fixed or a global generator); an input
    given as a list or a 2-D tensor read differently; a single resample (n_boot=1) that is not
    a point; Python floats not returned (0-d tensors)."""
    g = torch.Generator().manual_seed(3)
    x = torch.empty(60, dtype=torch.float64).exponential_(1.0, generator=g)
    lo, hi = percentile_ci(x, 0.9, n_boot=300, seed=5)
    assert isinstance(lo, float) and isinstance(hi, float), (
        f"return two Python floats, got {type(lo).__name__} and {type(hi).__name__}")
    assert x.min().item() <= lo <= hi <= x.max().item(), f"({lo}, {hi}) outside the samples"
    assert percentile_ci(x.tolist(), 0.9, n_boot=300, seed=5) == (lo, hi), "a list differs"
    assert percentile_ci(x.view(6, 10), 0.9, n_boot=300, seed=5) == (lo, hi), "a 2-D tensor"
    others = {percentile_ci(x, 0.9, n_boot=300, seed=s) for s in range(4)}
    assert len(others) > 1, "four seeds gave the same interval: is the seed used?"
    one_lo, one_hi = percentile_ci(x, 0.5, n_boot=1, seed=0)
    assert one_lo == one_hi, "with one resample both ends are its quantile"
    assert percentile_ci([0.25], 0.5, n_boot=10) == (0.25, 0.25)


@pytest.mark.points(1)
def test_microsecond_differences_after_a_long_offset():
    """Bug: the samples converted to float32. Timestamps 1000 s into a run that differ by
    microseconds (float32 spacing at 1000 is 61 us) collapse to one value: zero width."""
    g = torch.Generator().manual_seed(7)
    x = 1000.0 + 1e-6 * torch.empty(100, dtype=torch.float64).exponential_(1.0, generator=g)
    lo, hi = percentile_ci(x, 0.5, n_boot=400, seed=0)
    assert 1000.0 < lo < hi < 1000.0 + 1e-5, (
        f"samples 1000 s + a few us give ({lo!r}, {hi!r}); keep float64")

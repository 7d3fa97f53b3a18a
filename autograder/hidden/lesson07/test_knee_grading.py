"""Hidden grader, lesson 07: finding the knee of a bandwidth-versus-working-set curve.

References: synthetic curves whose knee is worked by hand from the definition in the lesson
(peak, floor after the peak, half-way crossing interpolated in log2(size)), and properties any
reading of a knee must have (moving a point far from the knee changes nothing; scaling the
bandwidths or the sizes scales nothing or everything).
"""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exercises.lesson07.probes import find_knee

MiB = 2**20


@pytest.mark.points(2)
def test_step_and_slope():
    """Bugs: the crossing interpolated in linear size instead of log2(size); the knee reported
    as the last point on the plateau or the first below it."""
    sizes = [8 * MiB, 16 * MiB, 32 * MiB, 64 * MiB, 128 * MiB]
    # plateau 9, floor 3, half 6: crossed between 32 MiB (9) and 64 MiB (3) at t = 0.5
    assert find_knee(sizes, [9.0, 9.0, 9.0, 3.0, 3.0]) == pytest.approx(2**5.5 * MiB)
    # half 6 between 32 MiB (7) and 64 MiB (4): t = 1/3 -> 2 ** (25 + 1/3) bytes
    assert find_knee(sizes, [9.0, 8.0, 7.0, 4.0, 3.0]) == pytest.approx(2 ** (25 + 1 / 3))


@pytest.mark.points(2)
def test_the_floor_is_taken_after_the_peak():
    """Bug: floor = the lowest point of the whole curve, which on a real probe is a tiny,
    launch-bound working set; the half-way line then sits too low and the knee too far out."""
    sizes = [2**k for k in range(10, 18)]
    bws = [0.5, 2.0, 8.0, 10.0, 10.0, 6.0, 2.0, 2.0]
    # peak 10 (first at 2**13), floor after it 2, half 6: at 2**15 exactly (t = 0)
    assert find_knee(sizes, bws) == pytest.approx(2**15)


@pytest.mark.points(1)
def test_equal_peaks_and_a_noisy_floor():
    """Bug: a later bump on the floor read as a second plateau, or the crossing searched from
    the end of the curve instead of from the peak."""
    sizes = [1, 2, 4, 8, 16, 32]
    bws = [10.0, 10.0, 10.0, 2.0, 3.0, 2.0]   # half 6 crossed between 4 and 8 at t = 0.5
    assert find_knee(sizes, bws) == pytest.approx(2**2.5)


@pytest.mark.points(2)
def test_no_knee_is_none():
    """Bug: a curve that never falls (or falls less than min_drop_ratio) still reports a knee,
    so a probe that never left the L2 (or never entered it) would pass."""
    assert find_knee([1, 2, 4, 8], [3.0, 3.0, 3.0, 3.0]) is None
    assert find_knee([1, 2, 4, 8], [5.0, 5.0, 4.5, 4.2]) is None      # 5 / 4.2 = 1.19 < 1.25
    assert find_knee([1, 2, 4, 8], [1.0, 2.0, 3.0, 4.0]) is None      # rises only


@pytest.mark.points(1)
def test_a_drop_of_exactly_min_drop_ratio_is_a_knee():
    """Bug: peak > ratio x floor (strict) where the definition says peak >= ratio x floor."""
    # 5 = 1.25 x 4: a knee; half 4.5 crossed between 2 (5) and 4 (4) at t = 0.5
    assert find_knee([1, 2, 4, 8], [5.0, 5.0, 4.0, 4.0]) == pytest.approx(2**1.5)


@pytest.mark.points(2)
def test_min_drop_ratio_is_honoured():
    """Bug: min_drop_ratio ignored (1.25 hard-coded)."""
    sizes, bws = [1, 2, 4, 8], [4.0, 4.0, 2.0, 2.0]       # drops 2x
    assert find_knee(sizes, bws, min_drop_ratio=3.0) is None
    assert find_knee(sizes, bws, min_drop_ratio=2.0) == pytest.approx(2**1.5)
    assert find_knee(sizes, bws, min_drop_ratio=1.01) == pytest.approx(2**1.5)


@pytest.mark.points(1)
@settings(max_examples=60)
@given(plateau=st.floats(1.5, 20.0), k=st.integers(2, 8), n=st.integers(10, 14),
       scale=st.sampled_from([1.0, 1e9, 1e12]), noise=st.lists(st.floats(-0.05, 0.05),
                                                              min_size=14, max_size=14))
def test_knee_of_a_noisy_step_lies_between_its_two_points(plateau, k, n, scale, noise):
    """Bug: a knee that depends on the unit of the bandwidths (an absolute threshold) or that
    lands outside the step: for a step from `plateau` to 1 after point k, with a few percent of
    noise, the knee lies between sizes k and k + 1."""
    sizes = [2**i * MiB for i in range(n)]
    bws = [(plateau if i <= k else 1.0) * (1 + noise[i]) * scale for i in range(n)]
    knee = find_knee(sizes, bws)
    assert knee is not None and sizes[k] <= knee <= sizes[k + 1], \
        f"knee {knee} of a step after {sizes[k]} B should lie in [{sizes[k]}, {sizes[k + 1]}]"
    assert math.isfinite(knee)

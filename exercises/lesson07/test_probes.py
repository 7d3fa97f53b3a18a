"""Lesson 07, part 2: finding the knee of a bandwidth curve (the GPU probes are graded on a GPU).
Run: pytest exercises/lesson07"""

import math

import pytest

from exercises.lesson07.probes import find_knee

MiB = 2**20


def test_a_step_has_its_knee_halfway_in_log_size():
    sizes = [8 * MiB, 16 * MiB, 32 * MiB, 64 * MiB, 128 * MiB]
    # plateau 10, floor 3, half-way 6.5 is crossed half-way between 32 and 64 MiB in log2(size)
    knee = find_knee(sizes, [10.0, 10.0, 10.0, 3.0, 3.0])
    assert knee == pytest.approx(math.sqrt(32 * 64) * MiB)


def test_a_rise_before_the_plateau_is_not_the_knee():
    # launch-bound small sizes measure low (1, 4, 9); the floor is the lowest point at or after
    # the peak, not the lowest overall
    sizes = [2**k for k in range(1, 8)]            # 2 .. 128
    bws = [1.0, 4.0, 9.0, 10.0, 8.0, 4.0, 2.0]
    # peak 10 at size 16; floor 2; half 6; first below 6 is 4 (size 64), previous 8 (size 32):
    # t = (8 - 6) / (8 - 4) = 0.5 -> 2 ** 5.5
    assert find_knee(sizes, bws) == pytest.approx(2**5.5)


def test_no_knee_in_a_flat_curve():
    assert find_knee([1, 2, 4, 8], [5.0, 5.1, 4.9, 5.0]) is None


def test_bad_input_is_refused():
    assert find_knee([1, 2], [4.0, 1.0]) == pytest.approx(2**0.5)   # half-way 2.5, t = 0.5
    with pytest.raises(ValueError, match="increasing"):
        find_knee([4, 2, 8], [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="as many sizes"):
        find_knee([1, 2, 4], [1.0, 1.0])

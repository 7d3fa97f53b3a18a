"""Lesson 24, part 2: Little's Law, the knee, goodput. Run: pytest exercises/lesson24

Traces and curves are built by hand, so the expected numbers are in the comments.
"""

import pytest

from course.trace import Event
from exercises.lesson24.load import find_knee, goodput, littles_law


def in_system(spans):
    """A trace where request i is in the system over spans[i] = (arrival, finish)."""
    events = []
    for i, (a, f) in enumerate(spans):
        events += [Event(i, "arrival", a), Event(i, "first_token", f), Event(i, "finish", f)]
    return sorted(events, key=lambda e: e.time_s)


def test_littles_law_by_hand():
    # A in [0, 4), B in [1, 2): area 4 + 1 over 4 s; lambda 2 / 4 s; W (4 + 1) / 2
    got = littles_law(in_system([(0.0, 4.0), (1.0, 2.0)]))
    assert got.mean_in_system == pytest.approx(1.25)
    assert got.arrival_rate_per_s == pytest.approx(0.5)
    assert got.mean_time_in_system_s == pytest.approx(2.5)
    assert got.predicted == pytest.approx(1.25)


def test_littles_law_in_a_window():
    # window [1, 3): A is in it for 2 s, B for 1 s -> L = 3 / 2; only B arrives in it
    got = littles_law(in_system([(0.0, 4.0), (1.0, 2.0)]), start_s=1.0, end_s=3.0)
    assert got.mean_in_system == pytest.approx(1.5)
    assert got.arrival_rate_per_s == pytest.approx(0.5)
    assert got.mean_time_in_system_s == pytest.approx(1.0)


def test_knee_of_two_straight_pieces():
    loads = [1, 2, 3, 4, 5, 6, 7, 8]
    latency = [10, 11, 12, 13, 14, 24, 34, 44]  # slope 1 up to load 5, then 10
    assert find_knee(loads, latency) == 5


def test_knee_rejects_bad_curves():
    with pytest.raises(ValueError):
        find_knee([1, 2], [1, 5])  # too short
    with pytest.raises(ValueError):
        find_knee([1, 3, 2], [1, 2, 9])  # unsorted
    with pytest.raises(ValueError):
        find_knee([1, 2, 3], [4, 4, 4])  # flat: no knee


def test_goodput_by_hand():
    ok, late_ttft, late_tpot = (0.1, 0.01), (0.5, 0.01), (0.1, 0.05)
    runs = [[ok] * 10,                          # 100% attain
            [ok] * 9 + [late_ttft],             # 90%: exactly the target
            [ok] * 6 + [late_tpot] * 4]         # 60%
    assert goodput([1.0, 2.0, 3.0], runs, ttft_slo_s=0.2, tpot_slo_s=0.02) == 2.0
    assert goodput([1.0, 2.0, 3.0], runs, ttft_slo_s=0.2, tpot_slo_s=0.02, target=0.95) == 1.0

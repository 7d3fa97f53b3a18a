"""Lesson 09, part 3: open and closed loops on a simulated queue. Run: pytest exercises/lesson09"""

import pytest

from exercises.lesson09.load import (closed_loop_latencies, exponential_times,
                                     open_loop_latencies, poisson_arrivals)


def test_open_loop_worked_examples():
    # three requests, 1 s apart, each needing 2 s: each waits 1 s longer than the one before
    assert open_loop_latencies([0, 1, 2], [2, 2, 2]) == pytest.approx([2, 3, 4])
    # a request after an idle gap does not wait
    assert open_loop_latencies([0, 5], [1, 1]) == pytest.approx([1, 1])
    assert open_loop_latencies([], []) == []


def test_open_loop_mm1_mean_response_time():
    """M/M/1 (Poisson arrivals at 50/s, exponential service at 100/s): mean response time
    1 / (mu - lambda) = 20 ms. 50,000 requests land within 10% of it."""
    n = 50_000
    latencies = open_loop_latencies(poisson_arrivals(50.0, n, seed=1),
                                    exponential_times(1 / 100.0, n, seed=2))
    assert sum(latencies) / n == pytest.approx(0.020, rel=0.10)


def test_closed_loop_worked_examples():
    # two users, no think time, 1 s per request: after the first, each request waits for one
    assert closed_loop_latencies(2, 0.0, [1, 1, 1, 1]) == pytest.approx([1, 2, 2, 2])
    # one user never waits
    assert closed_loop_latencies(1, 0.5, [1, 2, 3]) == pytest.approx([1, 2, 3])
    # a long think time spreads two users out
    assert closed_loop_latencies(2, 10.0, [1, 1, 1, 1]) == pytest.approx([1, 2, 1, 1])


def test_a_closed_loop_does_not_see_the_queue_an_open_loop_builds():
    """One 1 s stall among 2,000 requests of 1 ms: four closed-loop users see it 4 times;
    requests arriving at half the server's rate keep arriving through it."""
    service = [0.001] * 2_000
    service[1_000] = 1.0
    closed = closed_loop_latencies(4, 0.0, service)
    open_ = open_loop_latencies(poisson_arrivals(500.0, len(service), seed=3), service)
    assert sum(t > 0.1 for t in closed) == 4
    assert sum(t > 0.1 for t in open_) > 100

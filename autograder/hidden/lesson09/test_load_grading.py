"""Hidden grader, lesson 09: open- and closed-loop load on a simulated single-server queue.

Oracles independent of the code under test: for the open loop, the closed form of a FIFO
queue's finish times, finish_i = max over j <= i of (arrival_j + service_j + ... + service_i),
and the M/M/1 mean response time 1 / (mu - lambda) (Kleinrock 1975); for the closed loop, a
second simulation written another way (a scan over users instead of a heap) and mean value
analysis (Reiser and Lavenberg 1980).
"""

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from exercises.lesson09.load import (closed_loop_latencies, exponential_times,
                                     open_loop_latencies, poisson_arrivals)


def fifo_oracle(arrivals, service):
    """Response times from the closed form of the finish times (no recursion)."""
    a, s = np.asarray(arrivals, dtype=float), np.asarray(service, dtype=float)
    if len(a) == 0:
        return []
    cum = np.concatenate([[0.0], np.cumsum(s)])
    # finish_i = max_j<=i (a_j + cum[i+1] - cum[j]) = cum[i+1] + max_j<=i (a_j - cum[j])
    finish = cum[1:] + np.maximum.accumulate(a - cum[:-1])
    return (finish - a).tolist()


def closed_oracle(n_users, think, service):
    """The closed loop by scanning every user for the earliest send (ties: lower user)."""
    next_send = [0.0] * n_users
    free, out = 0.0, []
    for need in service:
        user = min(range(n_users), key=lambda u: (next_send[u], u))
        begin = max(free, next_send[user])
        free = begin + need
        out.append(free - next_send[user])
        next_send[user] = free + think
    return out


def mva_mean_response(n_users, think, mean_service):
    """Exact mean response time of N users with think time Z at one exponential server."""
    queue = 0.0
    for n in range(1, n_users + 1):
        response = mean_service * (1 + queue)
        queue = n / (response + think) * response
    return response


@pytest.mark.points(2)
@settings(max_examples=40)
@example(requests=[(0, 2), (2, 1), (0, 1), (3, 1)])  # request 3 arrives as request 2 finishes
@example(requests=[])
@given(requests=st.lists(st.tuples(st.integers(0, 4), st.integers(1, 4)), max_size=25))
def test_open_loop_matches_the_closed_form(requests):
    """Bugs: the service time left out of the response (waiting only); a request started at
    the previous finish even when the server was idle (no max with its arrival); the wait
    measured from the previous arrival; the previous request's service charged."""
    arrivals = np.cumsum([gap for gap, _ in requests]).tolist() if requests else []
    needs = [need for _, need in requests]
    got = open_loop_latencies(arrivals, needs)
    want = fifo_oracle(arrivals, needs)
    assert got == pytest.approx(want, abs=1e-9), (
        f"arrivals {arrivals}, service {needs}: response times {got}, expected {want}")


@pytest.mark.points(2)
def test_open_loop_mm1_mean_and_growth():
    """Bugs as above, seen on a long M/M/1 run: the mean response at 50% and 80% load must be
    near 1 / (mu - lambda), and it must grow without bound as the load approaches 1 (at 99%
    the queue has not reached its mean of 100 service times in 100,000 requests, but it is far
    above the 2 service times of 50% load)."""
    n, mu = 100_000, 1000.0
    service = exponential_times(1 / mu, n, seed=11)
    means = {}
    for rho in (0.5, 0.8, 0.99):
        latencies = open_loop_latencies(poisson_arrivals(rho * mu, n, seed=12), service)
        means[rho] = sum(latencies) / n
    for rho in (0.5, 0.8):
        want = 1 / (mu - rho * mu)
        assert means[rho] == pytest.approx(want, rel=0.1), (
            f"M/M/1 at {rho:.0%} load: mean response {means[rho] * 1e3:.3f} ms, expected about "
            f"1 / (mu - lambda) = {want * 1e3:.3f} ms")
    assert means[0.99] > 10 * means[0.5], (
        f"at 99% load the mean response ({means[0.99] * 1e3:.2f} ms) should dwarf the one at "
        f"50% ({means[0.5] * 1e3:.2f} ms): an open loop's queue grows without bound")


@pytest.mark.points(2)
@settings(max_examples=40)
@example(n_users=1, think=0.0, needs=[1, 2, 3])
@example(n_users=2, think=10.0, needs=[1, 1, 1, 1])
@example(n_users=3, think=0.5, needs=[2, 1, 1, 2, 1])
@given(n_users=st.integers(1, 5), think=st.sampled_from([0.0, 0.5, 1.0, 3.0]),
       needs=st.lists(st.integers(1, 4), max_size=20))
def test_closed_loop_matches_a_second_simulation(n_users, think, needs):
    """Bugs: think time ignored; a user's next request sent at its old send time plus think
    (not at its finish); responses timed from the start of service (the queueing omitted);
    a heap of users 1..N-1 (one user: nothing to serve); last-in first-out service."""
    got = closed_loop_latencies(n_users, think, needs)
    want = closed_oracle(n_users, think, needs)
    assert got == pytest.approx(want, abs=1e-9), (
        f"{n_users} users, think {think} s, service {needs}: response times {got}, "
        f"expected {want}")


@pytest.mark.points(1)
def test_closed_loop_mean_matches_mean_value_analysis():
    """Bugs as above, on a long run: 4 users thinking 10 ms at a 5 ms exponential server."""
    service = exponential_times(0.005, 50_000, seed=21)
    got = sum(closed_loop_latencies(4, 0.010, service)) / len(service)
    want = mva_mean_response(4, 0.010, 0.005)
    assert got == pytest.approx(want, rel=0.05), (
        f"mean response {got * 1e3:.3f} ms; mean value analysis gives {want * 1e3:.3f} ms")


@pytest.mark.points(1)
def test_a_closed_loop_hides_a_stall():
    """The lesson's point (coordinated omission): one 1 s stall among 10,000 requests of
    1 ms. Four closed-loop users without think time see it 4 times and their p99 is 4 ms; an
    open loop at half the server's rate keeps sending through the stall and its p99 is
    hundreds of ms. Bugs: an open loop without a queue, a closed loop that lets requests
    pile up (users not waiting for their answer)."""
    service = [0.001] * 10_000
    service[5_000] = 1.0
    closed = sorted(closed_loop_latencies(4, 0.0, service))
    open_ = sorted(open_loop_latencies(poisson_arrivals(500.0, len(service), seed=31), service))
    p99 = lambda xs: xs[int(0.99 * len(xs))]  # noqa: E731
    assert p99(closed) <= 0.0041, f"closed-loop p99 {p99(closed) * 1e3:.2f} ms, expected 4 ms"
    assert p99(open_) >= 0.1, (
        f"open-loop p99 {p99(open_) * 1e3:.2f} ms: requests that arrive during a 1 s stall "
        "wait behind it")

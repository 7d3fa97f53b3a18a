"""Load generators on a simulated single-server queue: open loop against closed loop.

One server handles requests first come, first served, one at a time; request ``j`` (in the
order it is served) takes ``service_s[j]`` seconds. The response time of a request is the time
from when it was SENT (or meant to be sent) to when its answer comes back: waiting in the queue
plus service.

- Open loop: requests arrive at times fixed in advance (a Poisson process for a public
  service), whether or not earlier ones have been answered.
- Closed loop: ``n_users`` users each send one request, wait for the answer, think for
  ``think_s`` seconds, and send the next. A benchmark client with N concurrent workers is a
  closed loop with N users and no think time.

Schroeder, Wierman and Harchol-Balter, "Open versus closed: a cautionary tale", NSDI 2006.

Read: learning/lesson09.md#open-and-closed-loops
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence

import torch


def poisson_arrivals(rate_per_s: float, n: int, seed: int) -> list[float]:
    """Arrival times (seconds from 0) of n requests of a Poisson process with `rate_per_s`."""
    gaps = exponential_times(1.0 / rate_per_s, n, seed)
    return torch.tensor(gaps, dtype=torch.float64).cumsum(0).tolist()


def exponential_times(mean_s: float, n: int, seed: int) -> list[float]:
    """n independent exponential durations with mean `mean_s` seconds (seeded)."""
    if not mean_s > 0 or n < 0:
        raise ValueError(f"need mean_s > 0 and n >= 0, got mean_s={mean_s!r}, n={n!r}")
    gen = torch.Generator().manual_seed(seed)
    return torch.empty(n, dtype=torch.float64).exponential_(1.0 / mean_s, generator=gen).tolist()


def _check_times(name: str, values: Sequence[float]) -> list[float]:
    values = [float(v) for v in values]
    if any(not v >= 0 or v == float("inf") for v in values):
        raise ValueError(f"{name} must be finite times >= 0 in seconds")
    return values


def open_loop_latencies(arrivals_s: Sequence[float], service_s: Sequence[float]) -> list[float]:
    """Response time (seconds) of each request of an open loop, in arrival order.

    Request ``i`` arrives at ``arrivals_s[i]`` (non-decreasing) and needs ``service_s[i]``
    seconds of the server. It starts when it has arrived AND the server has finished request
    ``i - 1``; its response time is its finish time minus its arrival time (so at least its
    service time). Returns one float per request; ``[]`` for no requests. About 6 lines.

    Read: learning/lesson09.md#open-and-closed-loops
    """
    arrivals, service = _check_times("arrivals_s", arrivals_s), _check_times("service_s", service_s)
    if len(arrivals) != len(service):
        raise ValueError(f"one service time per arrival: got {len(arrivals)} arrivals and "
                         f"{len(service)} service times")
    if any(b < a for a, b in zip(arrivals, arrivals[1:])):
        raise ValueError("arrivals_s must be non-decreasing (requests in arrival order)")
    ### BEGIN SOLUTION
    latencies, free = [], 0.0
    for arrival, need in zip(arrivals, service):
        finish = max(arrival, free) + need
        latencies.append(finish - arrival)
        free = finish
    return latencies
    ### END SOLUTION


def closed_loop_latencies(n_users: int, think_s: float, service_s: Sequence[float]) -> list[float]:
    """Response time (seconds) of each request of a closed loop, in the order served.

    At time 0 every user ``0 .. n_users - 1`` sends a request. The server takes the request
    sent earliest (ties: the lower user number first), starts it when it is free, and spends
    ``service_s[j]`` on the ``j``-th request it serves. When a user's request finishes at time
    ``f``, that user sends its next request at ``f + think_s``. Stop after ``len(service_s)``
    requests. A response time is finish minus SEND time. A heap of ``(send time, user)``
    (``heapq``) keeps the order. About 10 lines.

    Read: learning/lesson09.md#open-and-closed-loops
    """
    service = _check_times("service_s", service_s)
    if int(n_users) != n_users or n_users < 1:
        raise ValueError(f"n_users must be a whole number >= 1, got {n_users!r}")
    if not 0 <= think_s < float("inf"):
        raise ValueError(f"think_s must be a finite time >= 0 in seconds, got {think_s!r}")
    ### BEGIN SOLUTION
    waiting = [(0.0, user) for user in range(int(n_users))]
    latencies, free = [], 0.0
    for need in service:
        sent, user = heapq.heappop(waiting)
        finish = max(sent, free) + need
        latencies.append(finish - sent)
        free = finish
        heapq.heappush(waiting, (finish + think_s, user))
    return latencies
    ### END SOLUTION

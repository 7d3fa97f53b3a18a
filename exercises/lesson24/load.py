"""Reading a load test: Little's Law, the knee of a latency-load curve, and goodput.

Read: learning/lesson24.md#littles-law
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from course.trace import Event, validate


@dataclass(frozen=True)
class LittleCheck:
    """Both sides of Little's Law over one window of a trace.

    Fields:
        mean_in_system: L, the time-average number of requests in the system (arrived, not
            finished) over the window.
        arrival_rate_per_s: lambda, arrivals in the window / the window's length (s).
        mean_time_in_system_s: W, the mean of finish - arrival (s) over the requests that
            arrived in the window.
    """

    mean_in_system: float
    arrival_rate_per_s: float
    mean_time_in_system_s: float

    @property
    def predicted(self) -> float:
        """lambda x W, what Little's Law says L is."""
        return self.arrival_rate_per_s * self.mean_time_in_system_s

    @property
    def relative_error(self) -> float:
        return abs(self.mean_in_system - self.predicted) / self.predicted


def littles_law(events: Sequence[Event], start_s: float | None = None,
                end_s: float | None = None) -> LittleCheck:
    """L, lambda and W of the window ``[start_s, end_s)`` of a trace.

    A request is in the system from its ``arrival`` to its ``finish`` (half-open: at the
    instant of its finish it has left). ``start_s`` defaults to the first arrival, ``end_s``
    to the last finish. L is the time-average of the in-system count over the window: the
    integral of the count over time, divided by ``end_s - start_s``, with requests that arrived
    before the window counted for the part they spend in it. Not the mean of the count seen at
    each event: events crowd where the system is busy. lambda counts the arrivals in the
    window; W averages the time in system of those same requests.

    Raises ValueError for a trace with no arrival, a request without a ``finish``, a window of
    zero or negative length, or a window with no arrival in it. About 20 lines.

    Example: A in the system [0, 4) s, B [1, 2) s, window [0, 4): L = (4 + 1) / 4 = 1.25,
    lambda = 2 / 4 = 0.5 /s, W = (4 + 1) / 2 = 2.5 s, lambda x W = 1.25.

    Read: learning/lesson24.md#littles-law
    """
    validate(events)
    raise NotImplementedError('lesson24: littles_law - read learning/lesson24.md#littles-law')


def _check_curve(loads: Sequence[float], values: Sequence, what: str, minimum: int) -> None:
    if len(loads) != len(values):
        raise ValueError(f"{len(loads)} loads but {len(values)} {what}: one per load")
    if len(loads) < minimum:
        raise ValueError(f"need at least {minimum} loads, got {len(loads)}")
    if any(not math.isfinite(x) for x in loads):
        raise ValueError(f"loads must be finite numbers, got {list(loads)}")
    bad = next((i for i in range(1, len(loads)) if not loads[i] > loads[i - 1]), None)
    if bad is not None:
        raise ValueError(f"loads must be strictly increasing: loads[{bad - 1}] = "
                         f"{loads[bad - 1]} then loads[{bad}] = {loads[bad]}")


def find_knee(loads: Sequence[float], latencies: Sequence[float]) -> float:
    """The load at the knee of a rising latency-load curve, by Kneedle (Satopaa et al., 2011).

    Normalise both axes to [0, 1] (``x = (load - min) / (max - min)``, the same for latency),
    then return the load whose point lies farthest below the chord from the first point to
    the last: the largest ``x - y``. Ties go to the lowest load. On a curve that is flat, then
    steep (two straight pieces), that is exactly the corner.

    Args:
        loads: strictly increasing, at least 3 of them (requests/s, or any unit).
        latencies: one per load, finite, rising overall (the last above the first).
    Returns:
        The knee as a load, one of ``loads`` (not its index).
    Raises:
        ValueError, in plain words, for fewer than 3 points, lengths that differ, loads that
        do not strictly increase, or a curve whose last latency is not above its first. About 8
        lines.

    Read: learning/lesson24.md#the-knee
    """
    _check_curve(loads, latencies, "latencies", 3)
    if any(not math.isfinite(y) for y in latencies):
        raise ValueError(f"latencies must be finite numbers, got {list(latencies)}")
    raise NotImplementedError('lesson24: find_knee - read learning/lesson24.md#the-knee')


def goodput(rates: Sequence[float], runs: Sequence[Sequence[tuple[float, float | None]]],
            ttft_slo_s: float, tpot_slo_s: float, target: float = 0.9) -> float:
    """DistServe's goodput (Zhong et al., OSDI 2024) from a sweep of arrival rates.

    Args:
        rates: the arrival rates tried (requests/s), strictly increasing.
        runs: for each rate, one ``(ttft_s, tpot_s)`` pair per request of that run, in
            seconds; ``tpot_s`` is ``None`` for a one-token output (judged on TTFT alone).
        ttft_slo_s, tpot_slo_s: the SLOs, in seconds.
        target: the share of requests that must meet the SLO (0 < target <= 1).
    Returns:
        The highest rate such that at it and at every lower rate tried, the share of requests
        meeting BOTH SLOs is at least ``target``. A latency equal to its SLO meets it. No
        interpolation: it is one of ``rates``, or 0.0 when even the lowest rate misses.
    Raises:
        ValueError for mismatched lengths, rates that do not increase, a run with no
        requests, SLOs that are not positive, or a target outside (0, 1]. About 10 lines.

    Example: rates [1, 2, 3], attainment 100%, 92%, 60% at target 0.9 -> 2.0.

    Read: learning/lesson24.md#goodput
    """
    _check_curve(rates, runs, "runs", 1)
    if not (ttft_slo_s > 0 and tpot_slo_s > 0):
        raise ValueError(f"SLOs must be positive seconds, got ttft {ttft_slo_s}, tpot "
                         f"{tpot_slo_s}")
    if not 0 < target <= 1:
        raise ValueError(f"target is a share of requests in (0, 1], got {target}")
    raise NotImplementedError('lesson24: goodput - read learning/lesson24.md#goodput')

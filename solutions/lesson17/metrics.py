"""Latency metrics of a serving run, computed from its trace (``course.trace``).

Per request: TTFT (time to first token), TPOT (time per output token after the first), ITL
(inter-token latencies) and E2E (end-to-end latency). Over requests: percentiles, the same
numbers as ``numpy.percentile(values, q)`` (linear interpolation), a summary, and the share of
requests that meet a latency target.

Read: learning/lesson17.md#four-latencies-of-one-request
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from course.trace import Event, validate


@dataclass(frozen=True)
class RequestMetrics:
    """The latencies of one finished request, in seconds.

    Fields:
        request: its id.
        arrival_s, finish_s: times of its ``arrival`` and ``finish`` events (trace clock, s).
        n_out: output tokens delivered (the sum of ``tokens`` over its ``first_token`` and
            ``token`` events).
        ttft_s: first_token time - arrival time.
        tpot_s: (last token time - first token time) / (n_out - 1); ``None`` when n_out == 1.
        itl_s: gaps between consecutive token-delivering events, in order (n_deliveries - 1
            of them; empty for a single delivery).
        e2e_s: finish time - arrival time.
    """

    request: int | str
    arrival_s: float
    finish_s: float
    n_out: int
    ttft_s: float
    tpot_s: float | None
    itl_s: tuple[float, ...]
    e2e_s: float


def request_metrics(events: Sequence[Event]) -> list[RequestMetrics]:
    """TTFT, TPOT, ITL and E2E of every request that finished in the trace.

    Args:
        events: a valid trace (``course.trace``): events of different requests interleave,
            times are seconds on one clock with any origin.
    Returns:
        One ``RequestMetrics`` per request that has a ``finish`` event, in the order of their
        arrivals in the trace. Requests without a ``finish`` (the run ended first) are left
        out: count them with ``unfinished_requests``.

    TPOT leaves the first token out: the wait for it is TTFT, so TPOT = (t_last - t_first)
    / (n_out - 1), where t_last is the time of the last token-delivering event. With the
    engine writing ``finish`` at the last token this equals (E2E - TTFT) / (n_out - 1). One
    event may deliver several tokens: count tokens for n_out, events for the ITL gaps.
    Keep times as Python floats (a float32 clock 10^6 s from its origin has 0.06 s steps).
    About 20 lines: one pass over the events, then one computation per request.

    Example: arrival 0.0 s, first_token 0.5 s, tokens at 0.6 and 0.8 s, finish 0.8 s:
    TTFT 0.5 s, ITL (0.1, 0.2) s, TPOT 0.15 s, E2E 0.8 s, n_out 3.

    Read: learning/lesson17.md#four-latencies-of-one-request
    """
    validate(events)
    ### BEGIN SOLUTION
    # hint: group the events by request id first; remember that 0 is a valid id
    arrival: dict = {}
    deliveries: dict = {}
    finish: dict = {}
    for e in events:
        if e.kind == "arrival":
            arrival[e.request] = e.time_s
            deliveries[e.request] = []
        elif e.kind in ("first_token", "token"):
            deliveries[e.request].append((e.time_s, e.tokens))
        elif e.kind == "finish":
            finish[e.request] = e.time_s
    out = []
    for rid, t0 in arrival.items():
        if rid not in finish:
            continue
        times = [t for t, _ in deliveries[rid]]
        n_out = sum(n for _, n in deliveries[rid])
        ttft = times[0] - t0
        tpot = (times[-1] - times[0]) / (n_out - 1) if n_out > 1 else None
        itl = tuple(b - a for a, b in zip(times, times[1:]))
        out.append(RequestMetrics(rid, t0, finish[rid], n_out, ttft, tpot, itl, finish[rid] - t0))
    return out
    ### END SOLUTION


def unfinished_requests(events: Sequence[Event]) -> list[int | str]:
    """Ids of the requests that arrived but have no ``finish`` event, in arrival order."""
    finished = {e.request for e in events if e.kind == "finish"}
    return [e.request for e in events if e.kind == "arrival" and e.request not in finished]


def check_percentile_inputs(values: Sequence[float], q: float) -> list[float]:
    """The values as a list of floats; ValueError, in plain words, for what has no percentile."""
    values = list(values)
    if not values:
        raise ValueError("percentile of no values: there is nothing to take a percentile of "
                         "(did every request leave it undefined, like TPOT with one token?)")
    bad = [v for v in values if v is None or not math.isfinite(v)]
    if bad:
        raise ValueError(f"percentile: every value must be a finite number, got {bad[0]!r} "
                         "(drop the None TPOTs of one-token requests first)")
    if isinstance(q, bool) or not 0 <= q <= 100:
        raise ValueError(f"q is a percent between 0 and 100 (99 for p99), got {q!r}")
    return [float(v) for v in values]


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile of `values`, equal to ``numpy.percentile(values, q)``.

    Args:
        values: at least one finite number, in any order (not modified).
        q: percent, 0 <= q <= 100 (50 is the median, 99 is p99).
    Returns:
        A Python float. Sort the values into x[0] <= ... <= x[n-1]; the percentile sits at the
        fractional position h = (n - 1) q / 100: x[floor(h)] plus (h - floor(h)) of the way
        to the next value (numpy's default "linear" method, Hyndman and Fan's definition 7).
        q = 0 gives the minimum, q = 100 the maximum. About 6 lines, without numpy.

    Example: percentile([1, 2, 3, 4], 50) == 2.5; percentile([10, 20], 90) == 19.0.

    Read: learning/lesson17.md#percentiles
    """
    values = check_percentile_inputs(values, q)
    ### BEGIN SOLUTION
    x = sorted(values)
    h = (len(x) - 1) * q / 100
    lo = math.floor(h)
    hi = min(lo + 1, len(x) - 1)
    return x[lo] + (h - lo) * (x[hi] - x[lo])
    ### END SOLUTION


def summarize(metrics: Sequence[RequestMetrics], qs: Sequence[float] = (50, 90, 99)) -> dict:
    """Percentiles of each latency over the requests, in milliseconds, and the throughput.

    Args:
        metrics: ``request_metrics``'s result, at least one request.
        qs: the percentiles wanted, each in [0, 100].
    Returns:
        ``{"requests": R, "output_tokens": total n_out,
        "duration_s": last finish - first arrival,
        "output_tokens_per_s": output_tokens / duration_s (inf when duration_s is 0),
        "ttft_ms": {q: ...}, "tpot_ms": {q: ...}, "itl_ms": {q: ...}, "e2e_ms": {q: ...}}``,
        one entry per q of `qs`, each ``percentile(..., q) * 1000``. TPOT percentiles are over
        the requests whose TPOT is defined (an empty dict when none is); ITL percentiles are
        over every gap of every request pooled (an empty dict when there is none).

    Example: two requests with TTFTs 0.1 s and 0.3 s give ``ttft_ms[50] == 200.0``.

    Read: learning/lesson17.md#percentiles
    """
    metrics = list(metrics)
    if not metrics:
        raise ValueError("summarize needs at least one finished request, got none")
    qs = list(qs)
    ### BEGIN SOLUTION
    def table(values: list[float]) -> dict:
        return {q: percentile(values, q) * 1e3 for q in qs} if values else {}

    start = min(m.arrival_s for m in metrics)
    duration = max(m.finish_s for m in metrics) - start
    tokens = sum(m.n_out for m in metrics)
    return {
        "requests": len(metrics),
        "output_tokens": tokens,
        "duration_s": duration,
        "output_tokens_per_s": tokens / duration if duration > 0 else math.inf,
        "ttft_ms": table([m.ttft_s for m in metrics]),
        "tpot_ms": table([m.tpot_s for m in metrics if m.tpot_s is not None]),
        "itl_ms": table([gap for m in metrics for gap in m.itl_s]),
        "e2e_ms": table([m.e2e_s for m in metrics]),
    }
    ### END SOLUTION


def slo_attainment(metrics: Sequence[RequestMetrics], ttft_slo_s: float,
                   tpot_slo_s: float) -> float:
    """The fraction of requests that meet both latency targets (DistServe's SLO attainment).

    Args:
        metrics: ``request_metrics``'s result, at least one request.
        ttft_slo_s, tpot_slo_s: the targets, seconds, > 0.
    Returns:
        The fraction in [0, 1] of requests with ``ttft_s <= ttft_slo_s`` and ``tpot_s <=
        tpot_slo_s``; a target met exactly counts as met. A request with one output token has
        no TPOT and is judged on its TTFT alone.

    Example: TTFTs (0.1, 0.3) s, TPOTs (0.02, 0.02) s, targets 0.2 s and 0.05 s -> 0.5.

    Read: learning/lesson17.md#slo-attainment-and-goodput
    """
    metrics = list(metrics)
    if not metrics:
        raise ValueError("slo_attainment needs at least one finished request, got none")
    if not (ttft_slo_s > 0 and tpot_slo_s > 0):
        raise ValueError(f"latency targets are seconds > 0, got TTFT {ttft_slo_s!r} and TPOT "
                         f"{tpot_slo_s!r}")
    ### BEGIN SOLUTION
    met = sum(1 for m in metrics
              if m.ttft_s <= ttft_slo_s and (m.tpot_s is None or m.tpot_s <= tpot_slo_s))
    return met / len(metrics)
    ### END SOLUTION

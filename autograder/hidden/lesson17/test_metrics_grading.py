"""Hidden grader, lesson 17: per-request latencies from traces, percentiles, summaries, SLOs.

The oracle is the trace's construction: each trace is built from chosen latencies (arrival,
TTFT, the gaps between deliveries, tokens per delivery), so the expected TTFT, ITL, TPOT and
E2E are those choices, never the output of metric code. Percentiles are numpy's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from course.trace import Event
from exercises.lesson17.metrics import (RequestMetrics, percentile, request_metrics,
                                        slo_attainment, summarize)


@dataclass
class Plan:
    """The latencies one request is built from (seconds)."""
    rid: object
    arrival: float
    ttft: float
    gaps: list            # between consecutive deliveries
    counts: list          # tokens per delivery, len(gaps) + 1
    finished: bool = True
    finish_delay: float = 0.0

    @property
    def n_out(self):
        return sum(self.counts)


def build(plans, offset=0.0):
    """The interleaved trace of `plans` on a clock that starts at `offset`, in time order."""
    events = []
    for p in plans:
        t = offset + p.arrival
        own = [Event(p.rid, "arrival", t), Event(p.rid, "scheduled", t + p.ttft / 2)]
        t += p.ttft
        own.append(Event(p.rid, "first_token", t, p.counts[0]))
        for gap, n in zip(p.gaps, p.counts[1:]):
            t += gap
            own.append(Event(p.rid, "token", t, n))
        if p.finished:
            own.append(Event(p.rid, "finish", t + p.finish_delay))
        events += own
    return sorted(events, key=lambda e: e.time_s)  # stable: a request's own order is kept


def check(plans, got, events, atol=1e-9):
    want = [p for p in plans if p.finished]
    order = [e.request for e in events if e.kind == "arrival"]
    want.sort(key=lambda p: order.index(p.rid))
    assert len(got) == len(want), (
        f"{len(got)} results for {len(want)} finished requests (of {len(plans)}; requests "
        "without a finish event are left out)")
    assert [m.request for m in got] == [p.rid for p in want], (
        f"requests {[m.request for m in got]}, expected {[p.rid for p in want]}: one result "
        "per finished request, in the order of their arrivals in the trace")
    for m, p in zip(got, want):
        name = f"request {p.rid!r}"
        assert m.n_out == p.n_out, f"{name}: n_out {m.n_out}, expected {p.n_out} (tokens, not events)"
        assert m.ttft_s == pytest.approx(p.ttft, abs=atol), f"{name}: TTFT {m.ttft_s}, expected {p.ttft}"
        assert len(m.itl_s) == len(p.gaps) and all(
            g == pytest.approx(w, abs=atol) for g, w in zip(m.itl_s, p.gaps)), \
            f"{name}: ITL {m.itl_s}, expected {tuple(p.gaps)}"
        if p.n_out == 1:
            assert m.tpot_s is None, f"{name}: one output token, TPOT must be None, got {m.tpot_s}"
        else:
            tpot = sum(p.gaps) / (p.n_out - 1)
            assert m.tpot_s == pytest.approx(tpot, abs=atol), (
                f"{name}: TPOT {m.tpot_s}, expected {tpot} = (last token - first token) / "
                f"(n_out - 1) with n_out {p.n_out}")
        e2e = p.ttft + sum(p.gaps) + p.finish_delay
        assert m.e2e_s == pytest.approx(e2e, abs=atol), f"{name}: E2E {m.e2e_s}, expected {e2e}"


seconds = st.floats(0.001, 0.5)


@st.composite
def plans(draw, max_requests=6):
    n = draw(st.integers(1, max_requests))
    ids = draw(st.permutations(list(range(n))))  # id 0 is among them
    if draw(st.booleans()):
        ids = [f"req-{i}" if i % 2 else i for i in ids]
    out = []
    for rid in ids:
        k = draw(st.integers(0, 5))
        counts = [draw(st.sampled_from([1, 1, 1, 2]))] + \
            [draw(st.sampled_from([1, 1, 1, 2, 4])) for _ in range(k)]
        out.append(Plan(rid, draw(st.floats(0, 3)), draw(st.floats(0.001, 2)),
                        [draw(seconds) for _ in range(k)], counts,
                        finished=draw(st.sampled_from([True, True, True, False]))))
    return out


@pytest.mark.points(3)
@settings(max_examples=40)
@given(ps=plans())
def test_interleaved_traces_built_from_known_latencies(ps):
    """Bugs: TPOT divided by n_out (the first token counted twice) or taken as E2E / n_out;
    a gap measured from another request's token (requests interleave); tokens counted as
    events when one event delivers several; unfinished requests kept; results in finish
    order; request id 0 treated as missing."""
    events = build(ps)
    check(ps, request_metrics(events), events)


@pytest.mark.points(1)
def test_tpot_leaves_the_first_token_out():
    """Bug: TPOT = (E2E - TTFT) / n_out, or E2E / n_out, instead of dividing the n_out - 1
    gaps after the first token."""
    ps = [Plan(3, 0.0, 1.0, [0.25] * 4, [1] * 5)]
    events = build(ps)
    (m,) = request_metrics(events)
    assert m.tpot_s == pytest.approx(0.25), (
        f"5 tokens, the first at 1.0 s and then one every 0.25 s: TPOT must be 0.25 s (4 gaps "
        f"of 0.25 s), got {m.tpot_s}")


@pytest.mark.points(1)
def test_one_token_requests_and_id_zero():
    """Bugs: TPOT 0.0 (or a division by zero) for a one-token request instead of None;
    request id 0 (falsy) skipped or merged."""
    ps = [Plan(0, 0.0, 0.5, [], [1]), Plan(1, 0.1, 0.25, [], [3]),
          Plan(2, 0.2, 0.25, [0.5], [1, 1])]
    events = build(ps)
    check(ps, request_metrics(events), events)


@pytest.mark.points(1)
@settings(max_examples=20)
@given(ps=plans(max_requests=4))
def test_a_clock_far_from_its_origin(ps):
    """Bug: times converted to float32 (torch.tensor's default dtype): 10^6 s from the clock's
    origin, float32 values are 0.0625 s apart and every latency comes out wrong."""
    events = build(ps, offset=1.0e6 + 0.3)
    check(ps, request_metrics(events), events, atol=1e-6)


@pytest.mark.points(1)
def test_finish_after_the_last_token_and_arrival_order():
    """Bugs: E2E taken at the last token instead of the finish event; results ordered by
    finish time; unfinished requests reported."""
    ps = [Plan(5, 0.0, 2.0, [0.5], [1, 1], finish_delay=0.25),
          Plan(6, 0.5, 0.25, [0.25], [1, 1], finished=False),
          Plan(7, 1.0, 0.25, [0.25, 0.25], [1, 1, 1])]  # finishes before request 5
    events = build(ps)
    check(ps, request_metrics(events), events)


class CountingTrace(list):
    """A list that counts how many events are read out of it."""

    reads = 0

    def __iter__(self):
        for e in super().__iter__():
            self.reads += 1
            yield e

    def __getitem__(self, i):
        got = super().__getitem__(i)
        self.reads += len(got) if isinstance(i, slice) else 1
        return got


@pytest.mark.points(1)
def test_the_trace_is_read_a_few_times_not_once_per_request():
    """Bug: for each request, a scan of the whole trace for its events: R x E reads, hours
    for a benchmark of 10^4 requests. Grouping in one pass reads each event a few times."""
    ps = [Plan(i, 0.01 * i, 0.1, [0.01] * 3, [1] * 4) for i in range(40)]
    trace = CountingTrace(build(ps))
    got = request_metrics(trace)
    assert len(got) == 40
    assert trace.reads <= 5 * len(trace), (
        f"request_metrics read {trace.reads} events from a trace of {len(trace)} events and "
        f"40 requests ({trace.reads / len(trace):.1f} reads per event, validation included): "
        "group the events by request in one pass instead of scanning the trace per request")


values_st = st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=40)


@pytest.mark.points(2)
@settings(max_examples=60)
@given(values=values_st, q=st.one_of(st.sampled_from([0, 1, 50, 90, 99, 99.9, 100]),
                                     st.floats(0, 100)))
def test_percentile_equals_numpy(values, q):
    """Bugs: nearest rank instead of interpolation; the position n q / 100 instead of
    (n - 1) q / 100; values not sorted; an index one past the end at q = 100; q read as a
    fraction."""
    got = percentile(list(values), q)
    want = float(np.percentile(values, q))
    scale = max(1.0, max(abs(v) for v in values))
    assert isinstance(got, float), f"percentile must return a float, got {type(got).__name__}"
    assert abs(got - want) <= 1e-9 * scale, (
        f"percentile({values}, {q}) = {got}, numpy.percentile (linear) says {want}")


@pytest.mark.points(1)
def test_percentile_leaves_its_input_alone():
    """Bug: sorting the caller's list in place: the trace's per-request order is lost."""
    values = [3.0, 1.0, 2.0]
    assert percentile(values, 50) == 2.0
    assert values == [3.0, 1.0, 2.0], "percentile changed its input list"


def metrics_st():
    one = st.builds(
        lambda rid, a, ttft, tpot, n, itl, extra: RequestMetrics(
            rid, a, a + ttft + extra, n, ttft, None if n == 1 else tpot,
            tuple(itl[: max(n - 1, 0)]), ttft + extra),
        st.integers(0, 10**6), st.floats(0, 10), st.floats(0.001, 3), st.floats(0.001, 0.2),
        st.integers(1, 6), st.lists(st.floats(0.001, 0.3), min_size=5, max_size=5),
        st.floats(0, 2))
    return st.lists(one, min_size=1, max_size=12)


@pytest.mark.points(2)
@settings(max_examples=30)
@given(ms=metrics_st(), qs=st.lists(st.sampled_from([0, 25, 50, 75, 90, 95, 99, 100]),
                                    min_size=1, max_size=4, unique=True))
def test_summarize_matches_numpy_in_milliseconds(ms, qs):
    """Bugs: latencies left in seconds (a p99 TTFT of 0.2 "ms"); the qs argument ignored;
    one-token requests' None TPOT in the TPOT percentiles; ITL percentiles over per-request
    means instead of every gap; throughput over the span from the first token, not the first
    arrival."""
    s = summarize(ms, qs=qs)
    assert s["requests"] == len(ms) and s["output_tokens"] == sum(m.n_out for m in ms)
    span = max(m.finish_s for m in ms) - min(m.arrival_s for m in ms)
    assert s["duration_s"] == pytest.approx(span)
    if span > 0:
        assert s["output_tokens_per_s"] == pytest.approx(sum(m.n_out for m in ms) / span)
    pools = {"ttft_ms": [m.ttft_s for m in ms], "e2e_ms": [m.e2e_s for m in ms],
             "tpot_ms": [m.tpot_s for m in ms if m.tpot_s is not None],
             "itl_ms": [g for m in ms for g in m.itl_s]}
    for key, pool in pools.items():
        if not pool:
            assert s[key] == {}, f"{key}: no values, expected an empty dict, got {s[key]}"
            continue
        assert sorted(s[key]) == sorted(qs), f"{key}: keys {sorted(s[key])}, asked for {qs}"
        for q in qs:
            want = float(np.percentile(pool, q)) * 1e3
            assert s[key][q] == pytest.approx(want, rel=1e-9, abs=1e-9), (
                f"{key}[{q}] = {s[key][q]}, expected {want} (numpy.percentile of the seconds, "
                "times 1000)")


@pytest.mark.points(1)
def test_slo_targets_met_exactly_count():
    """Bugs: strict inequality (a TTFT equal to the target counted as a miss); a one-token
    request (TPOT None) counted as missing the TPOT target."""
    def m(rid, ttft, tpot, n):
        return RequestMetrics(rid, 0.0, 1.0, n, ttft, tpot, (), 1.0)
    ms = [m(0, 0.25, 0.0625, 3), m(1, 0.125, None, 1), m(2, 0.5, 0.03125, 2),
          m(3, 0.125, 0.125, 4)]
    cases = [((0.25, 0.0625), 2 / 4), ((0.5, 0.125), 4 / 4), ((0.125, 0.125), 2 / 4),
             ((0.0625, 1.0), 0.0)]
    for (ttft, tpot), want in cases:
        got = slo_attainment(ms, ttft, tpot)
        assert got == pytest.approx(want), (
            f"slo_attainment with targets TTFT {ttft} s, TPOT {tpot} s: {got}, expected {want} "
            "(a target met exactly counts as met; one-token requests are judged on TTFT)")
    assert not math.isnan(slo_attainment(ms[1:2], 0.5, 0.5))

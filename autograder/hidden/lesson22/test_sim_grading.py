"""Hidden grader, lesson 22: TTFT and ITL from a trace, and colocated against disaggregated.

References: hand-written traces with their latencies worked out in the comments; the given
simulator's cost model (a disaggregated decode gap is exactly one decode step; a colocated step
that admits prompts lasts their prefill plus one decode step); numpy.percentile.
"""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from course.trace import Event, validate
from exercises.lesson22.serving_sim import (CostModel, colocated_vs_disagg, latencies,
                                            poisson_arrivals, simulate)


def oracle_latencies(events):
    """TTFTs and ITLs written out independently of the learner's ``latencies``."""
    arrival = {e.request: e.time_s for e in events if e.kind == "arrival"}
    ttfts, itls = [], []
    for r in arrival:
        times = [e.time_s for e in events if e.request == r and e.kind in ("first_token", "token")]
        if times:
            ttfts.append(times[0] - arrival[r])
            itls += [b - a for a, b in zip(times, times[1:])]
    return ttfts, itls


def E(request, kind, t, tokens=None):
    return Event(request, kind, t, tokens)


@pytest.mark.points(2)
def test_latencies_of_interleaved_requests():
    """Bugs: ITLs that start at the arrival or the scheduling (TTFT counted as a gap); gaps
    taken between consecutive events of DIFFERENT requests; TTFT measured from 'scheduled'
    instead of 'arrival'; request id 0 skipped as falsy."""
    # request 0: arrival 1.0, scheduled 1.5, first 2.0, tokens 2.25, 2.75 -> TTFT 1.0, ITL .25 .5
    # request "b": arrival 1.2, first 2.1, token 2.2 -> TTFT 0.9, ITL 0.1
    # request 2: arrival 1.3, first 3.0 only -> TTFT 1.7, no ITL
    trace = [E(0, "arrival", 1.0), E("b", "arrival", 1.2), E(2, "arrival", 1.3),
             E(0, "scheduled", 1.5), E(0, "first_token", 2.0), E("b", "first_token", 2.1),
             E("b", "token", 2.2), E(0, "token", 2.25), E(0, "token", 2.75), E(0, "finish", 2.75),
             E("b", "finish", 2.2), E(2, "first_token", 3.0), E(2, "finish", 3.0)]
    validate(trace)
    ttfts, itls = latencies(trace)
    assert ttfts == pytest.approx([1.0, 0.9, 1.7]), f"TTFTs in first-appearance order, got {ttfts}"
    assert sorted(itls) == pytest.approx([0.1, 0.25, 0.5]), f"ITLs per request, got {itls}"


@pytest.mark.points(2)
def test_summary_uses_p99_over_all_requests():
    """Bugs: max reported as p99 (or p99 as max); p99 of one request only; TTFT summary over
    ITLs; the two modes swapped in the result."""
    cost = CostModel(prefill_s_per_token=2e-4, decode_step_s=0.015, transfer_s_per_token=3e-6)
    s = colocated_vs_disagg(6.0, 60, 300, 12, cost, seed=3)
    arrivals = poisson_arrivals(6.0, 60, 3)
    for mode in ("colocated", "disaggregated"):
        ttfts, itls = oracle_latencies(simulate(mode, arrivals, [300] * 60, [12] * 60, cost))
        want = {"p99_ttft_s": np.percentile(ttfts, 99), "p99_itl_s": np.percentile(itls, 99),
                "max_itl_s": max(itls)}
        for key, value in want.items():
            assert s[mode][key] == pytest.approx(value, rel=1e-9), \
                f"{mode} {key}: expected {value:.6g} s, got {s[mode][key]:.6g} s"
    assert s["colocated"]["max_itl_s"] > s["disaggregated"]["max_itl_s"]


@pytest.mark.points(1)
def test_one_output_token_has_no_itl():
    """Bug: an empty ITL list passed to numpy.percentile (IndexError) instead of 0.0."""
    s = colocated_vs_disagg(3.0, 5, 50, 1, CostModel(1e-4, 0.01, 0.0), seed=0)
    for mode in ("colocated", "disaggregated"):
        assert s[mode]["p99_itl_s"] == 0.0 and s[mode]["max_itl_s"] == 0.0
        assert s[mode]["p99_ttft_s"] > 0


@pytest.mark.points(3)
@settings(max_examples=8, deadline=None)
@given(rate=st.floats(1.0, 20.0), n=st.integers(5, 30), prompt=st.integers(16, 800),
       out=st.integers(2, 20), prefill_ms=st.floats(1.0, 20.0), step_ms=st.floats(5, 40),
       seed=st.integers(0, 10_000))
def test_disaggregated_decode_is_never_stalled(rate, n, prompt, out, prefill_ms, step_ms, seed):
    """Property of the two modes through your summary: disaggregated, every ITL is one decode
    step (no prefill ever stalls a decode); colocated, the largest ITL is at least a decode
    step plus one prompt's prefill whenever a prompt was admitted while another request was
    decoding. Bugs: gaps measured across requests or from the arrival."""
    cost = CostModel(prefill_ms * 1e-3 / 100, step_ms * 1e-3, 1e-7)
    s = colocated_vs_disagg(rate, n, prompt, out, cost, seed=seed)
    d = s["disaggregated"]
    assert math.isclose(d["max_itl_s"], cost.decode_step_s, rel_tol=1e-6) and \
        math.isclose(d["p99_itl_s"], cost.decode_step_s, rel_tol=1e-6), (
        f"disaggregated ITLs must all equal the decode step {cost.decode_step_s:.6g} s; "
        f"p99 {d['p99_itl_s']:.6g}, max {d['max_itl_s']:.6g}")
    events = simulate("colocated", poisson_arrivals(rate, n, seed), [prompt] * n, [out] * n, cost)
    first = {e.request: e.time_s for e in events if e.kind == "first_token"}
    finish = {e.request: e.time_s for e in events if e.kind == "finish"}
    # a prompt admitted at t while another request q was decoding (first token <= t < finish)
    stalled = any(first[q] <= e.time_s < finish[q] for e in events if e.kind == "scheduled"
                  for q in first if q != e.request)
    if stalled:
        assert s["colocated"]["max_itl_s"] >= cost.decode_step_s + prompt * cost.prefill_s_per_token \
            - 1e-12, "colocated: a step that admits a prompt stretches the running requests' gap"
    assert s["disaggregated"]["p99_ttft_s"] >= prompt * (cost.prefill_s_per_token
                                                         + cost.transfer_s_per_token) - 1e-12, \
        "disaggregated TTFT includes the prefill and the KV transfer"

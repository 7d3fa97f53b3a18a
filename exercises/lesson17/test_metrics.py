"""Lesson 17, part 1: latencies from a trace, percentiles, summary. Run: pytest exercises/lesson17

Expected values are worked out by hand from the traces below (the comments show the arithmetic);
percentiles are checked against numpy.percentile.
"""

import math

import numpy as np
import pytest

from course.trace import Event
from exercises.lesson17.metrics import percentile, request_metrics, slo_attainment, summarize


def E(request, kind, time_s, tokens=None):
    return Event(request, kind, time_s, tokens)


# Two requests, interleaved as an engine writes them. Request 0 is id 0 on purpose.
#   request 0: arrives 0.0, first token 0.5, tokens 0.6 and 0.8, finish 0.8
#   request 1: arrives 0.2, first token 0.7, one more token 1.0, finish 1.0
TRACE = [
    E(0, "arrival", 0.0), E(0, "scheduled", 0.1), E(1, "arrival", 0.2), E(1, "scheduled", 0.4),
    E(0, "first_token", 0.5), E(0, "token", 0.6), E(1, "first_token", 0.7),
    E(0, "token", 0.8), E(0, "finish", 0.8), E(1, "token", 1.0), E(1, "finish", 1.0),
]


def test_hand_computed_trace():
    m0, m1 = request_metrics(TRACE)
    assert (m0.request, m1.request) == (0, 1), "requests come back in arrival order"
    # request 0: TTFT 0.5 - 0.0; three tokens; TPOT (0.8 - 0.5) / 2; E2E 0.8
    assert m0.n_out == 3
    assert m0.ttft_s == pytest.approx(0.5)
    assert m0.tpot_s == pytest.approx(0.15), "TPOT = (last token - first token) / (n_out - 1)"
    assert m0.itl_s == pytest.approx((0.1, 0.2))
    assert m0.e2e_s == pytest.approx(0.8)
    # request 1: TTFT 0.7 - 0.2 = 0.5; two tokens; TPOT (1.0 - 0.7) / 1; E2E 0.8
    assert m1.n_out == 2
    assert m1.ttft_s == pytest.approx(0.5) and m1.tpot_s == pytest.approx(0.3)
    assert m1.itl_s == pytest.approx((0.3,)) and m1.e2e_s == pytest.approx(0.8)
    assert (m1.arrival_s, m1.finish_s) == pytest.approx((0.2, 1.0))


def test_tpot_leaves_the_first_token_out():
    # 5 tokens: first at 1.0 s, then every 0.1 s until 1.4 s. TPOT is 0.4 s / 4 = 0.1 s; dividing
    # by 5 (all tokens) would say 0.08 s, and (E2E) / n_out would say 0.28 s.
    trace = [E(7, "arrival", 0.0), E(7, "first_token", 1.0)]
    trace += [E(7, "token", 1.0 + 0.1 * i) for i in range(1, 5)] + [E(7, "finish", 1.4)]
    (m,) = request_metrics(trace)
    assert m.n_out == 5 and m.tpot_s == pytest.approx(0.1)


def test_one_token_and_unfinished_requests():
    trace = [E("a", "arrival", 0.0), E("b", "arrival", 0.1), E("a", "first_token", 0.3),
             E("a", "finish", 0.3), E("b", "first_token", 0.4), E("b", "token", 0.5)]
    (m,) = request_metrics(trace)  # "b" never finished: left out
    assert m.request == "a" and m.n_out == 1
    assert m.tpot_s is None, "TPOT of a one-token request is undefined: None"
    assert m.itl_s == ()


def test_one_event_may_deliver_several_tokens():
    # a speculative step delivers 3 tokens at 0.4 s: n_out 4, one gap, TPOT 0.2 s / 3
    trace = [E(1, "arrival", 0.0), E(1, "first_token", 0.2), E(1, "token", 0.4, tokens=3),
             E(1, "finish", 0.4)]
    (m,) = request_metrics(trace)
    assert m.n_out == 4 and m.itl_s == pytest.approx((0.2,))
    assert m.tpot_s == pytest.approx(0.2 / 3)


@pytest.mark.parametrize("values", [[3.0], [1, 2, 3, 4], [5.0, 1.0, 4.0, 2.0, 3.0, 9.5, 0.25]])
@pytest.mark.parametrize("q", [0, 10, 25, 50, 90, 99, 100])
def test_percentile_equals_numpy(values, q):
    got = percentile(values, q)
    assert got == pytest.approx(float(np.percentile(values, q)), rel=1e-12, abs=1e-15), \
        f"percentile({values}, {q})"


def test_percentile_refuses_what_has_no_answer():
    assert percentile([2.0, 1.0], 50) == 1.5
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1.0, 2.0], 101)
    with pytest.raises(ValueError):
        percentile([1.0, None], 50)


def test_summary_in_milliseconds():
    s = summarize(request_metrics(TRACE), qs=(50, 100))
    assert s["requests"] == 2 and s["output_tokens"] == 5
    assert s["duration_s"] == pytest.approx(1.0)  # first arrival 0.0 to last finish 1.0
    assert s["output_tokens_per_s"] == pytest.approx(5.0)
    assert s["ttft_ms"] == pytest.approx({50: 500.0, 100: 500.0})
    assert s["tpot_ms"] == pytest.approx({50: 225.0, 100: 300.0})  # TPOTs 150 and 300 ms
    assert s["itl_ms"] == pytest.approx({50: 200.0, 100: 300.0})   # gaps 100, 200, 300 ms
    assert s["e2e_ms"] == pytest.approx({50: 800.0, 100: 800.0})
    assert not math.isnan(s["ttft_ms"][50])


def test_slo_attainment_counts_a_target_met_exactly():
    # times in eighths of a second, exact in binary floating point, so "exactly" is exact:
    #   request 0: TTFT 0.25 s, TPOT (0.75 - 0.25) / 2 = 0.25 s    meets 0.25 s / 0.25 s
    #   request 1: TTFT 0.5 s, one token (no TPOT)                   misses TTFT 0.25 s
    #   request 2: TTFT 0.125 s, TPOT 0.375 s                        misses TPOT 0.25 s
    trace = [E(0, "arrival", 0.0), E(1, "arrival", 0.0), E(2, "arrival", 0.125),
             E(0, "first_token", 0.25), E(2, "first_token", 0.25), E(1, "first_token", 0.5),
             E(1, "finish", 0.5), E(0, "token", 0.5), E(2, "token", 0.625),
             E(0, "token", 0.75), E(0, "finish", 0.75), E(2, "finish", 0.625)]
    ms = request_metrics(trace)
    assert slo_attainment(ms, ttft_slo_s=0.25, tpot_slo_s=0.25) == pytest.approx(1 / 3)
    assert slo_attainment(ms, ttft_slo_s=0.5, tpot_slo_s=0.375) == 1.0
    assert slo_attainment(ms, ttft_slo_s=0.5, tpot_slo_s=0.25) == pytest.approx(2 / 3)
    assert slo_attainment(ms, ttft_slo_s=0.1, tpot_slo_s=1.0) == 0.0

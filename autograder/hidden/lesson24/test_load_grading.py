"""Hidden grader, lesson 24: Little's Law, the knee, goodput, and the lesson's figures.

Oracles: traces built from chosen times in the system (L, lambda and W worked out by hand);
curves built with a planted knee; attainments built from latencies chosen above or below the
SLOs; and the simulator's long seeded runs, where Little's Law must hold within 3% in a window
that skips the start-up and the drain.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from course.trace import Event
from exercises.lesson24.chunking import chunked_prefill_plan, prefill_first_plan
from exercises.lesson24.figures import goodput_figure, knee_figure, runs_of
from exercises.lesson24.load import find_knee, goodput, littles_law
from exercises.lesson24.simulator import poisson_requests, simulate, sweep

PARAMS, KV_BYTES, PEAK, BW = 7e9, 131_072, 989.4e12, 4.8e12  # bf16 7B on the H200 fixture


def step_cost(tokens, kv_tokens):
    return max(2 * PARAMS * tokens / PEAK, (2 * PARAMS + KV_BYTES * kv_tokens) / BW)


def in_system(spans, offset=0.0):
    events = []
    for i, (a, f) in enumerate(spans):
        events += [Event(i, "arrival", offset + a), Event(i, "first_token", offset + f),
                   Event(i, "finish", offset + f)]
    return sorted(events, key=lambda e: e.time_s)


@pytest.mark.points(2)
def test_littles_law_is_a_time_average():
    """Bug: L as the mean of the in-system count seen at each event (events crowd where the
    system is busy) instead of its average over time."""
    # A [0, 10), B [1, 2), C [1.5, 2.5): area 10 + 1 + 1 = 12 over 10 s; events crowd near 2
    got = littles_law(in_system([(0.0, 10.0), (1.0, 2.0), (1.5, 2.5)]))
    assert got.mean_in_system == pytest.approx(1.2)
    assert got.arrival_rate_per_s == pytest.approx(0.3)
    assert got.mean_time_in_system_s == pytest.approx(4.0)
    # a clock far from its origin changes nothing
    far = littles_law(in_system([(0.0, 10.0), (1.0, 2.0), (1.5, 2.5)], offset=1e6))
    assert far.mean_in_system == pytest.approx(1.2, rel=1e-6)


@pytest.mark.points(2)
def test_littles_law_window():
    """Bug: the window ignored (start_s / end_s), requests before the window counted whole, or
    W averaged over every request instead of those that arrived in the window."""
    spans = [(0.0, 4.0), (1.0, 2.0), (3.0, 7.0), (5.0, 5.5)]
    got = littles_law(in_system(spans), start_s=2.0, end_s=6.0)
    # in [2, 6): A 2 s, B 0, C 3 s, D 0.5 s -> 5.5 / 4; arrivals C and D -> 0.5 /s; W (4 + 0.5) / 2
    assert got.mean_in_system == pytest.approx(5.5 / 4)
    assert got.arrival_rate_per_s == pytest.approx(0.5)
    assert got.mean_time_in_system_s == pytest.approx(2.25)


@pytest.mark.points(1)
def test_littles_law_errors():
    """Bug: an empty trace, or one with a request that never finishes, gives a number (or a
    ZeroDivisionError) instead of a ValueError."""
    with pytest.raises(ValueError):
        littles_law([])
    with pytest.raises(ValueError):
        littles_law([Event(0, "arrival", 0.0), Event(1, "arrival", 1.0),
                     Event(1, "first_token", 2.0), Event(1, "finish", 2.0)])


@pytest.mark.points(3)
def test_littles_law_holds_in_a_long_simulated_run():
    """Bug: any L, lambda or W that is not the time-average, the arrival rate and the mean
    time in system: on a long seeded run they must satisfy L = lambda x W within 3%."""
    reqs = poisson_requests(40.0, 2000, prompt_lens=[128, 256, 1024], out_lens=[32, 64, 128],
                            seed=7)
    run = simulate(reqs, chunked_prefill_plan, step_cost, token_budget=512, chunk_size=512)
    whole = littles_law(run.events)
    assert whole.relative_error < 1e-9, "a window that starts and ends empty gives L = lambda W"
    start, end = reqs[200].arrival_s, reqs[1800].arrival_s
    got = littles_law(run.events, start_s=start, end_s=end)
    assert got.arrival_rate_per_s == pytest.approx(1600 / (end - start))
    assert got.relative_error < 0.03, (got, got.predicted)
    assert got.mean_in_system > 1, "a load where requests overlap"


def planted(loads, knee, low=1.0, high=25.0):
    return [10 + low * x if x <= knee else 10 + low * knee + high * (x - knee) for x in loads]


@pytest.mark.points(3)
@settings(max_examples=15)
@given(k=st.integers(8, 30), low=st.floats(0.0, 2.0), high=st.floats(8.0, 200.0),
       noise=st.floats(0.0, 0.02), seed=st.integers(0, 1000))
def test_planted_knee(k, low, high, noise, seed):
    """Bug: the knee returned as an index instead of a load, axes not normalised (latencies in
    ms against loads in requests/s), or the wrong side of the chord."""
    import random

    loads = [0.25 * i + 0.5 for i in range(40)]  # 0.5 .. 10.25 requests/s: not indices
    knee = loads[k]
    lat = planted(loads, knee, low, high)
    span, rng, drift = lat[-1] - lat[0], random.Random(seed), 0.0
    for i in range(len(lat)):  # random monotone noise, up to `noise` of the span in all
        drift += rng.uniform(0, 2 * noise * span / len(lat))
        lat[i] += drift
    got = find_knee(loads, lat)
    assert got in loads, f"{got} is not one of the loads"
    assert abs(got - knee) <= 0.05 * knee, f"knee at {got} requests/s, planted at {knee}"


@pytest.mark.points(1)
def test_knee_errors():
    """Bug: unsorted, too-short or mismatched input accepted silently (or an IndexError)."""
    for loads, lat in [([1.0, 2.0], [1.0, 3.0]), ([1.0, 1.0, 2.0], [1.0, 2.0, 9.0]),
                       ([3.0, 2.0, 1.0], [1.0, 2.0, 9.0]), ([1.0, 2.0, 3.0], [1.0, 2.0]),
                       ([1.0, 2.0, 3.0], [5.0, 4.0, 3.0])]:
        with pytest.raises(ValueError):
            find_knee(loads, lat)


OK, SLOW_TTFT, SLOW_TPOT = (0.15, 0.02), (0.25, 0.02), (0.15, 0.06)


@pytest.mark.points(2)
def test_goodput_needs_both_slos():
    """Bug: a request counted as good when it meets either SLO instead of both."""
    runs = [[OK] * 10, [OK] * 5 + [SLOW_TTFT] * 3 + [SLOW_TPOT] * 2]
    assert goodput([1.0, 2.0], runs, ttft_slo_s=0.2, tpot_slo_s=0.05) == 1.0


@pytest.mark.points(2)
def test_goodput_boundaries():
    """Bug: attainment compared with > instead of >= (a target met exactly fails), a latency
    equal to its SLO counted as missed, or the target argument ignored."""
    exact = [OK] * 9 + [SLOW_TTFT]  # exactly 90%
    assert goodput([1.0, 2.0], [[OK] * 4, exact], 0.2, 0.05) == 2.0
    at_slo = [(0.2, 0.05)] * 4 + [(0.2, None)]
    assert goodput([3.0], [at_slo], 0.2, 0.05, target=1.0) == 3.0
    half = [OK, SLOW_TPOT]
    assert goodput([1.0, 2.0], [[OK], half], 0.2, 0.05, target=0.5) == 2.0
    assert goodput([1.0, 2.0], [[OK], half], 0.2, 0.05, target=0.95) == 1.0


@pytest.mark.points(2)
def test_goodput_runs_of_different_sizes_and_first_failure():
    """Bug: the share taken over another run's request count, the SLOs treated as ms while the
    latencies are seconds, or a rate above a failing one reported (goodput is the highest rate
    up to which every rate tried meets the target)."""
    runs = [[OK] * 20, [OK] * 9 + [SLOW_TTFT], [OK] * 3 + [SLOW_TPOT] * 7, [OK] * 5]
    assert goodput([1.0, 2.0, 3.0, 4.0], runs, 0.2, 0.05) == 2.0
    assert goodput([1.0], [[SLOW_TTFT]], 0.2, 0.05) == 0.0


@pytest.mark.points(1)
def test_goodput_empty_run():
    """Bug: a run with no requests divides by zero instead of raising ValueError."""
    with pytest.raises(ValueError):
        goodput([1.0, 2.0], [[OK], []], 0.2, 0.05)


@pytest.mark.points(2)
@settings(max_examples=12)
@given(seed=st.integers(0, 10_000), ttft=st.floats(0.05, 0.5), tpot=st.floats(0.01, 0.1),
       shrink=st.floats(0.3, 1.0))
def test_goodput_monotone_as_slos_tighten(seed, ttft, tpot, shrink):
    """Bug: any goodput that can rise when an SLO gets stricter."""
    import random

    rng = random.Random(seed)
    rates = [1.0, 2.0, 3.0, 4.0, 5.0]
    runs = [[(rng.uniform(0, 0.3) * r, rng.choice([None, rng.uniform(0, 0.05) * r]))
             for _ in range(rng.randint(5, 30))] for r in rates]
    loose = goodput(rates, runs, ttft, tpot)
    assert goodput(rates, runs, ttft * shrink, tpot) <= loose
    assert goodput(rates, runs, ttft, tpot * shrink) <= loose


RATES = [15.0, 30.0, 45.0, 60.0, 75.0, 90.0, 105.0, 120.0]  # requests/s, past saturation
WORK = dict(n=150, prompt_lens=[256] * 7 + [3072], out_lens=[32, 64, 128], seed=3,
            chunk_size=512)


@pytest.mark.points(2)
def test_figures_show_the_knee_and_chunked_goodput(tmp_path):
    """Bug: a knee that is not on the p99 curve, or a goodput that chunked prefill does not
    raise under a tight TPOT SLO (prefills stall decodes and every long prompt breaks TPOT)."""
    chunked = sweep(RATES, chunked_prefill_plan, step_cost, token_budget=512, **WORK)
    whole = sweep(RATES, prefill_first_plan, step_cost, token_budget=4096, **WORK)
    p99 = [r.p99("ttft_s") for r in whole]
    knee = find_knee(RATES, p99)
    data = knee_figure(tmp_path / "knee.png", RATES, whole, knee)
    line = data.lines[0]
    assert line.x == tuple(RATES) and line.y == pytest.approx([v * 1e3 for v in p99])
    assert data.points[0].x == knee and data.points[0].y == pytest.approx(
        p99[RATES.index(knee)] * 1e3)
    slos = [0.005, 0.0075, 0.01, 0.02]
    curves = {name: [goodput(RATES, runs_of(res), 0.5, s) for s in slos]
              for name, res in [("chunked", chunked), ("prefill first", whole)]}
    data = goodput_figure(tmp_path / "goodput.png", slos, curves)
    assert data.line("chunked").y == tuple(curves["chunked"])
    assert all(a >= b for a, b in zip(curves["chunked"], curves["prefill first"]))
    assert curves["chunked"][0] > curves["prefill first"][0], curves
    assert all(math.isfinite(v) for v in curves["chunked"])

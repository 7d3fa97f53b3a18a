"""Hidden graders, lesson 20: layer split, bubble formula, and schedules judged on their timeline.

The oracle for a schedule is its own timeline, never the formula: the graders check the
dependencies and the one-op-at-a-time rule, that every op starts as early as its stage and its
input allow, then MEASURE the idle fraction (idle ticks over stages x makespan) and the peak
number of micro-batches in flight per stage (forward started, backward not finished) and
compare those with (p - 1) / (m + p - 1), m (GPipe) and min(p - s, m) (1F1B).
"""

from fractions import Fraction

import pytest

from exercises.lesson20.schedule import (BACKWARD_UNITS, FORWARD_UNITS, bubble_fraction,
                                         pipeline_schedule, split_layers)


@pytest.mark.points(2)
def test_split_layers_covers_in_order_balanced_remainder_first():
    """Bugs: an off-by-one that drops or repeats a layer, the remainder given to the last
    stages (or all to one stage), stages out of order."""
    for n in range(1, 41):
        for pp in range(1, n + 1):
            stages = split_layers(n, pp)
            assert len(stages) == pp, f"split_layers({n}, {pp}) gave {len(stages)} stages"
            flat = [i for r in stages for i in r]
            assert flat == list(range(n)), (
                f"split_layers({n}, {pp}) = {stages}: the stages must cover layers 0..{n - 1} "
                "in order, each once")
            sizes = [len(r) for r in stages]
            want = [n // pp + (1 if s < n % pp else 0) for s in range(pp)]
            assert sizes == want, (
                f"split_layers({n}, {pp}) has stage sizes {sizes}; balanced with the first "
                f"{n % pp} stages one larger is {want}")


@pytest.mark.points(1)
def test_split_layers_refuses_empty_stages():
    """Bug: more stages than layers accepted (a stage with no layers), or pp = 0 not refused.
    (The checks ride on a working split: the stub's validation alone earns nothing.)"""
    assert split_layers(4, 4) == [range(i, i + 1) for i in range(4)]
    for n, pp in [(3, 4), (1, 2), (5, 0), (5, -1)]:
        with pytest.raises(ValueError):
            split_layers(n, pp)


@pytest.mark.points(2)
def test_bubble_fraction_exact():
    """Bugs: p / (m + p), (p - 1) / (m + p), (p - 1) / m, a bubble for one stage."""
    for p in range(1, 9):
        for m in range(1, 33):
            assert bubble_fraction(p, m) == pytest.approx((p - 1) / (m + p - 1), abs=1e-12), \
                f"bubble_fraction({p}, {m}) = {bubble_fraction(p, m)}; (p-1)/(m+p-1) = " \
                f"{(p - 1) / (m + p - 1)}"


def _check_timeline(stages, p, m, kind):
    """Validity and tightness of a schedule; returns (idle fraction, peak in flight per stage)."""
    assert len(stages) == p, f"{kind} p={p} m={m}: {len(stages)} stages, expected {p}"
    end = {}
    for s, ops in enumerate(stages):
        want = {("F", i) for i in range(m)} | ({("B", i) for i in range(m)}
                                              if kind != "forward" else set())
        got = [(op.kind, op.microbatch) for op in ops]
        assert sorted(got) == sorted(want), (
            f"{kind} p={p} m={m}: stage {s} must run each of {sorted(want)} once, ran {got}")
        for op in ops:
            assert op.duration == (FORWARD_UNITS if op.kind == "F" else BACKWARD_UNITS), \
                f"{kind}: {op} has the wrong duration"
            end[(op.kind, s, op.microbatch)] = op.end
    for s, ops in enumerate(stages):
        free = 0
        for op in ops:
            if op.kind == "F":
                dep = end[("F", s - 1, op.microbatch)] if s > 0 else 0
            else:
                dep = end[("B", s + 1, op.microbatch)] if s < p - 1 else end[("F", s, op.microbatch)]
            assert op.start >= max(free, dep), (
                f"{kind} p={p} m={m}: stage {s} starts {op} before its stage is free (tick "
                f"{free}) or before its input is ready (tick {dep})")
            assert op.start == max(free, dep), (
                f"{kind} p={p} m={m}: stage {s} starts {op} late; it could start at tick "
                f"{max(free, dep)}")
            free = op.end
    makespan = max(op.end for ops in stages for op in ops)
    busy = sum(op.duration for ops in stages for op in ops)
    peaks = []
    for ops in stages:
        f_start = {op.microbatch: op.start for op in ops if op.kind == "F"}
        b_end = {op.microbatch: op.end for op in ops if op.kind == "B"}
        peaks.append(max(sum(1 for i in range(m) if f_start[i] <= t < b_end.get(i, 0))
                         for t in range(makespan)) if b_end else None)
    return Fraction(p * makespan - busy, p * makespan), peaks


@pytest.mark.points(4)
@pytest.mark.parametrize("kind", ["forward", "gpipe", "1f1b"])
def test_measured_idle_fraction_equals_the_formula(kind):
    """Bugs: a dependency ignored (a stage starts a micro-batch before the previous stage has
    sent it, or a backward before the next stage's), ops started late (a stage waiting for
    all of the previous stage's work), two ops at once on one stage, wrong durations, a
    backward missing; all of which move the measured idle fraction off (p-1)/(m+p-1)."""
    for p in range(1, 6):
        for m in range(1, 10):
            idle, _ = _check_timeline(pipeline_schedule(p, m, kind), p, m, kind)
            assert idle == Fraction(p - 1, m + p - 1), (
                f"{kind} p={p} m={m}: the timeline is idle {idle} of the time; the bubble "
                f"(p-1)/(m+p-1) is {Fraction(p - 1, m + p - 1)}")


@pytest.mark.points(3)
def test_peak_microbatches_in_flight_gpipe_m_1f1b_p_minus_s():
    """Bugs: 1F1B with p - s warm-up forwards instead of p - 1 - s (one micro-batch more in
    flight), 1F1B that runs its backwards only at the end (GPipe's memory), warm-up not
    capped at m when m < p."""
    for p in range(1, 6):
        for m in range(1, 10):
            _, gpipe = _check_timeline(pipeline_schedule(p, m, "gpipe"), p, m, "gpipe")
            assert gpipe == [m] * p, f"GPipe p={p} m={m}: peak in flight {gpipe}, expected m"
            _, ofob = _check_timeline(pipeline_schedule(p, m, "1f1b"), p, m, "1f1b")
            want = [min(p - s, m) for s in range(p)]
            assert ofob == want, (f"1F1B p={p} m={m}: peak micro-batches in flight per stage "
                                  f"{ofob}, expected min(p - s, m) = {want}")


@pytest.mark.points(1)
def test_bad_arguments_raise():
    """Bug: an unknown kind or a zero count accepted silently (on a working schedule)."""
    assert [(op.kind, op.start) for op in pipeline_schedule(1, 1, "gpipe")[0]] == \
        [("F", 0), ("B", FORWARD_UNITS)]
    for args in [(2, 4, "interleaved"), (0, 4, "gpipe"), (2, 0, "1f1b")]:
        with pytest.raises(ValueError):
            pipeline_schedule(*args)
    with pytest.raises(ValueError):
        bubble_fraction(2, 0)

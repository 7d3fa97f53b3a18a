"""Lesson 20, part 1: stages, the bubble, and schedules checked on their own timeline.
Run: pytest exercises/lesson20"""

from fractions import Fraction

import pytest

from exercises.lesson20.schedule import (BACKWARD_UNITS, FORWARD_UNITS, bubble_fraction,
                                         pipeline_schedule, split_layers)


def test_split_layers_is_balanced_with_the_remainder_first():
    assert split_layers(10, 4) == [range(0, 3), range(3, 6), range(6, 8), range(8, 10)]
    assert split_layers(8, 2) == [range(0, 4), range(4, 8)]
    assert split_layers(3, 3) == [range(0, 1), range(1, 2), range(2, 3)]
    with pytest.raises(ValueError):
        split_layers(3, 4)


def test_bubble_fraction_formula():
    assert bubble_fraction(1, 5) == 0.0
    assert bubble_fraction(4, 8) == pytest.approx(3 / 11)
    assert bubble_fraction(2, 1) == pytest.approx(1 / 2)


def idle_fraction(stages):
    """Measured on the timeline: idle ticks over (stages x makespan)."""
    makespan = max(op.end for ops in stages for op in ops)
    busy = sum(op.duration for ops in stages for op in ops)
    return Fraction(len(stages) * makespan - busy, len(stages) * makespan)


@pytest.mark.parametrize("kind", ["forward", "gpipe", "1f1b"])
def test_idle_fraction_of_the_simulated_timeline_equals_the_formula(kind):
    p, m = 4, 8
    stages = pipeline_schedule(p, m, kind)
    assert len(stages) == p
    for s, ops in enumerate(stages):
        assert sorted(op.microbatch for op in ops if op.kind == "F") == list(range(m))
        for a, b in zip(ops, ops[1:]):
            assert b.start >= a.end, f"stage {s} runs {a} and {b} at once"
        for op in ops:
            assert op.duration == (FORWARD_UNITS if op.kind == "F" else BACKWARD_UNITS)
    assert idle_fraction(stages) == Fraction(p - 1, m + p - 1), f"{kind}: measured bubble"


def test_forward_only_schedule_for_two_stages():
    stages = pipeline_schedule(2, 3, "forward")
    assert [(op.kind, op.microbatch, op.start) for op in stages[1]] == \
        [("F", 0, 1), ("F", 1, 2), ("F", 2, 3)]

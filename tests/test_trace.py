"""course.trace: the event format, its JSON Lines round trip, and the rules validate enforces.

Each rule is checked on a trace that breaks only that rule; the error must name the event.
"""

import pytest

from course.trace import KINDS, Event, TraceError, read_jsonl, validate, write_jsonl

GOOD = [Event(0, "arrival", 10.0, 12), Event(0, "scheduled", 10.1),
        Event("b", "arrival", 10.2), Event(0, "first_token", 10.5, step=0),
        Event("b", "scheduled", 10.5), Event(0, "preempt", 10.6), Event(0, "scheduled", 10.7),
        Event(0, "token", 10.8, 3, step=2), Event("b", "first_token", 10.8),
        Event(0, "finish", 10.8)]


def test_defaults_and_a_valid_trace():
    assert Event(1, "token", 0.5).tokens == 1 and Event(1, "finish", 0.5).tokens == 0
    assert Event(1, "arrival", 0).time_s == 0.0 and isinstance(Event(1, "arrival", 0).time_s, float)
    assert set(KINDS) == {"arrival", "scheduled", "first_token", "token", "preempt", "finish"}
    validate(GOOD)  # interleaved requests, id 0, a preemption, an unfinished request


def test_jsonl_round_trip(tmp_path):
    path = tmp_path / "run.jsonl"
    write_jsonl(GOOD, path)
    assert read_jsonl(path) == GOOD
    assert '"step"' not in path.read_text().splitlines()[0]  # None steps are left out


@pytest.mark.parametrize("kwargs,words", [
    (dict(request=0, kind="tok", time_s=0.0), "unknown event kind"),
    (dict(request=0, kind="token", time_s=float("nan")), "finite"),
    (dict(request=0, kind="token", time_s=0.0, tokens=0), "at least 1"),
    (dict(request=0, kind="finish", time_s=0.0, tokens=2), "carries no tokens"),
    (dict(request=1.5, kind="arrival", time_s=0.0), "int or a str"),
    (dict(request=0, kind="token", time_s=0.0, step=-1), "step"),
])
def test_bad_events_are_refused(kwargs, words):
    with pytest.raises(TraceError, match=words):
        Event(**kwargs)


@pytest.mark.parametrize("trace,words", [
    ([Event(0, "token", 1.0)], "before the request's arrival"),
    ([Event(0, "arrival", 1.0), Event(0, "first_token", 0.5)], "backwards"),
    ([Event(0, "arrival", 1.0), Event(0, "token", 1.5)], "before the request's first_token"),
    ([Event(0, "arrival", 1.0), Event(0, "first_token", 1.5), Event(0, "first_token", 1.6)],
     "second first_token"),
    ([Event(0, "arrival", 1.0), Event(0, "first_token", 1.5), Event(0, "finish", 1.5),
      Event(0, "finish", 1.6)], "finish twice"),
    ([Event(0, "arrival", 1.0), Event(0, "finish", 1.5)], "before any output token"),
    ([Event(0, "arrival", 1.0), Event(0, "arrival", 1.0)], "arrives twice"),
    ([("not", "an", "event")], "not a course.trace.Event"),
])
def test_rule_breaks_are_named(trace, words):
    with pytest.raises(TraceError, match=words) as err:
        validate(trace)
    assert "event" in str(err.value)


def test_read_names_the_bad_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"request": 0, "kind": "arrival", "time_s": 0}\n'
                    '{"request": 0, "kind": "first_tok", "time_s": 1}\n')
    with pytest.raises(TraceError, match="line 2: unknown event kind"):
        read_jsonl(path)
    path.write_text('{"request": 0, "kind": "arrival", "t": 0}\n')
    with pytest.raises(TraceError, match=r"line 1: unknown fields \['t'\], missing \['time_s'\]"):
        read_jsonl(path)
    path.write_text('{"request": 0, "kind": "arrival", "time_s": 0}\nnot json\n')
    with pytest.raises(TraceError, match="line 2: not JSON"):
        read_jsonl(path)

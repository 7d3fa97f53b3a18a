"""The course's request trace: what a serving engine writes down as it runs.

One format for every program in the course that serves requests (the engine, the simulator, the
capstone) and for every program that reads them (lesson 17's metrics, later lessons' plots). A
trace is a sequence of events, one per line in a JSON Lines file::

    {"request": 0, "kind": "arrival", "time_s": 0.0, "tokens": 12}
    {"request": 0, "kind": "scheduled", "time_s": 0.001}
    {"request": 0, "kind": "first_token", "time_s": 0.051, "tokens": 1, "step": 0}
    {"request": 0, "kind": "token", "time_s": 0.071, "tokens": 1, "step": 1}
    {"request": 0, "kind": "finish", "time_s": 0.071}

Fields of an ``Event``:

* ``request``: the request's id, an ``int`` or a ``str`` (0 is a valid id).
* ``kind``: one of ``KINDS``:

  - ``arrival``: the request reached the server (the client's send time, in an open-loop
    benchmark the scheduled send time). ``tokens`` is the prompt's length, 0 if unknown.
  - ``scheduled``: the engine admitted it into a batch (prefill starts).
  - ``first_token``: the first output token reached the client. ``tokens`` output tokens
    (at least 1) were delivered at this moment.
  - ``token``: more output tokens reached the client, ``tokens`` of them (at least 1): 1 per
    decode step, more when one step yields several (speculative decoding).
  - ``preempt``: the engine evicted it from the batch (its KV freed or swapped); a later
    ``scheduled`` resumes it.
  - ``finish``: the request is complete; no event of it may follow. An engine writes it at
    the time of the last token; a request the run ended before finishing has no ``finish``.

* ``time_s``: seconds on ONE monotonic clock (``time.monotonic()`` or ``time.perf_counter()``
  on the host, or a simulator's clock). Only differences mean something; the origin may be
  anything (days of uptime: keep times as Python floats, float64, never float32).
* ``tokens``: a count as described per kind; ``None`` in the constructor means 1 for the
  kinds that deliver tokens and 0 for the others.
* ``step``: the engine's step (iteration) number, when the engine has one; ``None`` otherwise.

Rules a valid trace obeys (``validate`` checks them and names the event that breaks one):
each request starts with exactly one ``arrival``; its events' times never go backwards; no
``token`` before its ``first_token``, at most one ``first_token``; at most one ``finish``,
after at least one output token, and nothing after it. Events of different requests
interleave freely (an engine writes them in the order things happen).

This module reads, writes and checks traces. It computes no metric: latencies, percentiles
and utilisation are lesson 17's to write.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = ["KINDS", "TOKEN_KINDS", "Event", "TraceError", "validate", "write_jsonl",
           "read_jsonl"]

KINDS = ("arrival", "scheduled", "first_token", "token", "preempt", "finish")
TOKEN_KINDS = ("first_token", "token")  # the kinds that deliver output tokens
FIELDS = ("request", "kind", "time_s", "tokens", "step")


class TraceError(ValueError):
    """A trace that breaks the format or its rules; the message names the event."""


@dataclass(frozen=True)
class Event:
    """One thing that happened to one request at one time (see the module docstring)."""

    request: int | str
    kind: str
    time_s: float
    tokens: int | None = None
    step: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.request, bool) or not isinstance(self.request, (int, str)):
            raise TraceError(f"request id must be an int or a str, got {self.request!r}")
        if self.kind not in KINDS:
            raise TraceError(f"unknown event kind {self.kind!r} (request {self.request!r}); "
                             f"the kinds are {', '.join(KINDS)}")
        if isinstance(self.time_s, bool) or not isinstance(self.time_s, (int, float)) \
                or not math.isfinite(self.time_s):
            raise TraceError(f"time_s must be a finite number of seconds, got {self.time_s!r} "
                             f"({self.kind} of request {self.request!r})")
        object.__setattr__(self, "time_s", float(self.time_s))
        tokens = self.tokens
        if tokens is None:
            tokens = 1 if self.kind in TOKEN_KINDS else 0
        if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 0:
            raise TraceError(f"tokens must be a whole number >= 0, got {self.tokens!r} "
                             f"({self.kind} of request {self.request!r})")
        if self.kind in TOKEN_KINDS and tokens < 1:
            raise TraceError(f"a {self.kind} event delivers at least 1 token, got {tokens} "
                             f"(request {self.request!r} at {self.time_s} s)")
        if self.kind not in TOKEN_KINDS and self.kind != "arrival" and tokens:
            raise TraceError(f"a {self.kind} event carries no tokens, got {tokens} "
                             f"(request {self.request!r})")
        object.__setattr__(self, "tokens", tokens)
        if self.step is not None and (isinstance(self.step, bool) or not isinstance(self.step, int)
                                      or self.step < 0):
            raise TraceError(f"step must be a whole number >= 0 or None, got {self.step!r}")


def validate(events: Iterable[Event]) -> None:
    """Raise ``TraceError`` naming the first event (by its position) that breaks a rule."""
    last_time: dict[int | str, float] = {}
    seen_first: set = set()
    delivered: set = set()
    finished: set = set()
    for i, e in enumerate(events):
        if not isinstance(e, Event):
            raise TraceError(f"event {i} is a {type(e).__name__}, not a course.trace.Event")
        where = f"event {i} ({e.kind} of request {e.request!r} at {e.time_s} s)"
        if e.kind == "arrival":
            if e.request in last_time:
                raise TraceError(f"{where}: request {e.request!r} arrives twice")
            last_time[e.request] = e.time_s
            continue
        if e.request not in last_time:
            raise TraceError(f"{where}: comes before the request's arrival")
        if e.request in finished:
            raise TraceError(f"{where}: comes after the request's finish"
                             + (" (finish twice)" if e.kind == "finish" else ""))
        if e.time_s < last_time[e.request]:
            raise TraceError(f"{where}: time goes backwards within the request (its previous "
                             f"event was at {last_time[e.request]} s)")
        last_time[e.request] = e.time_s
        if e.kind == "first_token":
            if e.request in seen_first:
                raise TraceError(f"{where}: a second first_token")
            seen_first.add(e.request)
        elif e.kind == "token" and e.request not in seen_first:
            raise TraceError(f"{where}: a token before the request's first_token")
        if e.kind in TOKEN_KINDS:
            delivered.add(e.request)
        if e.kind == "finish":
            if e.request not in delivered:
                raise TraceError(f"{where}: finish before any output token")
            finished.add(e.request)


def _to_json(e: Event) -> str:
    row = asdict(e)
    if row["step"] is None:
        del row["step"]
    return json.dumps(row)


def write_jsonl(events: Iterable[Event], path: str | Path) -> None:
    """Write a trace, one JSON object per line, after checking it with ``validate``."""
    events = list(events)
    validate(events)
    Path(path).write_text("".join(_to_json(e) + "\n" for e in events))


def read_jsonl(path: str | Path) -> list[Event]:
    """Read a trace written by ``write_jsonl`` (or by any program following the format) and
    check it; ``TraceError`` names the line of a malformed event."""
    events = []
    for n, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise TraceError(f"{path}, line {n}: not JSON ({err.msg})") from None
        if not isinstance(row, dict):
            raise TraceError(f"{path}, line {n}: an event is a JSON object, got {line.strip()!r}")
        unknown = sorted(set(row) - set(FIELDS))
        missing = [k for k in ("request", "kind", "time_s") if k not in row]
        if unknown or missing:
            raise TraceError(f"{path}, line {n}: unknown fields {unknown}, missing {missing}; "
                             f"the fields are {', '.join(FIELDS)}")
        try:
            events.append(Event(**row))
        except TraceError as err:
            raise TraceError(f"{path}, line {n}: {err}") from None
    validate(events)
    return events

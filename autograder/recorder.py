"""pytest plugin loaded in the grading child: stream one JSON line per event to a file.

The grader process (``autograder.engine``) reads the stream while the child runs, so it knows
which test is running when the child hangs or dies, and what every finished test scored.
Events: ``collected`` (node id, points, lesson, hidden or visible), ``collect_error`` (a test
module that could not be imported), ``start`` and ``result`` (outcome and a short reason),
``importing`` and ``imported`` (a module of the submission, around its import).
Every line is flushed and fsync-free; a line cut short by a crash is ignored by the reader.

Integrity (see docs/THREAT_MODEL.md): when grading, ``--record fd:W:K`` names two inherited
file descriptors: ``W``, the write end of a pipe to the grader (no file the submission could
append to), and ``K``, a pipe holding a fresh random key. The key is read and ``K`` closed in
``pytest_configure``, before collection imports any submission code. Every line then carries
a sequence number and an HMAC-SHA256 of its content; the grader drops lines that fail the
check (and fails the test that was running when one arrived). A :class:`autograder.guard.Guard`
snapshot taken before collection fails any test after which the grader's world (pytest,
torch, the course helpers, the test modules, the plugin list) was found changed, and puts it
back. ``--record PATH`` (a plain, unsigned file) remains for debugging.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import time

import pytest

from autograder.shared import LESSON_IN as _LESSON

_ADDRESS = re.compile(r"0x[0-9a-fA-F]{6,}")  # object ids differ between runs: not in a grade


def points_of(item: pytest.Item) -> float:
    marker = item.get_closest_marker("points")
    if marker is None:
        return 1.0
    value = marker.args[0] if marker.args else marker.kwargs.get("n", 1)
    return float(value)


def lesson_of(nodeid: str) -> str:
    match = _LESSON.search(nodeid)
    return match.group(1) if match else "other"


def is_hidden(nodeid: str) -> bool:
    path = nodeid.replace(os.sep, "/")
    return path.startswith("hidden/") or "autograder/hidden/" in path


def leaf_exceptions(exc: BaseException) -> list[BaseException]:
    """The exceptions inside (nested) exception groups, e.g. hypothesis's 'distinct failures'."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for sub in exc.exceptions for leaf in leaf_exceptions(sub)]
    return [exc]


def exception_reason(exc: BaseException) -> str:
    seen, parts = set(), []
    for leaf in leaf_exceptions(exc):
        text = f"{type(leaf).__name__}: {leaf}".strip()
        if text not in seen:
            seen.add(text)
            parts.append(text)
    return " | ".join(parts)


def short_reason(report) -> str:
    """One or two lines a learner can act on: the exception type and its message."""
    if getattr(report, "course_reason", None):
        text = report.course_reason
    else:
        text = _longrepr_text(report.longrepr)
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return _ADDRESS.sub("0x...", " / ".join(lines[:6]))[:600]


def _longrepr_text(longrepr) -> str:
    crash = getattr(longrepr, "reprcrash", None)
    if crash is not None:
        text = crash.message
    elif isinstance(longrepr, tuple) and len(longrepr) == 3:  # skip: (file, line, reason)
        text = str(longrepr[2])
    else:
        # A collection error: a traceback whose "E   " lines carry the exception.
        lines = str(longrepr).splitlines()
        errors = [line[1:].strip() for line in lines if line.startswith("E ")]
        text = "\n".join(errors or [line for line in lines if line.strip()][-3:])
    return text


class Recorder:
    """Writes the event stream; registered only when --record is given."""

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        report = outcome.get_result()
        if call.excinfo is not None and isinstance(call.excinfo.value, BaseExceptionGroup):
            report.course_reason = exception_reason(call.excinfo.value)

    def __init__(self, target: str, config=None):
        self.key, self.seq, self.guard, self.tampered = None, 0, None, []
        if target.startswith("fd:"):
            write_fd, key_fd = (int(x) for x in target[3:].split(":"))
            key = b""
            while len(key) < 32:
                chunk = os.read(key_fd, 32 - len(key))
                if not chunk:
                    break
                key += chunk
            os.close(key_fd)
            self.key = key
            self.fh = os.fdopen(write_fd, "w", buffering=1, encoding="utf-8")
            if config is not None:
                from autograder.guard import Guard
                self.guard = Guard(config.pluginmanager, config.hook)
        else:
            self.fh = open(target, "a", buffering=1, encoding="utf-8")
        self.outcomes: dict[str, dict] = {}

    def emit(self, **event) -> None:
        event["t"] = time.time()
        payload = json.dumps(event, sort_keys=True)
        if self.key is not None:
            self.seq += 1
            mac = hmac.new(self.key, f"{self.seq}:{payload}".encode(), hashlib.sha256)
            line = json.dumps({"seq": self.seq, "mac": mac.hexdigest(), "event": payload})
        else:
            line = payload
        self.fh.write(line + "\n")
        self.fh.flush()

    def _tamper_check(self) -> list[str]:
        if self.guard is None:
            return []
        changed = self.guard.check()
        if changed:
            self.guard.restore()
        return changed

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection(self, session):
        if self.guard is not None:
            self.guard.snapshot()

    def pytest_sessionfinish(self, session, exitstatus):
        self.emit(event="done", exitstatus=int(exitstatus))

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items):
        for item in items:
            skip = item.get_closest_marker("skip")
            reason = (skip.kwargs.get("reason") or (skip.args[0] if skip.args else "skipped")
                      if skip else None)
            self.emit(event="collected", nodeid=item.nodeid, points=points_of(item),
                      lesson=lesson_of(item.nodeid), hidden=is_hidden(item.nodeid),
                      skip=reason)

    def pytest_collectstart(self, collector):
        if isinstance(collector, pytest.Module):
            self.emit(event="collecting", nodeid=collector.nodeid)

    def pytest_collectreport(self, report):
        if report.failed:
            self.emit(event="collect_error", nodeid=report.nodeid, reason=short_reason(report))

    @pytest.hookimpl(hookwrapper=True)
    def pytest_make_collect_report(self, collector):
        outcome = yield
        if self.guard is None or not isinstance(collector, pytest.Module):
            return
        report = outcome.get_result()
        changed = self._tamper_check()
        if changed:
            self.emit(event="tamper", nodeid=collector.nodeid, reason=_tamper_reason(changed))
        if report.passed:
            try:
                self.guard.watch_test_module(collector.obj)
            except Exception:
                pass

    def pytest_runtest_logstart(self, nodeid, location):
        self.outcomes[nodeid] = {"outcome": "passed", "reason": ""}
        self.emit(event="start", nodeid=nodeid)

    def pytest_runtest_logreport(self, report):
        state = self.outcomes.setdefault(report.nodeid, {"outcome": "passed", "reason": ""})
        if report.skipped and report.when in ("setup", "call"):
            state.update(outcome="skipped", reason=short_reason(report))
        elif report.failed and state["outcome"] != "failed":
            where = "" if report.when == "call" else f"(in {report.when}) "
            state.update(outcome="failed", reason=where + short_reason(report))

    def pytest_runtest_logfinish(self, nodeid, location):
        if self.guard is not None:
            _kill_strays()
        state = self.outcomes.pop(nodeid, {"outcome": "failed", "reason": "no report"})
        changed = self._tamper_check()
        if changed:
            state = {"outcome": "failed", "reason": _tamper_reason(changed)}
        self.emit(event="result", nodeid=nodeid, **state)

    def pytest_unconfigure(self, config):
        self.fh.close()


def pytest_addoption(parser):
    parser.getgroup("course").addoption(
        "--record", default=None,
        help="stream test events as JSON lines to this file (or fd:W:K, for the grader)")


@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    path = config.getoption("record")
    if path:
        recorder = Recorder(path, config)
        config.pluginmanager.register(recorder, "course-recorder")
        from autograder.pytest_impl import watch_imports
        watch_imports(lambda kind, name: recorder.emit(event=kind, module=name))


def _kill_strays() -> None:
    """Kill the processes a test left behind in this process group (forks still running,
    a fork bomb's sleepers), so that they cannot hold the next test's process quota."""
    me, group = os.getpid(), os.getpgrp()
    try:
        entries = os.listdir("/proc")
    except OSError:
        return
    for entry in entries:
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            if os.getpgid(int(entry)) == group:
                os.kill(int(entry), 9)
        except OSError:
            continue


def _tamper_reason(changed: list[str]) -> str:
    shown = "; ".join(changed[:4]) + (f"; and {len(changed) - 4} more" if len(changed) > 4
                                      else "")
    return ("the submission changed the grader's environment (" + shown + "): scored zero, "
            "the originals were put back")

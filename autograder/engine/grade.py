"""Grading one submission folder: ties the parts together and returns a ``GradeResult``.

Order matters: the model cache is filled before the child's mounts are planned (a folder
created later would be hidden from the child), and the grader ends its child when it is
itself stopped (SIGTERM from ``timeout`` or a batch system, SIGHUP, Ctrl-C).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

from ..shared import REPO_ROOT
from .model_cache import cache_folder, warm_model_cache
from .results import GradeResult, GradingError, Limits
from .runner import collect, run_tests
from .sandbox import decide_isolation
from .scan import scan_submission
from .workspace import build_workspace, copy_stubs, gradeable_lessons, submitted_lessons


@contextlib.contextmanager
def stopped_by_signals():
    """Turn SIGTERM and SIGHUP into ``SystemExit`` and SIGINT into ``KeyboardInterrupt`` while
    grading, so that the ``finally`` clauses that kill the child run. SIGINT is set explicitly:
    a grader started as a background job of a non-interactive shell (``cmd &`` in a script, a CI
    step) inherits SIGINT ignored, and Python keeps it ignored, so ``kill -INT`` would leave the
    grader and its child running."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise SystemExit(128 + signum)

    saved = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGHUP)}
    saved[signal.SIGINT] = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def _lessons_to_grade(target: Path, lessons: list[str] | None, course_root: Path) -> list[str]:
    known = gradeable_lessons(course_root)
    if lessons is None:
        lessons = [lesson for lesson in submitted_lessons(target) if lesson in known]
        if not lessons:
            raise GradingError(f"{target} holds no lessonNN/ folder that the course has "
                               f"(the course has {', '.join(known)}).")
        return lessons
    unknown = [lesson for lesson in lessons if lesson not in known]
    if unknown:
        raise GradingError(f"no such lesson in the course: {', '.join(unknown)} "
                           f"(the course has {', '.join(known)}).")
    return lessons


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def grade_target(target: Path, lessons: list[str] | None = None, limits: Limits | None = None,
                 course_root: Path = REPO_ROOT, keep_workspace: bool = False,
                 child_uid_slot: int | None = None, log=_stderr) -> GradeResult:
    """Grade one submission folder: one result per test, in collection order, and the notes
    a report shows beside them."""
    limits = limits or Limits()
    target = Path(target)
    course_root = Path(course_root)
    if not target.is_dir():
        raise GradingError(f"{target}: no such folder. Give a folder that holds lessonNN/ "
                           "packages (for example ./exercises or a student's copy).")
    lessons = _lessons_to_grade(target, lessons, course_root)
    with stopped_by_signals():
        cache = cache_folder()
        model_note = warm_model_cache(lessons, course_root, cache, log)
        # after the cache exists: a folder created later would be hidden from the child
        iso = decide_isolation(limits, course_root, child_uid_slot, cache)
        result = GradeResult([], isolation=iso.note, review=scan_submission(target, lessons),
                             model=model_note)
        ws = build_workspace(target.resolve(), lessons, course_root)
        try:
            stubs = copy_stubs(ws, lessons, course_root)
            if iso.uid is not None and not iso.mounts:
                for sub in ("home", "tmp"):
                    os.chown(ws.root / sub, iso.uid, iso.uid)
            child = dict(cache=cache)
            tests = collect(ws, limits, course_root, stubs, iso, **child)
            budget_s = limits.budget_s * len(lessons)  # per lesson graded
            deadline = time.monotonic() + budget_s
            result.tests, result.budget = run_tests(ws, tests, limits, course_root, iso,
                                                    lessons, deadline=deadline,
                                                    budget_s=budget_s, **child)
            return result
        finally:
            if not keep_workspace:
                shutil.rmtree(ws.root, ignore_errors=True)

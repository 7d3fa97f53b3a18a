"""The runtime behind the graded cells of the course's nbgrader notebooks.

A graded cell is one thin call (``autograder nbgrader init`` writes it)::

    grade("lesson12", "hidden/lesson12/test_allocator_stateful.py", points=10)

It grades the learner's ``lesson12/*.py`` files - the package next to the notebook, in the
kernel's working folder - with the course's engine (``autograder.engine.grade_target``:
a supervised child process, a time limit per test, a memory limit), prints one line per test of
that group, and returns the points earned as a float. The float is the cell's last output
(an ``execute_result``), which nbgrader 0.9.6 reads as the cell's partial credit
(``nbgrader.utils.determine_grade``). No test code runs in the kernel and no test source is
printed: the feedback shows test names, points and one-line reasons only.

Cost and cache: the whole lesson is graded once per kernel, on the first graded cell, and
kept in this module's memory, keyed by the lesson, the folder and a SHA-256 of every file
of the learner's package. A later cell reads its share; an edited file changes the key and
grades again. Nothing is cached on disk, so a submission cannot pre-seed a score; nbgrader
starts a fresh kernel for every notebook it autogrades, so every autograde grades afresh.

Threat model: the learner's ``.py`` files run only in the grading child, never in the
kernel. Code in the notebook itself does run in the kernel and could redefine ``grade``;
the course's nbgrader configuration therefore drops every cell that is not one of the
course's own (``autograder.nbgrader.CourseCellsOnly``) before autograde runs the notebook,
and nbgrader restores the source of the course's locked and graded cells.

Robustness: nbgrader 0.9.6 gives a graded cell zero when it writes anything to stderr, so
warnings and stderr writes (Python-level and file-descriptor-level) are captured while the
grader runs and reported on stdout instead. A grader that cannot run (no hidden graders on
a learner's machine, a broken install) prints a short note and returns 0: it never raises.

Settings (environment, e.g. set by the course's ``nbgrader_config.py``):
``AUTOGRADER_TIMEOUT_S`` (seconds per test, default: the engine's, ``Limits.timeout_s``), ``AUTOGRADER_MEMORY_MB`` (address
space of the grading child, default 8192).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import sys
import tempfile
import warnings
from pathlib import Path

_CACHE: dict[tuple, tuple[list, str]] = {}
_WIDTH = 200  # longest failure reason printed per test
# The grader's private workspace in a reason ("/tmp/course-grade-x1y2/submission/lesson12/a.py"):
# printed as "lesson12/a.py", the learner's own path, the same on every run.
_WORKSPACE = re.compile(r"(?:/[^\s\"']*)?/course-grade-[^/\s]+/submission/")


from .shared import fmt_points as _fmt


def _digest(folder: Path, lesson: str) -> str:
    h = hashlib.sha256()
    package = folder / lesson
    if package.is_dir():
        for path in sorted(package.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                h.update(str(path.relative_to(package)).encode() + b"\0")
                h.update(path.read_bytes() + b"\0")
    return h.hexdigest()


def _limits():
    from .engine import Limits

    def number(name: str, default: float) -> float:
        try:
            return float(os.environ.get(name, default))
        except ValueError:
            return default

    timeout = number("AUTOGRADER_TIMEOUT_S", Limits.timeout_s)
    return Limits(timeout_s=timeout, collect_timeout_s=timeout,
                  memory_mb=int(number("AUTOGRADER_MEMORY_MB", 8192)))


def _grade_lesson(folder: Path, lesson: str) -> list:
    """Every test of ``lesson`` (visible and hidden) run on ``folder/lesson``: the engine."""
    from .engine import grade_target

    return grade_target(folder, [lesson], _limits(), log=lambda line: None).tests


@contextlib.contextmanager
def _quiet(sink: list[str]):
    """Capture warnings and everything written to stderr (sys.stderr and fd 2)."""
    buffer = io.StringIO()
    saved_fd, spool = None, None
    try:
        sys.stderr.flush()
    except Exception:
        pass
    try:
        saved_fd = os.dup(2)
        spool = tempfile.TemporaryFile()
        os.dup2(spool.fileno(), 2)
    except OSError:
        saved_fd = None
    try:
        with warnings.catch_warnings(record=True) as caught, \
                contextlib.redirect_stderr(buffer):
            warnings.simplefilter("always")
            yield
    finally:
        if saved_fd is not None:
            os.dup2(saved_fd, 2)
            os.close(saved_fd)
            spool.seek(0)
            text = spool.read().decode("utf-8", "replace")
            spool.close()
        else:
            text = ""
        messages = [f"{w.category.__name__}: {w.message}" for w in caught]
        text = buffer.getvalue() + text
        sink.extend(messages + [line for line in text.splitlines() if line.strip()])


def _results(lesson: str, folder: Path) -> tuple[list, str]:
    """(results, note): the lesson's results, graded once per content of the folder."""
    key = (lesson, str(folder.resolve()), _digest(folder, lesson))
    if key in _CACHE:
        return _CACHE[key]
    if not (folder / lesson).is_dir():
        note = (f"no {lesson}/ folder next to this notebook: keep your code in "
                f"{lesson}/*.py, as the assignment gave it to you.")
    else:
        note = ""
    results = _grade_lesson(folder, lesson)
    _CACHE.clear()  # one lesson per notebook: keep memory small
    _CACHE[key] = (results, note)
    return results, note


def grade(lesson: str, tests: str, points: float | None = None,
          folder: str | os.PathLike | None = None) -> float:
    """Grade one test group of ``lesson`` on the code next to the notebook; return the score.

    ``tests`` names a test module as the engine reports it: ``exercises/lessonNN/test_x.py``
    (visible tests) or ``hidden/lessonNN/test_y.py`` (hidden graders). ``points`` is the
    cell's maximum in nbgrader; the score never exceeds it (nbgrader rejects a larger one).
    """
    folder = Path(folder) if folder is not None else Path.cwd()
    noise: list[str] = []
    note, results = "", None
    with _quiet(noise):
        try:
            from .engine import REPO_ROOT

            hidden = tests.startswith("hidden/")
            if hidden and not (REPO_ROOT / "autograder" / tests).is_file():
                note = (f"{tests}: graded by your instructor (the hidden tests are not "
                        "installed here).")
            elif not hidden and not (REPO_ROOT / tests).is_file():
                note = (f"{tests}: graded by your instructor (this course install has no "
                        f"such test file; run `pytest` on your copy of the course instead).")
            else:
                results, note = _results(lesson, folder)
        except Exception as exc:  # never raise: a raising cell is an error cell
            note = f"the grader could not run: {type(exc).__name__}: {exc}"
            results = None
    if results is None:
        print(note or f"{tests}: graded by your instructor.")
        return 0.0
    if note:
        print(note)
    mine = [r for r in results if r.nodeid.split("::", 1)[0] == tests]
    if not mine:
        print(f"{tests}: no tests found for this group (ask your instructor).")
        return 0.0
    counted = [r for r in mine if r.outcome != "skipped"]
    score = sum(r.score for r in counted)
    maximum = sum(r.points for r in counted)
    kind = "hidden" if tests.startswith("hidden/") else "visible"
    print(f"{lesson} {kind} tests in {tests.rsplit('/', 1)[-1]}: "
          f"{_fmt(score)} / {_fmt(maximum)} points")
    for r in mine:
        name = r.nodeid.split("::", 1)[1] if "::" in r.nodeid else r.nodeid
        if r.outcome == "passed":
            print(f"  ok    {name} ({_fmt(r.points)} pt)")
        elif r.outcome == "skipped":
            print(f"  skip  {name}: {r.reason}")
        else:
            reason = _WORKSPACE.sub("", " ".join(r.reason.split()))
            if len(reason) > _WIDTH:
                reason = reason[:_WIDTH - 3] + "..."
            print(f"  FAIL  {name} (0 of {_fmt(r.points)} pt): {reason}")
    if noise:
        print(f"  ({len(noise)} line(s) of warnings/stderr while grading were hidden: "
              "they do not change the score)")
    if points is not None and score > points:
        print(f"  (this cell is worth {_fmt(points)} points; the tests now carry more: "
              "regenerate the assignment)")
        score = float(points)
    return float(score)

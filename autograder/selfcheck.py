"""``python -m autograder.selfcheck``: the learner's self-check, visible-test points per lesson.

Runs the visible tests of the chosen lessons (``exercises/lessonNN/test_*.py``; default:
every lesson) with pytest in this process and prints one line per lesson: tests passed,
failed and skipped, and points (one per test unless a test is marked ``points(n)``; a
skipped test, such as a ``gpu`` test on a machine without CUDA, counts neither way). Then
each failure with the first line of its reason.

It works the same in the student release (where it is the only grading command: the
grading engine and the hidden graders stay with the instructor) and in the course
repository. The instructor's grade also counts the hidden graders, which go further (edge
cases, properties, cost counts): full points here are necessary, not sufficient.

Usage::

    python -m autograder.selfcheck                  # every lesson
    python -m autograder.selfcheck --lesson 12      # one lesson (repeat, or 3,4)
    python -m autograder.selfcheck --impl PATH      # another folder of lessonNN/ packages

For GitHub Classroom (the release's workflow runs one step per lesson)::

    python -m autograder.selfcheck --lesson 12 --classroom "$GITHUB_OUTPUT" --max-score 40

appends ``result=<base64 JSON>`` to that file: the lesson's result in the form Classroom's
autograding reporter reads (``classroom-resources/autograding-grading-reporter``: version 1, a
status, ``max_score``, and one entry per test with its score), and exits 0 so that the
reporter runs after every lesson. ``--max-score`` is the lesson's visible points as the
release counted them (``--collect-points`` prints them), so a test module that no longer
imports costs its points instead of shrinking the total.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from autograder.shared import LESSON_IN, lesson_dirs

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Lesson:
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    points: float = 0.0
    possible: float = 0.0
    failures: list[str] = field(default_factory=list)


def _points(item: pytest.Item) -> float:
    marker = item.get_closest_marker("points")
    if marker is None:
        return 1.0
    return float(marker.args[0] if marker.args else marker.kwargs.get("n", 1))


def _reason(report) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    text = crash.message if crash is not None else str(report.longrepr or "")
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[0][:200] if lines else report.outcome


class Collector:
    """pytest plugin: the outcome and points of every test, by lesson."""

    def __init__(self):
        self.lessons: dict[str, Lesson] = {}
        self.points: dict[str, float] = {}
        self.gpu: dict[str, bool] = {}
        self.outcome: dict[str, tuple[str, str]] = {}

    def lesson(self, nodeid: str) -> Lesson:
        match = LESSON_IN.search(nodeid)
        return self.lessons.setdefault(match.group(1) if match else "other", Lesson())

    def pytest_collection_modifyitems(self, items):
        for item in items:
            self.points[item.nodeid] = _points(item)
            self.gpu[item.nodeid] = item.get_closest_marker("gpu") is not None

    def pytest_collectreport(self, report):
        if report.failed:  # a test module that cannot be imported: all its tests are lost
            self.lesson(report.nodeid).failures.append(
                f"{report.nodeid}: cannot be collected: {_reason(report)}")

    def pytest_runtest_logreport(self, report):
        previous = self.outcome.get(report.nodeid, ("passed", ""))[0]
        if report.failed:
            self.outcome[report.nodeid] = ("failed", _reason(report))
        elif report.skipped and previous != "failed":
            self.outcome[report.nodeid] = ("skipped", "")
        elif report.when == "call" and previous == "passed":
            self.outcome[report.nodeid] = ("passed", "")

    def tally(self) -> dict[str, Lesson]:
        for nodeid, (outcome, reason) in self.outcome.items():
            lesson, points = self.lesson(nodeid), self.points.get(nodeid, 1.0)
            if outcome == "skipped":
                lesson.skipped += 1
                continue
            lesson.possible += points
            if outcome == "passed":
                lesson.passed += 1
                lesson.points += points
            else:
                lesson.failed += 1
                lesson.failures.append(f"{nodeid}: {reason}")
        return dict(sorted(self.lessons.items()))


def collectable_points(collector: Collector) -> dict[str, float]:
    """Visible points per lesson of the collected tests, GPU tests left out (a runner without
    a GPU skips them, and a skipped test counts neither way)."""
    points: dict[str, float] = {}
    for nodeid, value in collector.points.items():
        lesson = LESSON_IN.search(nodeid)
        if lesson and not collector.gpu.get(nodeid):
            points[lesson.group(1)] = points.get(lesson.group(1), 0.0) + value
    return dict(sorted(points.items()))


def classroom_result(lesson: str, collector: Collector, max_score: float | None) -> dict:
    """One lesson's result as GitHub Classroom's grading reporter reads it."""
    tests, possible = [], 0.0
    for nodeid, (outcome, reason) in collector.outcome.items():
        match = LESSON_IN.search(nodeid)
        if outcome == "skipped" or not match or match.group(1) != lesson:
            continue
        points = collector.points.get(nodeid, 1.0)
        possible += points
        tests.append({"name": nodeid.split("/")[-1], "status": "pass" if outcome == "passed"
                      else "fail", "score": points if outcome == "passed" else 0,
                      "message": reason, "test_code": "", "filename": "", "line_no": 0,
                      "duration": 0})
    total = possible if max_score is None else max_score
    broken = collector.lessons.get(lesson, Lesson()).failures
    broken = [f for f in broken if "cannot be collected" in f]
    if broken or possible < total:
        tests.append({"name": "tests that could not run", "status": "error", "score": 0,
                      "message": "; ".join(broken) or f"{total - possible:g} points of tests "
                      "were not collected", "test_code": "", "filename": "", "line_no": 0,
                      "duration": 0})
    status = ("error" if any(t["status"] == "error" for t in tests) else
              "fail" if any(t["status"] == "fail" for t in tests) else "pass")
    return {"version": 1, "status": status, "max_score": total, "tests": tests}


def _number(x: float) -> str:
    return f"{x:g}"


def table(lessons: dict[str, Lesson]) -> str:
    rows = [("lesson", "passed", "failed", "skipped", "points")]
    total = Lesson()
    for name, r in lessons.items():
        rows.append((name, str(r.passed), str(r.failed), str(r.skipped),
                     f"{_number(r.points)}/{_number(r.possible)}"))
        total.passed += r.passed
        total.failed += r.failed
        total.skipped += r.skipped
        total.points += r.points
        total.possible += r.possible
    rows.append(("total", str(total.passed), str(total.failed), str(total.skipped),
                 f"{_number(total.points)}/{_number(total.possible)}"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                       for i, (cell, w) in enumerate(zip(row, widths))) for row in rows]
    lines.insert(1, "-" * len(lines[0]))
    lines.insert(len(lines) - 1, "-" * len(lines[0]))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m autograder.selfcheck",
        description="Run the visible tests and print points per lesson (the hidden graders "
                    "of your instructor go further).")
    parser.add_argument("--lesson", action="append", metavar="N",
                        help="only these lessons, e.g. --lesson 12 or --lesson 3,4 "
                             "(default: every lesson in exercises/)")
    parser.add_argument("--impl", default="exercises",
                        help="the code under test: 'exercises' (default) or a folder that "
                             "holds lessonNN/ packages")
    parser.add_argument("--classroom", metavar="FILE",
                        help="append the lesson's result for GitHub Classroom's reporter to "
                             "FILE ($GITHUB_OUTPUT) and exit 0; needs exactly one --lesson")
    parser.add_argument("--max-score", type=float, default=None, metavar="N",
                        help="with --classroom: the lesson's visible points as released")
    parser.add_argument("--collect-points", action="store_true",
                        help="print the visible points per lesson (GPU tests left out) as "
                             "JSON, without running the tests")
    args = parser.parse_args(argv)
    available = lesson_dirs(ROOT / "exercises")
    if args.lesson:
        try:
            wanted = [f"lesson{int(v.strip().removeprefix('lesson')):02d}"
                      for value in args.lesson for v in value.split(",") if v.strip()]
        except ValueError:
            parser.error(f"--lesson takes lesson numbers such as 12 or 3,4; got {args.lesson}")
        unknown = [lesson for lesson in wanted if lesson not in available]
        if unknown:
            parser.error(f"no such lesson in exercises/: {', '.join(unknown)} "
                         f"(there are {', '.join(available)})")
    else:
        wanted = available
    if args.classroom and len(wanted) != 1:
        parser.error("--classroom grades one lesson: give exactly one --lesson")
    collector = Collector()
    paths = [str(ROOT / "exercises" / lesson) for lesson in wanted]
    options = ["-q", "--tb=no", "-rN", "--no-header", "-p", "no:cacheprovider",
               "--rootdir", str(ROOT)]
    if args.collect_points:
        code = pytest.main([*paths, "--collect-only", *options], plugins=[collector])
        broken = [f for r in collector.lessons.values() for f in r.failures]
        if code != pytest.ExitCode.OK or broken:
            print("selfcheck: the visible tests do not all collect:\n  " + "\n  ".join(broken),
                  file=sys.stderr)
            return 1
        print(json.dumps(collectable_points(collector)))
        return 0
    code = pytest.main([*paths, f"--impl={args.impl}", *options], plugins=[collector])
    if args.classroom:
        result = classroom_result(wanted[0], collector, args.max_score)
        encoded = base64.b64encode(json.dumps(result).encode()).decode()
        with open(args.classroom, "a") as out:
            out.write(f"result={encoded}\n")
        got = sum(t["score"] for t in result["tests"])
        print(f"\n{wanted[0]}: {got:g}/{result['max_score']:g} visible points "
              f"({result['status']}) for GitHub Classroom")
        return 0
    if code not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
        print(f"selfcheck: pytest stopped with exit code {int(code)} before the tests ran",
              file=sys.stderr)
        return int(code) or 1
    lessons = collector.tally()
    print()
    print(table(lessons))
    failures = [f for r in lessons.values() for f in r.failures]
    if failures:
        print("\nfailed:")
        print("\n".join(f"  {line}" for line in failures))
    print("\nVisible tests only: your instructor's grade also counts hidden graders that go "
          "further.")
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())

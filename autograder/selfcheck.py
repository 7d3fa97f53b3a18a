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
"""

from __future__ import annotations

import argparse
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
        self.outcome: dict[str, tuple[str, str]] = {}

    def lesson(self, nodeid: str) -> Lesson:
        match = LESSON_IN.search(nodeid)
        return self.lessons.setdefault(match.group(1) if match else "other", Lesson())

    def pytest_collection_modifyitems(self, items):
        for item in items:
            self.points[item.nodeid] = _points(item)

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
    collector = Collector()
    paths = [str(ROOT / "exercises" / lesson) for lesson in wanted]
    code = pytest.main([*paths, f"--impl={args.impl}", "-q", "--tb=no", "-rN", "--no-header",
                        "-p", "no:cacheprovider", "--rootdir", str(ROOT)],
                       plugins=[collector])
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

"""Turn per-test results into points per lesson, a table, JSON and Gradescope's format."""

from __future__ import annotations

import json
import textwrap
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .engine.results import TestResult
from .shared import fmt_points as _fmt


@dataclass
class LessonScore:
    lesson: str
    score: float = 0.0
    max_score: float = 0.0
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    tests: list[TestResult] = field(default_factory=list)


def by_lesson(results: list[TestResult]) -> list[LessonScore]:
    lessons: dict[str, LessonScore] = {}
    for test in results:
        row = lessons.setdefault(test.lesson, LessonScore(test.lesson))
        row.tests.append(test)
        if test.outcome == "skipped":
            row.skipped += 1
            continue
        row.max_score += test.points
        row.score += test.score
        if test.outcome == "passed":
            row.passed += 1
        else:
            row.failed += 1
    return [lessons[k] for k in sorted(lessons)]


def display_name(nodeid: str) -> str:
    """``hidden/lesson12/test_x.py::test_y[3]`` -> ``hidden test_x.py::test_y[3]``."""
    path, _, name = nodeid.partition("::")
    kind = "hidden" if path.startswith(("hidden/", "autograder/hidden/")) else "visible"
    return f"{kind} {path.rsplit('/', 1)[-1]}::{name}"


def table(rows: list[LessonScore], title: str = "", show_failures: int = 8) -> str:
    width = 78
    lines = [title] if title else []
    lines.append(f"{'lesson':<10}{'points':>8}{'max':>8}{'passed':>9}{'failed':>9}"
                 f"{'skipped':>9}")
    lines.append("-" * 53)
    total = LessonScore("total")
    for row in rows:
        lines.append(f"{row.lesson:<10}{_fmt(row.score):>8}{_fmt(row.max_score):>8}"
                     f"{row.passed:>9}{row.failed:>9}{row.skipped:>9}")
        for attr in ("score", "max_score", "passed", "failed", "skipped"):
            setattr(total, attr, getattr(total, attr) + getattr(row, attr))
        failures = [t for t in row.tests if t.outcome == "failed"]
        for test in failures[:show_failures]:
            lines.append(f"  x {display_name(test.nodeid)} ({_fmt(test.points)} pt)")
            reason = " ".join(test.reason.split())
            if len(reason) > 3 * width:
                reason = reason[: 3 * width - 3] + "..."
            lines.extend(textwrap.wrap(reason, width, initial_indent="      ",
                                       subsequent_indent="      "))
        if len(failures) > show_failures:
            lines.append(f"    ... and {len(failures) - show_failures} more failed tests "
                         "(--json FILE lists them all)")
        skips = {t.reason for t in row.tests if t.outcome == "skipped"}
        for reason in sorted(skips):
            count = sum(1 for t in row.tests if t.outcome == "skipped" and t.reason == reason)
            lines.append(f"    - {count} skipped: {reason}")
    lines.append("-" * 53)
    lines.append(f"{'total':<10}{_fmt(total.score):>8}{_fmt(total.max_score):>8}"
                 f"{total.passed:>9}{total.failed:>9}{total.skipped:>9}")
    return "\n".join(lines)


def to_json(rows: list[LessonScore], target: str) -> dict:
    return {
        "target": target,
        "score": sum(r.score for r in rows),
        "max_score": sum(r.max_score for r in rows),
        "lessons": [{"lesson": r.lesson, "score": r.score, "max_score": r.max_score,
                     "passed": r.passed, "failed": r.failed, "skipped": r.skipped,
                     "tests": [asdict(t) | {"score": t.score} for t in r.tests]}
                    for r in rows],
    }


def to_gradescope(rows: list[LessonScore]) -> dict:
    """Gradescope's results.json: overall score and one entry per test."""
    tests = []
    for row in rows:
        for t in row.tests:
            if t.outcome == "skipped":
                continue
            output = "passed" if t.outcome == "passed" else t.reason
            tests.append({"name": f"{row.lesson} {display_name(t.nodeid)}", "score": t.score,
                          "max_score": t.points, "output": output,
                          "status": "passed" if t.outcome == "passed" else "failed",
                          "visibility": "after_published" if t.hidden else "visible"})
    return {"score": sum(r.score for r in rows), "output": "graded by the course autograder",
            "visibility": "visible", "stdout_visibility": "hidden", "tests": tests}


def write_json(path: str | Path, data: dict) -> None:
    Path(path).write_text(json.dumps(data, indent=2) + "\n")

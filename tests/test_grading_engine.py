"""The grading engine: full marks for the reference, zero for the stubs, and a broken
submission (crash, hang, exit, flood, syntax error, missing function) loses only the tests
that touch the broken code, with a reason that says what happened."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from autograder import report
from autograder.run import Limits, grade_target

ROOT = Path(__file__).resolve().parent.parent


def _copy_solutions(dest: Path, lesson: str = "lesson12") -> Path:
    shutil.copytree(ROOT / "solutions" / lesson, dest / lesson,
                    ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def _sabotage(path: Path, function: str, body: str) -> None:
    """Make ``function`` in ``path`` run ``body`` first."""
    lines = path.read_text().splitlines(keepends=True)
    for i, line in enumerate(lines):
        if line.lstrip().startswith(f"def {function}("):
            j = i
            while not lines[j].rstrip().endswith(":"):
                j += 1
            indent = " " * (len(line) - len(line.lstrip()) + 4)
            lines.insert(j + 1, "".join(indent + b + "\n" for b in body.splitlines()))
            path.write_text("".join(lines))
            return
    raise AssertionError(f"no def {function} in {path}")


def _results(results):
    return {r.nodeid: r for r in results}


@pytest.fixture(scope="module")
def reference_grade():
    return grade_target(ROOT / "solutions", ["lesson12"])


@pytest.mark.slow
def test_reference_gets_full_marks(reference_grade):
    failed = [f"{r.nodeid}: {r.reason}" for r in reference_grade if r.outcome == "failed"]
    assert not failed, "the reference fails graders:\n" + "\n".join(failed)
    hidden = [r for r in reference_grade if r.hidden]
    assert hidden and any(not r.hidden for r in reference_grade), "visible and hidden both run"


@pytest.mark.slow
def test_stubs_get_zero_each_with_not_implemented(reference_grade):
    """Every lesson: a test that passes on the untouched stubs (it only exercises given code)
    or fails with anything but the stub's message is a defect of the course."""
    from autograder.run import available_lessons
    results = grade_target(ROOT / "exercises", available_lessons(ROOT))
    assert {r.nodeid for r in results if r.lesson == "lesson12"} == \
        {r.nodeid for r in reference_grade}
    for r in results:
        if r.outcome == "skipped":
            continue
        assert r.outcome == "failed", f"{r.nodeid} passes on the untouched stubs"
        assert f"NotImplementedError: {r.lesson}:" in r.reason, \
            f"{r.nodeid} fails on the stubs with something else than the stub's message: {r.reason}"


@pytest.mark.slow
def test_same_submission_same_score_twice(reference_grade, tmp_path):
    target = _copy_solutions(tmp_path)
    _sabotage(target / "lesson12" / "batcher.py", "can_admit",
              "if request.id % 3 == 2:\n    return False")
    first = report.to_json(report.by_lesson(grade_target(target, ["lesson12"])), "x")
    second = report.to_json(report.by_lesson(grade_target(target, ["lesson12"])), "x")
    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)
    assert 0 < first["score"] < first["max_score"]


@pytest.mark.slow
def test_crashes_hangs_exits_and_floods_cost_only_their_tests(reference_grade, tmp_path):
    target = _copy_solutions(tmp_path)
    lesson = target / "lesson12"
    _sabotage(lesson / "block_table.py", "slot_mapping", "import os\nos._exit(3)")
    _sabotage(lesson / "paged_attention.py", "write_kv", "import ctypes\nctypes.string_at(0)")
    _sabotage(lesson / "prompt_cache.py", "breakeven_hits", "while True:\n    pass")
    _sabotage(lesson / "prompt_cache.py", "savings_fraction", "import sys\nsys.exit(0)")
    _sabotage(lesson / "fragmentation.py", "paged_waste",
              "while True:\n    print('x' * 100000)")
    _sabotage(lesson / "fragmentation.py", "contiguous_waste", "bytearray(10**13)")
    results = _results(grade_target(target, ["lesson12"],
                                    Limits(timeout_s=30, file_mb=8, memory_mb=8192)))

    def outcome(fragment):
        found = [r for nodeid, r in results.items() if fragment in nodeid]
        assert found, f"no test matches {fragment}"
        return found

    expected_failures = {
        "test_slot_mapping_points_at_each_newest_token": "exited with code 3",
        "test_slot_mapping_for_ragged_batch": "exited with code 3",
        "test_write_kv_stores_tokens_at_their_slots": "segfault",
        "test_write_kv_then_attend_roundtrip": "segfault",
        "test_breakeven_matches_brute_force": "timed out",
        "test_savings_and_breakeven_for_published_prices": "SystemExit",
        "test_paged_waste_worked_example": "File too large",
        "test_paging_wastes_less_than_a_block_per_sequence": "File too large",
        "test_paged_waste_matches_brute_force": "File too large",
        "test_contiguous_waste_worked_example": "MemoryError",
    }
    for fragment, reason in expected_failures.items():
        for r in outcome(fragment):
            assert r.outcome == "failed" and reason in r.reason, \
                f"{r.nodeid}: expected a failure mentioning {reason!r}, got {r.outcome}: {r.reason}"
    reference = _results(reference_grade)
    for nodeid, r in results.items():
        if any(f in nodeid for f in expected_failures):
            continue
        assert r.outcome == reference[nodeid].outcome, \
            f"{nodeid} should not be affected by the broken functions: {r.outcome} {r.reason}"


@pytest.mark.slow
def test_syntax_error_and_missing_function_are_reported(reference_grade, tmp_path):
    target = _copy_solutions(tmp_path)
    lesson = target / "lesson12"
    (lesson / "fragmentation.py").write_text("def paged_waste(lengths, block_size)\n    return 0\n")
    text = (lesson / "paged_attention.py").read_text()
    (lesson / "paged_attention.py").write_text(text.replace("def write_kv(", "def write_kv_renamed("))
    (lesson / "prompt_cache.py").unlink()
    results = grade_target(target, ["lesson12"])
    by_module: dict[str, set[str]] = {}
    for r in results:
        by_module.setdefault(r.nodeid.split("::")[0].rsplit("/", 1)[-1], set()).add(
            r.outcome if r.outcome != "failed" else r.reason.split(":")[0])
    for module in ("test_costs.py", "test_batcher_traces.py"):
        reasons = {r.reason for r in results if module in r.nodeid}
        assert all("could not import" in x for x in reasons), reasons
        assert any("SyntaxError" in x or "ModuleNotFoundError" in x for x in reasons), reasons
    for module in ("test_paged_attention.py", "test_paged_grading.py"):
        reasons = {r.reason for r in results if module in r.nodeid}
        assert all("write_kv" in x for x in reasons), reasons
    assert by_module["test_allocator.py"] == {"passed"}
    assert by_module["test_block_table.py"] == {"passed"}


def test_cli_reports_a_missing_folder_plainly(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "autograder", "grade", str(tmp_path / "nope")],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2
    assert "no such folder" in proc.stderr and "Traceback" not in proc.stderr


def test_cli_reports_a_folder_without_lessons(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "autograder", "grade", str(tmp_path)],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2 and "holds no lessonNN/" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "autograder", "grade", "--lesson", "99"],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2 and "no such lesson" in proc.stderr


def test_gradescope_output_shape(tmp_path):
    from autograder.run import TestResult
    rows = report.by_lesson([TestResult("exercises/lesson12/test_a.py::t", "lesson12", 2, False,
                                        "passed"),
                             TestResult("hidden/lesson12/test_b.py::u", "lesson12", 3, True,
                                        "failed", "AssertionError: no")])
    data = report.to_gradescope(rows)
    assert data["score"] == 2
    assert [t["max_score"] for t in data["tests"]] == [2, 3]
    assert data["tests"][1]["visibility"] == "after_published"
    assert data["tests"][1]["output"] == "AssertionError: no"


@pytest.mark.slow
def test_every_lesson_of_the_reference_gets_full_marks_through_the_grader():
    """The README's main command (`autograder grade solutions`) on every lesson: the graded,
    isolated child must run the real model (from the read-only cache the grader fills first)
    and the distributed ranks (no long-lived server a test could leave behind)."""
    from autograder.run import available_lessons
    results = grade_target(ROOT / "solutions", available_lessons(ROOT))
    failed = [f"{r.nodeid}: {r.reason}" for r in results if r.outcome == "failed"]
    assert not failed, "the reference fails graders:\n" + "\n".join(failed)
    assert {r.lesson for r in results} == set(available_lessons(ROOT))

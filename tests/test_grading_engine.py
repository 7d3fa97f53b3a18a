"""The grading engine: full marks for the reference, zero for the stubs, and a broken
submission (crash, hang, exit, flood, syntax error, missing function) loses only the tests
that touch the broken code, with a reason that says what happened."""

from __future__ import annotations

import ast
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from autograder import report
from autograder.engine import Limits, grade_target

ROOT = Path(__file__).resolve().parent.parent


def _copy_solutions(dest: Path, lesson: str = "lesson12") -> Path:
    shutil.copytree(ROOT / "solutions" / lesson, dest / lesson,
                    ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def _tests_reaching(functions: set[str], lesson: str) -> dict[tuple[str, str], set[str]]:
    """For each test of the lesson (visible and hidden), keyed by (file name, test name), the
    names in ``functions`` it reaches: in its body, or through a helper or fixture of its own
    module. A new test that calls a sabotaged function is then expected to fail, by reading."""
    paths = [*(ROOT / "exercises" / lesson).glob("test_*.py"),
             *(ROOT / "autograder" / "hidden" / lesson).glob("test_*.py")]
    found = {}
    for path in paths:
        refs: dict[str, set[str]] = {}
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                refs[node.name] = ({n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
                                   | {n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)}
                                   | {a.arg for a in ast.walk(node.args) if isinstance(a, ast.arg)})

        def reach(name: str, seen: set[str]) -> set[str]:
            names = refs.get(name, set())
            out = names & functions
            for callee in (names & set(refs)) - seen:
                seen.add(callee)
                out |= reach(callee, seen)
            return out

        for name in refs:
            if name.startswith("test_"):
                found[(path.name, name)] = reach(name, {name})
    return found


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
    return grade_target(ROOT / "solutions", ["lesson12"]).tests


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
    from autograder.engine import gradeable_lessons
    results = grade_target(ROOT / "exercises", gradeable_lessons(ROOT)).tests
    assert {r.nodeid for r in results if r.lesson == "lesson12"} == \
        {r.nodeid for r in reference_grade}
    for r in results:
        if r.outcome == "skipped":
            continue
        assert r.outcome == "failed", f"{r.nodeid} passes on the untouched stubs"
        # the capstone's engine names the stub it met: "lesson18/scheduler.py: add() is not
        # written yet (it raises NotImplementedError)"
        stub = "is not written yet (it raises NotImplementedError)" if r.lesson == "capstone" \
            else f"NotImplementedError: {r.lesson}:"
        assert stub in r.reason, \
            f"{r.nodeid} fails on the stubs with something else than the stub's message: {r.reason}"


@pytest.mark.slow
def test_same_submission_same_score_twice(reference_grade, tmp_path):
    target = _copy_solutions(tmp_path)
    _sabotage(target / "lesson12" / "batcher.py", "can_admit",
              "if request.id % 3 == 2:\n    return False")
    first = report.to_json(report.by_lesson(grade_target(target, ["lesson12"]).tests), "x")
    second = report.to_json(report.by_lesson(grade_target(target, ["lesson12"]).tests), "x")
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
                                    Limits(timeout_s=30, file_mb=8, memory_mb=8192)).tests)

    reasons = {"slot_mapping": "exited with code 3", "write_kv": "segfault",
               "breakeven_hits": "timed out", "savings_fraction": "SystemExit",
               "paged_waste": "File too large", "contiguous_waste": "MemoryError"}
    reaching = _tests_reaching(set(reasons), "lesson12")
    # Tests known to call each broken function: the reading above must find them all.
    known = {"test_slot_mapping_points_at_each_newest_token", "test_slot_mapping_for_ragged_batch",
             "test_write_kv_stores_tokens_at_their_slots", "test_write_kv_then_attend_roundtrip",
             "test_breakeven_matches_brute_force", "test_savings_and_breakeven_for_published_prices",
             "test_paged_waste_worked_example", "test_paging_wastes_less_than_a_block_per_sequence",
             "test_paged_waste_matches_brute_force", "test_contiguous_waste_worked_example"}
    affected = {test for (_, test), names in reaching.items() if names}
    assert known <= affected, f"the reading missed {sorted(known - affected)}"
    reference = _results(reference_grade)
    for nodeid, r in results.items():
        key = (Path(nodeid.split("::", 1)[0]).name, nodeid.split("::")[-1].split("[")[0])
        broken = reaching.get(key, set())
        if broken:
            assert r.outcome == "failed" and any(reasons[f] in r.reason for f in broken), \
                f"{nodeid} calls {sorted(broken)}: expected a failure mentioning one of " \
                f"{[reasons[f] for f in sorted(broken)]}, got {r.outcome}: {r.reason}"
        else:
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
    results = grade_target(target, ["lesson12"]).tests
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
    from autograder.engine import TestResult
    rows = report.by_lesson([TestResult("exercises/lesson12/test_a.py::t", "lesson12", 2, False,
                                        "passed"),
                             TestResult("hidden/lesson12/test_b.py::u", "lesson12", 3, True,
                                        "failed", "AssertionError: no")])
    data = report.to_gradescope(rows)
    assert data["score"] == 2
    assert [t["max_score"] for t in data["tests"]] == [2, 3]
    assert data["tests"][1]["visibility"] == "after_published"
    assert data["tests"][1]["output"] == "AssertionError: no"


def _cold_cache_env(home: Path) -> dict[str, str]:
    """The environment with every cache the course (or a library it uses) reads pointed at
    ``home``, an empty folder: a fresh machine."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("COURSE_CACHE_DIR", "HF_HUB_CACHE", "TRANSFORMERS_CACHE",
                        "HUGGINGFACE_HUB_CACHE", "HF_DATASETS_CACHE", "TORCH_HOME",
                        "TRITON_CACHE_DIR", "PYTHONPYCACHEPREFIX")}
    env.update(HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"), HF_HOME=str(home / "hf"),
               TORCH_HOME=str(home / "torch"), PYTHONDONTWRITEBYTECODE="1")
    return env


def _cold_home() -> Path:
    """An empty folder outside /tmp (the grading child has a private /tmp, so a cache under
    /tmp would hide the first-run failure this guards against)."""
    base = Path.home()
    private = ("/tmp", "/var/tmp", "/dev/shm")
    if any(str(base.resolve()) == p or str(base.resolve()).startswith(p + "/") for p in private):
        base = ROOT.parent
    return Path(tempfile.mkdtemp(prefix="course-cold-cache-", dir=base))


@pytest.mark.slow
def test_every_lesson_of_the_reference_gets_full_marks_through_the_grader(tmp_path):
    """The README's main command (`autograder grade solutions`) on every lesson, on a cold
    cache (a fresh machine: no model cache, no HOME of its own), as an instructor runs it:
    the graded, isolated child must run the real model (from the read-only cache the grader
    fills first) and the distributed ranks (no long-lived server a test could leave
    behind), and give full marks the first time."""
    from autograder.engine import gradeable_lessons
    home = _cold_home()
    try:
        out = tmp_path / "grades.json"
        proc = subprocess.run([sys.executable, "-m", "autograder", "grade", "solutions",
                               "--json", str(out)], capture_output=True, text=True, cwd=ROOT,
                              env=_cold_cache_env(home))
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        data = json.loads(out.read_text())
        failed = [f"{t['nodeid']}: {t['reason']}" for row in data["lessons"]
                  for t in row["tests"] if t["outcome"] == "failed"]
        assert not failed, "the reference fails graders on a cold cache:\n" + "\n".join(failed)
        assert data["score"] == data["max_score"] > 0
        assert {row["lesson"] for row in data["lessons"]} == set(gradeable_lessons(ROOT))
        # the cache really was cold, and was filled in the cold HOME
        assert "converting it into the cache" in proc.stderr, proc.stderr[-2000:]
        assert any((home / ".cache" / "llm-inference-course").glob("smollm2-weights-*"))
    finally:
        shutil.rmtree(home, ignore_errors=True)


def test_a_cache_folder_that_cannot_be_written_gets_one_line(tmp_path, monkeypatch):
    """A model cache the grader (or a learner) cannot write: one line saying what to do."""
    from autograder.engine.model_cache import warm_model_cache
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    note = warm_model_cache(["lesson01"], ROOT, blocker / "cache")
    assert note and "\n" not in note and "COURSE_CACHE_DIR" in note, note
    monkeypatch.setenv("COURSE_CACHE_DIR", str(blocker / "cache"))
    from course import model
    with pytest.raises(PermissionError, match="COURSE_CACHE_DIR") as err:
        model.cache_dir()
    assert "\n" not in str(err.value)


def _hang_at_import(dest: Path) -> Path:
    """The reference lesson 12 whose allocator module loops forever when imported."""
    target = _copy_solutions(dest)
    path = target / "lesson12" / "allocator.py"
    path.write_text(path.read_text().replace(
        "from __future__ import annotations\n",
        "from __future__ import annotations\nwhile True:\n    pass\n", 1))
    assert "while True" in path.read_text()
    return target


@pytest.mark.slow
def test_a_hang_at_import_costs_one_time_limit_once(reference_grade, tmp_path):
    """A module that never finishes importing is waited out once; every other test that
    needs it fails at once with that reason, the others are unaffected."""
    target = _hang_at_import(tmp_path)
    graded = grade_target(target, ["lesson12"], Limits(timeout_s=20, collect_timeout_s=20))
    waited = {r.nodeid.split("::")[0] for r in graded.tests
              if r.reason.startswith("importing the code did not finish in 20 s")}
    assert len(waited) == 1, f"the hang was waited out in {len(waited)} test modules: {waited}"
    refused = [r for r in graded.tests if "lesson12/allocator.py: importing the code did not "
               "finish in 20 s" in r.reason and "not imported again" in r.reason]
    assert refused, "later test modules should refuse the module that hung"
    reference = _results(reference_grade)
    hit = waited | {r.nodeid.split("::")[0] for r in refused}
    for r in graded.tests:
        if r.nodeid.split("::")[0] in hit:
            assert r.outcome == "failed", r.nodeid
        else:  # modules that never import the allocator
            assert r.outcome == reference[r.nodeid].outcome, (r.nodeid, r.reason)
    assert graded.budget is None


def test_the_time_budget_ends_a_submission_with_a_note(tmp_path):
    """When the submission's total budget runs out, the tests not run score zero and the
    table says why."""
    target = _hang_at_import(tmp_path)
    out = tmp_path / "grades.json"
    proc = subprocess.run([sys.executable, "-m", "autograder", "grade", str(target),
                           "--lesson", "12", "--timeout", "300", "--budget", "3",
                           "--json", str(out)], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "time budget: the submission's time budget of 3 s ran out" in proc.stdout
    data = json.loads(out.read_text())
    assert data["score"] == 0 and "ran out" in data["budget"]
    reasons = {t["reason"] for row in data["lessons"] for t in row["tests"]
               if t["outcome"] == "failed"}
    assert reasons and all("time budget of 3 s ran out" in x for x in reasons), reasons


def _children_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry))
    return found


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stopping_the_grader_stops_its_child(tmp_path, sig):
    """SIGTERM (``timeout``, a batch system) or Ctrl-C to the grader while its child spins
    in a hang: the child dies with it, nothing is left behind."""
    target = _hang_at_import(tmp_path)
    grader = subprocess.Popen([sys.executable, "-m", "autograder", "grade", str(target),
                               "--lesson", "12", "--timeout", "600"], cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline, children = time.monotonic() + 240, []
        while time.monotonic() < deadline and grader.poll() is None:
            children = [c for c in _children_of(grader.pid) if _alive(c)
                        and "--record" in _cmdline(c) and "--collect-only" not in _cmdline(c)]
            if children:  # a child that runs the tests (not the collection one)
                time.sleep(2)  # let it reach the hang
                break
            time.sleep(0.2)
        assert children, "the grader never started a child"
        grader.send_signal(sig)
        grader.wait(timeout=60)
        time.sleep(0.5)
        left = [c for c in children if _alive(c)]
        assert not left, f"grading child(ren) {left} outlived the grader"
    finally:
        if grader.poll() is None:
            grader.kill()
            grader.wait()

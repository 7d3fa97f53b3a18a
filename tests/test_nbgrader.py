"""The nbgrader course, for real: init -> generate_assignment -> autograde -> export -> feedback.

One end-to-end test builds a course for lesson 12 with ``autograder nbgrader init`` and runs
the real nbgrader 0.9.6 commands on three submissions: the reference (full marks), the
untouched stubs (zero, although the notebook tries to redefine the grader) and a partial one
(a correct allocator and block table, a syntax error, a missing function, an infinite loop and
a crash elsewhere) whose per-cell scores must equal what ``autograder.engine.grade_target`` gives
the same files. It is one test, not several, so that ``pytest -n 2`` does not build the
course twice. The smaller tests run a generated notebook cell with nbclient: stderr noise does
not zero a cell, and a learner's machine without the hidden graders gets a note and 0.
"""

from __future__ import annotations

import concurrent.futures
import csv
import html
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("nbgrader")
nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

from autograder import cli  # noqa: E402
from autograder.nbgrader import (Group, build_notebook, learner_files,  # noqa: E402
                                 setup_source)
from autograder.engine import REPO_ROOT, Limits, grade_target  # noqa: E402

LESSON = "lesson12"
TIMEOUT_S = 30  # per test while autograding; the infinite loop costs this once.
# Not smaller: a hypothesis test of lesson 12 took over 10 s on a loaded 2-core machine.
SOLUTION = re.compile(r"### BEGIN SOLUTION\n(.*?)### END SOLUTION", re.S)


def _jupyter_env(root: Path) -> dict[str, str]:
    """An environment whose only python3 kernel is this interpreter (the venv's)."""
    kernel = root / "share" / "jupyter" / "kernels" / "python3"
    kernel.mkdir(parents=True, exist_ok=True)
    (kernel / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (ipykernel)", "language": "python"}))
    env = dict(os.environ)
    env.update(JUPYTER_PATH=str(root / "share" / "jupyter"),
               JUPYTER_RUNTIME_DIR=str(root / "runtime"),
               JUPYTER_CONFIG_DIR=str(root / "config"),
               JUPYTER_PLATFORM_DIRS="1",
               AUTOGRADER_TIMEOUT_S=str(TIMEOUT_S))
    # No activated virtual environment: its bin folder is not on PATH (the README calls
    # `.venv/bin/nbgrader` as it is), and this checkout's code is the one under test.
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if p and os.path.realpath(p) != os.path.realpath(venv_bin))
    env.pop("VIRTUAL_ENV", None)
    env["PYTHONPATH"] = str(REPO_ROOT)
    return env


def _nbgrader(course: Path, env: dict, *args: str, timeout: float = 900) -> str:
    """``.venv/bin/nbgrader ARGS`` as the README writes it (no activated venv)."""
    command = Path(sys.executable).parent / "nbgrader"
    proc = subprocess.run([str(command), *args], cwd=course, env=env,
                          capture_output=True, text=True, timeout=timeout)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{out[-4000:]}"
    return out


def _solution_lines() -> set[str]:
    """Lines of the reference's solution regions that the stubs do not have."""
    lines = set()
    for path in (REPO_ROOT / "solutions" / LESSON).glob("*.py"):
        stub = REPO_ROOT / "exercises" / LESSON / path.name
        stub_text = stub.read_text() if stub.exists() else ""
        for region in SOLUTION.findall(path.read_text()):
            for line in region.splitlines():
                line = line.strip()
                if len(line) >= 25 and not line.startswith("# hint:") and line not in stub_text:
                    lines.add(line)
    assert lines, "lesson 12's solutions have no marked regions?"
    return lines


def _hidden_lines() -> set[str]:
    """Lines of the hidden graders that the public files (stubs, visible tests) lack."""
    public = "\n".join(p.read_text() for p in (REPO_ROOT / "exercises" / LESSON).glob("*.py"))
    lines = set()
    for path in (REPO_ROOT / "autograder" / "hidden" / LESSON).glob("test_*.py"):
        for line in path.read_text().splitlines():
            line = line.strip()
            if len(line) >= 30 and not line.startswith(("from ", "import ")) \
                    and line not in public:
                lines.add(line)
    assert lines
    return lines


def _texts(folder: Path):
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            yield path, html.unescape(path.read_text(errors="replace"))


def _make_partial(folder: Path) -> None:
    """Correct allocator and block table; a syntax error, a missing function, an infinite
    loop and a crash elsewhere; the rest untouched stubs."""
    pkg = folder / LESSON
    solutions = REPO_ROOT / "solutions" / LESSON
    for name in ("allocator.py", "block_table.py", "batcher.py", "paged_attention.py"):
        shutil.copyfile(solutions / name, pkg / name)
    with open(pkg / "fragmentation.py", "a") as fh:  # a syntax error
        fh.write("\ndef broken(:\n    pass\n")
    with open(pkg / "prompt_cache.py", "a") as fh:  # a missing function
        fh.write("\ndel breakeven_hits\n")
    with open(pkg / "paged_attention.py", "a") as fh:  # an infinite loop, on one input
        fh.write("\n\n_write_kv = write_kv\n\n\n"
                 "def write_kv(k_cache, v_cache, k, v, slots):\n"
                 "    while len(slots) == 2:\n        pass\n"
                 "    return _write_kv(k_cache, v_cache, k, v, slots)\n")
    with open(pkg / "batcher.py", "a") as fh:  # a crash of the whole process
        fh.write("\n\ndef _crash(self):\n    import os\n    os._exit(3)\n\n\n"
                 "StaticBatcher.step = _crash\n")


def _add_tamper_cell(notebook: Path) -> None:
    """A learner's own cell that redefines the grader to give full marks: must not run."""
    nb = nbformat.read(notebook, as_version=4)
    cell = nbformat.v4.new_code_cell(
        "import sys\nprint('TAMPER-CELL-RAN', file=sys.stderr)\n"
        "def grade(lesson, tests, points=None, folder=None):\n    return points")
    index = next(i for i, c in enumerate(nb.cells) if c.get("id") == "setup") + 1
    nb.cells.insert(index, cell)
    nbformat.write(nb, notebook)


def _expected(folder: Path) -> tuple[dict[str, float], dict[str, float]]:
    """Points per test module from the engine itself (what `autograder grade` gives), and the
    most points each module's tests that ran could give."""
    results = grade_target(folder, [LESSON], Limits(timeout_s=TIMEOUT_S)).tests
    out: dict[str, float] = {}
    most: dict[str, float] = {}
    for r in results:
        if r.outcome != "skipped":
            module = r.nodeid.split("::", 1)[0]
            out[module] = out.get(module, 0.0) + r.score
            most[module] = most.get(module, 0.0) + r.points
    return out, most


def test_nbgrader_end_to_end(tmp_path):
    course = tmp_path / "course"
    env = _jupyter_env(tmp_path / "jupyter")

    # init through the real command line
    assert cli.main(["nbgrader", "init", str(course), "--lesson", "12",
                     "--timeout", str(TIMEOUT_S)]) == 0
    config = (course / "nbgrader_config.py").read_text()
    for name in learner_files(LESSON):
        assert f'"{name}"' in config, f"{name} is not in Autograde.exclude_overwriting"
    source_nb = nbformat.read(course / "source" / LESSON / f"{LESSON}.ipynb", as_version=4)
    graded = {c.metadata.nbgrader.grade_id: c for c in source_nb.cells
              if c.metadata.get("nbgrader", {}).get("grade")}
    assert graded and all(c.source.count("\n") <= 1 for c in graded.values()), \
        "graded cells must be thin one-line calls"
    assert not any((course / "source").rglob("test_*.py")), "tests were copied into source/"

    _nbgrader(course, env, "generate_assignment", LESSON, "--force")
    release = course / "release" / LESSON
    assert (release / f"{LESSON}.ipynb").is_file()
    assert sorted(p.name for p in (release / LESSON).glob("*.py")) == sorted(
        p.name for p in (REPO_ROOT / "exercises" / LESSON).glob("*.py")
        if not p.name.startswith("test_"))
    solution_lines, hidden_lines = _solution_lines(), _hidden_lines()
    for path, text in _texts(release):
        assert "def test_" not in text, f"{path} holds test code"
        leaked = [line for line in solution_lines | hidden_lines if line in text]
        assert not leaked, f"{path} leaks solution or hidden-grader code: {leaked[:3]}"

    # three submissions, placed as `nbgrader collect` would
    students = {}
    for student in ("reference", "stubs", "partial"):
        folder = course / "submitted" / student / LESSON
        shutil.copytree(release, folder)
        students[student] = folder
    for path in (REPO_ROOT / "solutions" / LESSON).glob("*.py"):
        if not path.name.startswith("test_"):
            shutil.copyfile(path, students["reference"] / LESSON / path.name)
    _make_partial(students["partial"])
    _add_tamper_cell(students["stubs"] / f"{LESSON}.ipynb")
    _add_tamper_cell(students["partial"] / f"{LESSON}.ipynb")

    # the expected partial score, graded independently while nbgrader runs
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        expected_future = pool.submit(_expected, students["partial"])
        _nbgrader(course, env, "autograde", LESSON)
        expected, most = expected_future.result()
    _nbgrader(course, env, "export")
    _nbgrader(course, env, "generate_feedback", LESSON)

    with open(course / "grades.csv", newline="") as fh:
        rows = {row["student_id"]: row for row in csv.DictReader(fh)}
    assert set(rows) == set(students)
    max_score = sum(float(c.metadata.nbgrader.points) for c in graded.values())
    assert max_score == sum(most.values()), \
        "the graded cells carry the points that `autograder grade` gives the lesson's CPU tests"
    for row in rows.values():
        assert row["assignment"] == LESSON and float(row["max_score"]) == max_score
    assert float(rows["reference"]["score"]) == max_score, rows["reference"]
    assert float(rows["stubs"]["score"]) == 0, "the stubs (and a tampered grade) scored"
    assert float(rows["partial"]["score"]) == pytest.approx(sum(expected.values()))

    # per cell: nbgrader's partial credit equals the engine's points per test module
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        submission = gb.find_submission_notebook(LESSON, LESSON, "partial")
        cells = {g.name: g.score for g in submission.grades}
    by_module = {Group(m, 0, 0).grade_id: s for m, s in expected.items()}
    assert cells == pytest.approx(by_module)
    # the partial really is partial: full on what is right, zero where the code is broken
    full = {Group(m, 0, 0).grade_id: p for m, p in most.items()}
    assert cells["visible_test_allocator"] == full["visible_test_allocator"] > 0
    assert cells["hidden_test_block_table_edges"] == full["hidden_test_block_table_edges"] > 0
    assert cells["visible_test_costs"] == 0  # fragmentation.py does not even parse
    # write_kv loops forever on one input; StaticBatcher.step kills the process
    assert 0 < cells["visible_test_paged_attention"] < full["visible_test_paged_attention"]
    assert 0 < cells["visible_test_batcher"] < full["visible_test_batcher"]
    autograded = (course / "autograded" / "partial" / LESSON / f"{LESSON}.ipynb").read_text()
    assert "timed out after" in autograded and "SyntaxError" in autograded
    assert "TAMPER-CELL-RAN" not in autograded, "the learner's own cell ran while grading"

    # feedback shows names, points and reasons; never the hidden graders' code
    for student in students:
        page = course / "feedback" / student / LESSON / f"{LESSON}.html"
        assert page.is_file()
    for path, text in _texts(course / "feedback"):
        if path.suffix != ".html":  # the student's own files, copied back to them
            continue
        assert "def test_" not in text, f"{path} shows test code"
        leaked = [line for line in hidden_lines if line in text]
        assert not leaked, f"{path} shows hidden-grader code: {leaked[:3]}"

    # re-running init changes nothing and leaves the gradebook and submissions alone
    before = {p: p.stat().st_mtime_ns for p in course.rglob("*") if p.is_file()}
    assert cli.main(["nbgrader", "init", str(course), "--lesson", "12",
                     "--timeout", str(TIMEOUT_S)]) == 0
    after = {p: p.stat().st_mtime_ns for p in course.rglob("*") if p.is_file()}
    assert after == before


# ---------------------------------------------------------------------------------------------
# The cell runtime, in a real kernel


def _run_notebook(cells, tmp_path, monkeypatch):
    env = _jupyter_env(tmp_path / "jupyter")
    for key in ("JUPYTER_PATH", "JUPYTER_RUNTIME_DIR", "JUPYTER_CONFIG_DIR", "PYTHONPATH"):
        monkeypatch.setenv(key, env[key])
    nb = nbformat.v4.new_notebook(cells=cells)
    work = tmp_path / "work"
    (work / LESSON).mkdir(parents=True)
    client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=120,
                                     allow_errors=True,
                                     resources={"metadata": {"path": str(work)}})
    client.execute()
    return nb


def _graded_cell(module: str, points: float):
    group = Group(module, points, 1)
    cell = nbformat.v4.new_code_cell(
        f'grade("{LESSON}", "{module}", points={points:g})',
        metadata={"nbgrader": {"grade": True, "grade_id": group.grade_id, "locked": True,
                               "points": points, "schema_version": 3, "solution": False}})
    return cell


def test_stderr_while_grading_does_not_zero_a_cell(tmp_path, monkeypatch):
    from nbgrader.utils import determine_grade

    noisy = nbformat.v4.new_code_cell(
        "import os, sys, warnings\n"
        "import autograder.nb as nb\n"
        "from autograder.engine import TestResult\n"
        "def noisy_grader(folder, lesson):\n"
        "    warnings.warn('a torch-style UserWarning', UserWarning)\n"
        "    print('noise on sys.stderr', file=sys.stderr)\n"
        "    os.write(2, b'noise on fd 2\\n')\n"
        "    m = 'exercises/lesson12/test_allocator.py'\n"
        "    return [TestResult(m + '::test_a', 'lesson12', 2.0, False, 'passed'),\n"
        "            TestResult(m + '::test_b', 'lesson12', 1.0, False, 'failed', 'boom')]\n"
        "nb._grade_lesson = noisy_grader")
    cell = _graded_cell("exercises/lesson12/test_allocator.py", 3)
    nb = _run_notebook([nbformat.v4.new_code_cell(setup_source(LESSON)), noisy, cell],
                       tmp_path, monkeypatch)
    graded = nb.cells[-1]
    streams = [o for o in graded.outputs if o.output_type == "stream"]
    assert not [o for o in streams if o.name == "stderr"], graded.outputs
    assert determine_grade(graded) == (2.0, 3.0)
    text = "".join(o.text for o in streams)
    assert "ok    test_a" in text and "FAIL  test_b" in text and "boom" in text
    assert graded.outputs[-1].output_type == "execute_result", "the score must come last"


def test_without_hidden_graders_a_cell_says_so_and_scores_zero(tmp_path, monkeypatch):
    from nbgrader.utils import determine_grade

    empty = tmp_path / "no-course"
    empty.mkdir()
    cells = [
        nbformat.v4.new_code_cell(setup_source(LESSON)),
        # a learner's install: the course's package without autograder/hidden
        nbformat.v4.new_code_cell(f"import autograder.engine\nfrom pathlib import Path\n"
                                  f"autograder.engine.REPO_ROOT = Path({str(empty)!r})"),
        _graded_cell("hidden/lesson12/test_allocator_stateful.py", 8),
        # no course package at all: the setup cell's fallback
        nbformat.v4.new_code_cell("import sys\nsys.modules['autograder.nb'] = None\n"
                                  + setup_source(LESSON).split("\n", 2)[2]
                                  .replace("%load_ext autoreload\n%autoreload 2\n", "")),
        _graded_cell("hidden/lesson12/test_batcher_traces.py", 13),
    ]
    nb = _run_notebook(cells, tmp_path, monkeypatch)
    for index in (2, 4):
        cell = nb.cells[index]
        assert determine_grade(cell) == (0.0, cell.metadata.nbgrader.points), cell.outputs
        text = "".join(o.get("text", "") for o in cell.outputs)
        assert "graded by your instructor" in text, cell.outputs


def test_every_lesson_in_exercises_gets_an_assignment(tmp_path):
    """Notebook structure for every lesson present, without running nbgrader: each stub
    file has a section and a scratch cell; graded cells are one call each."""
    lessons = sorted(p.name for p in (REPO_ROOT / "exercises").iterdir()
                     if re.fullmatch(r"lesson\d\d", p.name))
    for lesson in lessons:
        groups = [Group(f"exercises/{lesson}/test_x.py", 2, 2),
                  Group(f"hidden/{lesson}/test_y.py", 3, 1)]
        nb = build_notebook(lesson, groups)
        nbformat.validate(nb)
        ids = [c.metadata.get("nbgrader", {}).get("grade_id") for c in nb.cells]
        assert ids.count("visible_test_x") == 1 and ids.count("hidden_test_y") == 1
        for cell in nb.cells:
            meta = cell.metadata.get("nbgrader")
            if cell.cell_type == "markdown":
                assert meta and meta["locked"], "markdown cells are locked"
            if meta and meta.get("grade"):
                assert meta["schema_version"] == 3 and meta["solution"] is False
        for name in learner_files(lesson):
            assert any(f"`{name}`" in c.source for c in nb.cells), f"{name} not introduced"

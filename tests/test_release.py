"""`autograder release OUT`: the learners' repository works on its own and holds no secret.

The release is installed into a fresh virtual environment made with ``python -m venv
--without-pip``; a ``.pth`` file points it at the course venv's site-packages for the
third-party dependencies only (torch, pytest, hypothesis, numpy: installing torch again would
take minutes). A ``.pth`` line only adds a folder to ``sys.path``: the course's own editable
install (a finder registered by a ``.pth`` file of that folder) is not processed, so
``autograder``, ``course`` and ``exercises`` can only come from the release. The release is
then installed with pip (``-e``, no index, no dependencies), which also checks its
pyproject, and the learner's commands of its README run there from the release folder:
``pytest exercises/lesson12`` and the self-check ``python -m autograder.selfcheck`` (on the
stubs, and on solved copies of lessons 01-04, whose visible tests use HF transformers as the
oracle and whose later stubs use the given pieces of ``course.hf_layers``).
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from autograder import release

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("release") / "course-exercises"
    release.build_release(out)
    return out


def test_release_holds_what_learners_need_and_nothing_else(built):
    top = {p.name for p in built.iterdir()}
    assert top == {"exercises", "learning", "course", "hardware_fixtures", "autograder",
                   "notebooks", "README.md", "pyproject.toml", ".gitignore", ".github"}, top
    assert {p.name for p in (built / "autograder").iterdir()} == {"__init__.py",
                                                                  "pytest_impl.py",
                                                                  "shared.py",
                                                                  "selfcheck.py", "lab.py"}
    # The learner notebooks, generated, without their sources (the .ipynb is the learner's).
    assert sorted(p.name for p in (built / "notebooks").iterdir()) == sorted(
        p.name for p in (ROOT / "notebooks").glob("*.ipynb"))
    assert not (built / "course" / "llama_reference.py").exists(), "the instructor's oracle"
    assert {p.name for p in (built / "course").glob("*.py")} == {
        p.name for p in (ROOT / "course").glob("*.py")} - {"llama_reference.py"}
    assert [p.relative_to(built).as_posix() for p in (built / ".github").rglob("*")
            if p.is_file()] == [".github/workflows/classroom.yml"]
    lessons = sorted(p.name for p in (ROOT / "exercises").iterdir()
                     if p.is_dir() and p.name.startswith("lesson"))
    assert sorted(p.name for p in (built / "exercises").iterdir() if p.is_dir()) == lessons
    for path in built.rglob("*"):
        assert "hidden" not in path.parts and "solutions" not in path.parts, path
        assert "__pycache__" not in path.parts, path
    stub = (built / "exercises" / "lesson12" / "fragmentation.py").read_text()
    assert "NotImplementedError" in stub and "BEGIN SOLUTION" not in stub


def test_release_contains_no_solution_or_hidden_grader_line(built):
    secrets = release.secret_lines()
    assert len(secrets) > 100, "the leak check would check almost nothing"
    assert any("solutions/lesson12" in w for w in secrets.values())
    assert any("autograder/hidden/lesson12" in w for w in secrets.values())
    leaks = release.find_leaks(built)
    assert not leaks, "the release leaks:\n" + "\n".join(leaks[:20])


def test_release_holds_no_implementation_of_a_graded_function(built, monkeypatch):
    graded = release.graded_functions()
    names = {g.qualname for g in graded}
    assert {"rms_norm", "apply_rope", "llama_forward", "run_layers", "KVCache.append",
            "ContinuousBatcher.step"} <= names, sorted(names)
    assert not release.find_implementations(built)
    assert not release.find_missing_imports(built)
    assert not release.check_release(built)
    # every reviewed exception is still needed (a stale one would hide a future finding)
    reviewed = set(release.REVIEWED)
    monkeypatch.setattr(release, "REVIEWED", {})
    flagged = {(line.split(":")[0], line.split()[1],
                line.split(" of the solution of ")[1].split()[0])
               for line in release.find_implementations(built)}
    assert flagged == reviewed, flagged


def test_release_refuses_an_oracle_planted_in_course(tmp_path):
    """A copy of the course with a Llama forward in ``course/`` under another file name (the
    way ``course/llama_reference.py`` once shipped): the release is refused, and names the
    functions it implements."""
    course = tmp_path / "course-copy"
    for name in ("exercises", "solutions", "course", "learning", "hardware_fixtures",
                 "autograder"):
        shutil.copytree(ROOT / name, course / name,
                        ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copyfile(ROOT / "pyproject.toml", course / "pyproject.toml")
    oracle = (ROOT / "course" / "llama_reference.py").read_text()
    (course / "course" / "forward_helpers.py").write_text(oracle)
    # the same code with every function renamed: only the code comparison can see it
    renamed = oracle
    for name in ("rms_norm", "rope_cos_sin", "apply_rope", "llama_forward", "greedy_generate"):
        renamed = renamed.replace(name, f"given_{name}")
    (course / "course" / "renamed.py").write_text(renamed)
    out = tmp_path / "out"
    with pytest.raises(release.GradingError, match="give answers away") as refused:
        release.write_release(out, course_root=course, check_sync=False)
    message = str(refused.value)
    assert not out.exists(), "a refused release must not stay on disk"
    for name in ("rms_norm", "apply_rope", "llama_forward"):
        assert "course/forward_helpers.py:" in message and f"defines {name}," in message, message
    assert "course/renamed.py" in message and "of the solution of llama_forward" in message, \
        message
    again = tmp_path / "again"
    release.build_release(again, course, check_sync=False)
    found = release.find_implementations(again, course)
    renamed_hits = {line.split()[1] for line in found if line.startswith("course/renamed.py")}
    assert {"given_rms_norm", "given_apply_rope", "given_llama_forward",
            "given_greedy_generate"} <= renamed_hits, found


def test_release_refuses_a_stub_that_imports_a_module_left_out(built, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(built, copy)
    stub = copy / "exercises" / "lesson03" / "phases.py"
    stub.write_text("from course.llama_reference import mlp  # noqa: F401\n" + stub.read_text())
    missing = release.find_missing_imports(copy)
    assert missing == ["exercises/lesson03/phases.py:1 imports course.llama_reference, which "
                       "the release does not hold"], missing


def test_leak_check_finds_a_planted_solution_whatever_the_file_type(built, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(built, copy)
    shutil.copyfile(ROOT / "solutions" / "lesson12" / "fragmentation.py",
                    copy / "learning" / "notes.txt")
    hidden = (ROOT / "autograder" / "hidden" / "lesson12" / "test_block_table_edges.py")
    cell = {"cells": [{"cell_type": "code", "source": hidden.read_text().splitlines(True)}]}
    (copy / "exercises" / "lesson12" / "scratch.ipynb").write_text(json.dumps(cell))
    leaks = release.find_leaks(copy)
    assert any(x.startswith("learning/notes.txt contains solutions/lesson12/fragmentation")
               for x in leaks), leaks[:5]
    assert any(x.startswith("exercises/lesson12/scratch.ipynb contains autograder/hidden")
               for x in leaks), leaks[:5]


def test_release_refuses_a_non_empty_folder(tmp_path):
    (tmp_path / "x").write_text("")
    with pytest.raises(release.GradingError, match="not empty"):
        release.build_release(tmp_path)


def test_workflow_is_a_classroom_workflow_with_points_per_lesson(built):
    yaml = pytest.importorskip("yaml")
    path = built / ".github" / "workflows" / "classroom.yml"
    flow = yaml.safe_load(path.read_text())
    steps = flow["jobs"]["run-autograding-tests"]["steps"]
    lessons = sorted(p.name for p in (built / "exercises").iterdir() if p.is_dir())
    graders = [s for s in steps if "autograder.selfcheck" in s.get("run", "")]
    assert [s["id"] for s in graders] == lessons
    points = release.visible_points(ROOT, lessons)
    for step in graders:
        words = step["run"].split()
        assert words[:4] == ["python", "-m", "autograder.selfcheck", "--lesson"]
        assert f"lesson{int(words[4]):02d}" == step["id"]
        assert words[5:7] == ["--classroom", '"$GITHUB_OUTPUT"'], "the reporter reads outputs"
        assert float(words[words.index("--max-score") + 1]) == points[step["id"]] > 0
    reporter = steps[-1]
    assert reporter["uses"].startswith("classroom-resources/autograding-grading-reporter@")
    assert reporter["with"]["runners"] == ",".join(lessons)
    assert set(reporter["env"]) == {f"{lesson.upper()}_RESULTS" for lesson in lessons}
    exe = shutil.which("check-jsonschema") or str(Path(sys.executable).parent / "check-jsonschema")
    if Path(exe).exists():
        proc = subprocess.run([exe, "--builtin-schema", "vendor.github-workflows", str(path)],
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    actionlint = shutil.which("actionlint") or shutil.which(
        "actionlint", path=str(Path(sys.executable).parent))
    if actionlint:
        proc = subprocess.run([actionlint, str(path)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr


def _reporter_totals(output_file: Path) -> tuple[dict, float, float]:
    """What Classroom's grading reporter computes from a step's `result` output: the sum of
    the tests' scores over the result's max_score."""
    lines = [line for line in output_file.read_text().splitlines() if line.startswith("result=")]
    assert len(lines) == 1, lines
    result = json.loads(base64.b64decode(lines[0].removeprefix("result=")))
    assert result["version"] == 1 and result["status"] in ("pass", "fail", "error")
    assert all({"name", "status", "score"} <= set(t) for t in result["tests"]), result
    return result, sum(t["score"] for t in result["tests"]), result["max_score"]


@pytest.mark.slow
def test_release_installs_alone_and_its_stubs_fail_cleanly(built, tmp_path):
    repo = tmp_path / "clone"
    shutil.copytree(built, repo)
    env_dir = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True)
    python = env_dir / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig."
                              "get_paths()['purelib'])"], capture_output=True, text=True,
                             check=True).stdout.strip()
    (Path(purelib) / "course_third_party.pth").write_text(
        sysconfig.get_paths()["purelib"] + "\n")
    clean = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONDONTWRITEBYTECODE": "1"}
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                    "--no-deps", "--no-build-isolation", "--no-index", "-e", str(repo)],
                   check=True, capture_output=True, env=clean | {"PIP_NO_INPUT": "1"})
    probe = subprocess.run(
        [str(python), "-c", "import autograder, course, exercises, hardware_fixtures\n"
         "print(autograder.__file__, course.__file__, exercises.__file__, "
         "hardware_fixtures.__file__)\n"
         "import importlib.util as u\n"
         "print([m for m in ('solutions', 'autograder.engine', 'autograder.hidden', "
         "'autograder.recorder') if u.find_spec(m)])"],
        cwd=repo, capture_output=True, text=True, env=clean)
    assert probe.returncode == 0, probe.stderr
    files, found = probe.stdout.splitlines()
    assert all(f.startswith(str(repo)) for f in files.split()), files
    assert found == "[]", f"importable in the learner's environment: {found}"
    proc = subprocess.run([str(python), "-m", "pytest", "exercises/lesson12", "-q",
                           "-p", "no:cacheprovider"], cwd=repo, capture_output=True,
                          text=True, env=clean, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out[-3000:]
    assert "passed" not in out.splitlines()[-1], out[-1000:]
    visible = sum(1 for _ in (ROOT / "exercises" / "lesson12").glob("test_*.py"))
    assert visible and "NotImplementedError: lesson12:" in out
    assert "error" not in out.splitlines()[-1], "a test module failed to import:\n" + out[-3000:]
    assert str(ROOT) not in out, "the run touched the course repository"

    # The learner's self-check, as the README and the lesson texts give it: the stubs score
    # zero with the reason of each failure ...
    check = subprocess.run([str(python), "-m", "autograder.selfcheck", "--lesson", "12"],
                           cwd=repo, capture_output=True, text=True, env=clean, timeout=300)
    out = check.stdout + check.stderr
    assert check.returncode == 1, out[-3000:]
    tests = len([line for line in proc.stdout.splitlines() if line.startswith("FAILED")]) or None
    row = next(line.split() for line in check.stdout.splitlines() if line.startswith("lesson12"))
    assert row[1] == "0" and row[-1] == f"0/{row[2]}" and int(row[2]) > 0, out[-3000:]
    assert tests in (None, int(row[2])), (tests, row)
    assert "NotImplementedError: lesson12:" in out and str(ROOT) not in out, out[-3000:]
    # ... and solved lessons 01-04 get full points: their visible tests compare with HF
    # transformers, and lessons 03 and 04 run on the given pieces of course.hf_layers, none
    # of which may need the instructor's oracle (which the release does not hold).
    mine = tmp_path / "mine"
    for lesson in ("lesson01", "lesson02", "lesson03", "lesson04"):
        shutil.copytree(ROOT / "solutions" / lesson, mine / lesson,
                        ignore=shutil.ignore_patterns("test_*", "__pycache__"))
    solved = subprocess.run([str(python), "-m", "autograder.selfcheck", "--lesson", "1,2,3,4",
                             "--impl", str(mine)], cwd=repo, capture_output=True, text=True,
                            env=clean, timeout=600)
    out = solved.stdout + solved.stderr
    assert solved.returncode == 0, out[-3000:]
    rows = {line.split()[0]: line.split() for line in solved.stdout.splitlines()
            if line.startswith(("lesson", "total"))}
    for lesson in ("lesson01", "lesson02", "lesson03", "lesson04"):
        passed, failed, points = rows[lesson][1], rows[lesson][2], rows[lesson][-1]
        assert int(passed) > 0 and failed == "0" and points == f"{passed}/{passed}", out[-3000:]

    # GitHub Classroom: the workflow's step for lesson 04, run as the workflow runs it, gives
    # the reporter full points for the solved lesson and zero for the stubs, out of the
    # lesson's points as released; a test module that no longer imports keeps the total.
    flow = (repo / ".github" / "workflows" / "classroom.yml").read_text()
    step = next(line.split("run: ", 1)[1] for line in flow.splitlines()
                if "--lesson 04 " in line)
    released = float(step.split("--max-score ")[1].split()[0])
    broken = tmp_path / "broken"
    shutil.copytree(mine / "lesson04", broken / "lesson04")
    module = sorted((broken / "lesson04").glob("kv_*.py"))[0]
    module.write_text("def oops(:\n")
    for impl, expect in ((None, "zero"), (mine, "full"), (broken, "part")):
        output = tmp_path / f"github_output_{expect}"
        command = step.replace('"$GITHUB_OUTPUT"', str(output)).split()
        command[0] = str(python)
        if impl is not None:
            command += ["--impl", str(impl)]
        run = subprocess.run(command, cwd=repo, capture_output=True, text=True, env=clean,
                             timeout=300)
        assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
        result, got, total = _reporter_totals(output)
        assert total == released > 0, (total, released)
        if expect == "zero":
            assert got == 0 and result["status"] == "fail", result
        elif expect == "full":
            assert got == total and result["status"] == "pass", result
        else:
            assert 0 <= got < total and result["status"] == "error", result
            assert "cannot be collected" in result["tests"][-1]["message"], result["tests"][-1]

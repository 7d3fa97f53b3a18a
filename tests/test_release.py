"""`autograder release OUT`: the learners' repository works on its own and holds no secret.

The release is installed into a fresh virtual environment made with ``python -m venv
--without-pip``; a ``.pth`` file points it at the course venv's site-packages for the
third-party dependencies only (torch, pytest, hypothesis, numpy: installing torch again would
take minutes). A ``.pth`` line only adds a folder to ``sys.path``: the course's own editable
install (a finder registered by a ``.pth`` file of that folder) is not processed, so
``autograder``, ``course`` and ``exercises`` can only come from the release. The release is
then installed with pip (``-e``, no index, no dependencies), which also checks its
pyproject, and ``pytest exercises/lesson12`` runs there from the release folder.
"""

from __future__ import annotations

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
                   "README.md", "pyproject.toml", ".gitignore", ".github"}, top
    assert {p.name for p in (built / "autograder").iterdir()} == {"__init__.py",
                                                                  "pytest_impl.py",
                                                                  "shared.py"}
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


def test_workflow_is_a_classroom_workflow_with_one_step_per_lesson(built):
    yaml = pytest.importorskip("yaml")
    flow = yaml.safe_load((built / ".github" / "workflows" / "classroom.yml").read_text())
    steps = flow["jobs"]["run-autograding-tests"]["steps"]
    lessons = sorted(p.name for p in (built / "exercises").iterdir() if p.is_dir())
    graders = [s for s in steps if "autograding-command-grader" in s.get("uses", "")]
    assert [s["id"] for s in graders] == lessons
    assert all(s["with"]["command"].startswith(f"python -m pytest exercises/{s['id']}")
               for s in graders)
    assert steps[-1]["with"]["runners"] == ",".join(lessons)
    actionlint = shutil.which("actionlint") or shutil.which(
        "actionlint", path=str(Path(sys.executable).parent))
    if actionlint:
        proc = subprocess.run([actionlint, str(built / ".github" / "workflows" /
                                               "classroom.yml")], capture_output=True,
                              text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr


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

"""The private copy a submission is graded in: the course's tests, shared packages and
plugins, and the submission's lesson modules (``lessonNN/*.py`` only: no conftest, no tests
of its own)."""

from __future__ import annotations

import os
import shutil
import tempfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from ..shared import CAPSTONE, CAPSTONE_LESSONS, REPO_ROOT, lesson_dirs, module_lessons

SHARED_PACKAGES = ("course", "hardware_fixtures")
# The pytest plugins of ``autograder`` the child loads, and what they import.
PLUGIN_MODULES = ("__init__.py", "shared.py", "pytest_impl.py", "recorder.py", "guard.py")


@dataclass
class Workspace:
    root: Path
    tests: Path = field(init=False)
    lib: Path = field(init=False)
    submission: Path = field(init=False)

    def __post_init__(self):
        self.tests, self.lib = self.root / "tests", self.root / "lib"
        self.submission = self.root / "submission"


def available_lessons(course_root: Path = REPO_ROOT) -> list[str]:
    """The lessons with stubs (``exercises/lessonNN``)."""
    return lesson_dirs(Path(course_root) / "exercises")


def gradeable_lessons(course_root: Path = REPO_ROOT) -> list[str]:
    """What ``grade`` can grade: the lessons, and the capstone when its graders exist."""
    lessons = available_lessons(course_root)
    if (Path(course_root) / "autograder" / "hidden" / CAPSTONE).is_dir() \
            and all(lesson in lessons for lesson in CAPSTONE_LESSONS):
        lessons.append(CAPSTONE)
    return lessons


def submitted_lessons(target: Path) -> list[str]:
    """The lessons a submission holds, and the capstone when it holds every lesson the
    capstone's engine runs."""
    lessons = lesson_dirs(target)
    if all(lesson in lessons for lesson in CAPSTONE_LESSONS):
        lessons.append(CAPSTONE)
    return lessons


def copy_py(src: Path, dst: Path, keep) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for path in sorted(src.iterdir()):
        if path.is_file() and keep(path.name):
            shutil.copyfile(path, dst / path.name)


def build_workspace(target: Path, lessons: list[str], course_root: Path = REPO_ROOT) -> Workspace:
    ws = Workspace(Path(tempfile.mkdtemp(prefix="course-grade-")))
    os.chmod(ws.root, 0o711)  # an isolated child may traverse it, not list it
    for name in SHARED_PACKAGES:
        shutil.copytree(course_root / name, ws.lib / name,
                        ignore=shutil.ignore_patterns("__pycache__"))
    copy_py(course_root / "autograder", ws.lib / "autograder", lambda n: n in PLUGIN_MODULES)
    copy_tests(ws, lessons, course_root)
    for lesson in module_lessons(lessons):
        submitted = target / lesson
        if submitted.is_dir():
            copy_py(submitted, ws.submission / lesson,
                    lambda n: n.endswith(".py") and not n.startswith("test_")
                    and n != "conftest.py")
        else:
            (ws.submission / lesson).mkdir(parents=True)
    _write_ini(ws, course_root)
    (ws.root / "home").mkdir()
    (ws.root / "tmp").mkdir()
    return ws


def copy_stubs(ws: Workspace, lessons: list[str], course_root: Path = REPO_ROOT) -> Path:
    """The course's own stubs, beside the submission: tests are collected against them."""
    stubs = ws.root / "stubs"
    for lesson in module_lessons(lessons):
        copy_py(course_root / "exercises" / lesson, stubs / lesson,
                lambda n: n.endswith(".py") and not n.startswith("test_"))
    return stubs


def _is_test(name: str) -> bool:
    return name.startswith("test_") or name in ("conftest.py", "__init__.py") \
        or name.endswith((".json", ".txt", ".toml"))


def copy_tests(ws: Workspace, lessons: list[str], course_root: Path = REPO_ROOT) -> None:
    """(Re)write the course's tests into the workspace. Done again before every child: a
    child that rewrote a test file on disk (when it runs as the grader's own user) cannot
    hand the next child a test that always passes."""
    if ws.tests.exists():
        shutil.rmtree(ws.tests)
    (ws.tests / "exercises").mkdir(parents=True)
    (ws.tests / "exercises" / "__init__.py").write_text("")
    (ws.tests / "hidden").mkdir()
    (ws.tests / "hidden" / "__init__.py").write_text("")
    for lesson in lessons:
        if (course_root / "exercises" / lesson).is_dir():  # the capstone has no visible tests
            copy_py(course_root / "exercises" / lesson, ws.tests / "exercises" / lesson,
                    _is_test)
        hidden = course_root / "autograder" / "hidden" / lesson
        if hidden.is_dir():
            copy_py(hidden, ws.tests / "hidden" / lesson, _is_test)
    _write_ini(ws, course_root)


def _write_ini(ws: Workspace, course_root: Path) -> None:
    config = tomllib.loads((course_root / "pyproject.toml").read_text())
    options = config["tool"]["pytest"]["ini_options"]
    lines = ["[pytest]", "addopts = -p autograder.pytest_impl -p autograder.recorder",
             "markers ="]
    lines += [f"    {m}" for m in options.get("markers", [])]
    lines += ["filterwarnings ="] + [f"    {w}" for w in options.get("filterwarnings", [])]
    (ws.tests / "pytest.ini").write_text("\n".join(lines) + "\n")

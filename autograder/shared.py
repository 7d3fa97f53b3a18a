"""Definitions shared by the engine, the reports and the pytest plugins (one of each).

Copied into the grading child's workspace with the plugins, so it imports nothing but the
standard library.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

# The name of a lesson's folder (``lesson12``); ``LESSON_IN`` finds one (or the capstone)
# inside a longer name, such as a test's node id.
LESSON_DIR = re.compile(r"lesson\d\d$")
LESSON_IN = re.compile(r"(lesson\d\d|capstone)")

# The capstone is graded like a lesson (a row of the grade table, ``--lesson capstone``) but
# has no stubs of its own: its hidden graders (``autograder/hidden/capstone``) run the serving
# engine (``course/engine.py``) over the submission's modules of these lessons (the engine's
# ``PIECES``; tests/test_capstone_engine.py checks that the two lists agree).
CAPSTONE = "capstone"
CAPSTONE_LESSONS = ("lesson02", "lesson12", "lesson13", "lesson18")


def is_lesson_dir(name: str) -> bool:
    return bool(LESSON_DIR.match(name))


def lesson_dirs(folder: Path) -> list[str]:
    """The ``lessonNN`` sub-folders of ``folder``, sorted."""
    return sorted(p.name for p in Path(folder).iterdir() if p.is_dir() and is_lesson_dir(p.name))


def module_lessons(lessons: list[str]) -> list[str]:
    """The lesson folders whose modules grading ``lessons`` needs: the capstone needs its
    pieces' lessons."""
    out: set[str] = set()
    for lesson in lessons:
        out.update(CAPSTONE_LESSONS if lesson == CAPSTONE else (lesson,))
    return sorted(out)


def fmt_points(x: float) -> str:
    """Points as reports print them: 3, 2.5, 0.25 (no trailing zeros)."""
    return f"{x:g}"

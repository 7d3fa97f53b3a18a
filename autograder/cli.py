"""The ``autograder`` command line: grade, sync, release and nbgrader."""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from . import notebooks, report, sync
from .engine import REPO_ROOT, GradingError, Limits, grade_target

# Modules of this package that add a subcommand through a register(subparsers) function.
EXTENSIONS: tuple[str, ...] = ("release", "nbgrader", "gradescope")


def _lessons(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    out = []
    for value in values:
        for part in value.split(","):
            if part.strip() == "capstone":
                out.append("capstone")
                continue
            part = part.strip().removeprefix("lesson")
            if not part.isdigit():
                raise GradingError(f"--lesson {value}: give lesson numbers, e.g. --lesson 12, "
                                   "or capstone")
            out.append(f"lesson{int(part):02d}")
    return out


def cmd_grade(args: argparse.Namespace) -> int:
    target = Path(args.target)
    if args.target in ("solutions", "exercises") and not target.exists():
        target = REPO_ROOT / args.target
    limits = Limits(timeout_s=args.timeout, collect_timeout_s=args.timeout,
                    budget_s=args.budget, memory_mb=args.memory_mb)
    from . import classroom
    if args.class_ or classroom.is_class_folder(target):
        if not target.is_dir():
            raise GradingError(f"{target}: no such folder")
        out = Path(args.out) if args.out else target.parent / f"{target.name}-grades"
        classroom.grade_class(target, out, _lessons(args.lesson), limits, args.jobs)
        return 0
    graded = grade_target(target, _lessons(args.lesson), limits)
    rows = report.by_lesson(graded.tests)
    print(report.table(rows, title=f"Grades for {target}"))
    for line in graded.notes():
        print(line)
    if graded.review:
        print("for review (not scored): lines of the submission that touch the grader, "
              "processes or the interpreter:")
        for line in graded.review[:20]:
            print(f"  {line}")
    if args.json:
        data = report.to_json(rows, str(target))
        data.update(isolation=graded.isolation, review=graded.review)
        if graded.budget:
            data.update(budget=graded.budget)
        report.write_json(args.json, data)
    if args.gradescope:
        report.write_json(args.gradescope, report.to_gradescope(rows))
    return 0


def cmd_sync(args: argparse.Namespace) -> int:
    root = Path(args.root)
    lessons = _lessons(args.lesson)
    if args.check:
        lines = sync.diff(root, lessons)
        notebook_lines = notebooks.diff(root, lessons)
        sys.stdout.writelines(lines + notebook_lines)
        if lines:
            print("\nexercises/ is out of step with solutions/: run `autograder sync` "
                  "(never edit exercises/ by hand).", file=sys.stderr)
        if notebook_lines:
            print("\nnotebooks/*.ipynb are out of step with their sources notebooks/*.py: run "
                  "`autograder sync` (edit the .py, never the .ipynb).", file=sys.stderr)
        if lines or notebook_lines:
            return 1
        print("exercises/ is in step with solutions/, and notebooks/ with its sources.")
        return 0
    changed = [f"exercises/{rel}" for rel in sync.write(root, lessons)]
    changed += [str(rel) for rel in notebooks.write(root, lessons)]
    for rel in changed:
        print(f"wrote {rel}")
    print(f"{len(changed)} file(s) changed." if changed else "exercises/ and notebooks/ were "
          "already in step.")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="autograder", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    grade = sub.add_parser("grade", help="grade a folder of lessonNN packages")
    grade.add_argument("target", nargs="?", default="exercises",
                       help="folder holding lessonNN/ packages (default: exercises), or a "
                            "class: a folder of student folders")
    grade.add_argument("--lesson", action="append", metavar="N",
                       help="grade only these lessons (repeat, or 12,13; 'capstone' for the "
                            "capstone)")
    grade.add_argument("--json", metavar="FILE", help="write per-test results as JSON")
    grade.add_argument("--gradescope", metavar="FILE", help="write Gradescope results.json")
    grade.add_argument("--timeout", type=float, default=Limits.timeout_s, metavar="S",
                       help="seconds one test, or the import of one test module, may run "
                            f"(default {Limits.timeout_s:g})")
    grade.add_argument("--budget", type=float, default=Limits.budget_s, metavar="S",
                       help="seconds per lesson graded that all the tests of one "
                            "submission may take together; the tests not run by then score "
                            f"zero, with a note (default {Limits.budget_s:g})")
    grade.add_argument("--memory-mb", type=int, default=8192, metavar="MB",
                       help="address-space limit of the test process (default 8192)")
    grade.add_argument("--class", dest="class_", action="store_true",
                       help="TARGET holds one sub-folder per student (detected when its "
                            "sub-folders hold lessonNN/ and it does not)")
    grade.add_argument("--jobs", type=int, default=None, metavar="N",
                       help="students graded in parallel (default: cores, within 80%% of "
                            "the available memory at --memory-mb each)")
    grade.add_argument("--out", metavar="DIR",
                       help="class grading: where grades.csv and students/ go "
                            "(default: TARGET-grades next to TARGET)")
    grade.set_defaults(func=cmd_grade)

    syn = sub.add_parser("sync", help="generate exercises/ from solutions/ and notebooks/*.ipynb from their sources")
    syn.add_argument("--check", action="store_true",
                     help="fail with a diff if exercises/ or a notebook is stale or edited by hand")
    syn.add_argument("--lesson", action="append", metavar="N",
                     help="only these lessons (repeat, or 12,13)")
    syn.add_argument("--root", default=str(REPO_ROOT), help=argparse.SUPPRESS)
    syn.set_defaults(func=cmd_sync)
    for name in EXTENSIONS:  # each adds its subcommand: register(subparsers)
        try:
            module = importlib.import_module(f"autograder.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"autograder.{name}":
                raise
            continue
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (GradingError, sync.SyncError, notebooks.NotebookError) as exc:
        print(f"autograder: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

"""``autograder release OUT``: write the repository learners clone.

What goes in, and why:

* ``exercises/`` - the generated stubs and the visible tests of every lesson (refused when
  ``exercises/`` is out of step with ``solutions/``: a stale stub must not be published);
* ``learning/`` - the lesson texts; ``course/`` - the shared helpers the stubs and the tests
  import; ``hardware_fixtures/`` - spec sheets and their loader;
* ``autograder/`` reduced to ``__init__.py`` (a learner's docstring), ``pytest_impl.py`` and
  the ``shared.py`` it imports: the visible tests need its ``--impl`` redirection and
  hypothesis profiles (``addopts = -p autograder.pytest_impl``). The grading engine (engine, recorder, guard,
  report, sync, cli, classroom, nbgrader, release) stays out: it holds no secret (the
  threat model never relies on hiding it), but a learner has no use for it, it would
  suggest a ``grade`` command that cannot work without the hidden graders, and every file
  left out is one less to check for leaks. ``autograder/hidden/`` and ``solutions/`` never
  go in; ``tests/`` (the maintainers' suite, which plants bugs in copies of the solutions)
  neither;
* from ``autograder/release_template/``: a learner README, a ``pyproject.toml`` (the same
  dependencies, markers and hypothesis plugin as the course, only ``exercises`` as test
  path), ``.gitignore`` and ``.github/workflows/classroom.yml`` (GitHub Classroom
  autograding: one step per lesson running its visible tests).

Nothing else: no ``.git``, caches, notebooks, nbgrader sources or instructor docs.
:func:`secret_lines` and :func:`find_leaks` are the check that the release holds no line
of a solution region or of a hidden grader (used by the tests and by ``--check``).
"""

from __future__ import annotations

import json
import re
import shutil
import tomllib
from pathlib import Path

from . import sync
from .engine import REPO_ROOT, GradingError, available_lessons

TEMPLATE = Path(__file__).resolve().parent / "release_template"
COPIED = ("learning", "course", "hardware_fixtures")
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints", "*.egg-info",
                                 ".pytest_cache", ".hypothesis")
_LESSON = re.compile(r"lesson\d\d$")

STEP = """      - name: {lesson} visible tests
        id: {lesson}
        uses: classroom-resources/autograding-command-grader@v1
        with:
          test-name: {lesson}
          setup-command: ""
          command: python -m pytest exercises/{lesson} -q -p no:cacheprovider
          timeout: 15
          max-score: 1
"""


def _toml_list(values) -> str:
    return "[\n" + "".join(f"    {json.dumps(v)},\n" for v in values) + "]"


def _pyproject(course_root: Path) -> str:
    config = tomllib.loads((course_root / "pyproject.toml").read_text())
    project, options = config["project"], config["tool"]["pytest"]["ini_options"]
    extras = project.get("optional-dependencies", {})
    extras_text = "\n".join(f"{name} = {json.dumps(deps)}" for name, deps in extras.items()
                            if name not in ("dev", "nbgrader"))
    text = (TEMPLATE / "pyproject.toml").read_text()
    for key, value in {"{version}": project.get("version", "0.1.0"),
                       "{dependencies}": _toml_list(project.get("dependencies", [])),
                       "{extras}": extras_text,
                       "{markers}": _toml_list(options.get("markers", [])),
                       "{filterwarnings}": _toml_list(options.get("filterwarnings", []))}.items():
        text = text.replace(key, value)
    tomllib.loads(text)  # a template that does not parse is a bug here, not the learner's
    return text


def _workflow(lessons: list[str]) -> str:
    text = (TEMPLATE / ".github" / "workflows" / "classroom.yml").read_text()
    steps = "".join(STEP.format(lesson=lesson) for lesson in lessons)
    env = "".join(f'          {lesson.upper()}_RESULTS: "${{{{steps.{lesson}.outputs.result}}}}"\n'
                  for lesson in lessons)
    return (text.replace("{steps}\n", steps).replace("{reporter_env}\n", env)
            .replace("{runners}", ",".join(lessons)))


def build_release(out: Path, course_root: Path = REPO_ROOT, lessons: list[str] | None = None,
                  check_sync: bool = True) -> list[Path]:
    """Write the student release into ``out`` (new or empty); returns the files written."""
    out = Path(out)
    course_root = Path(course_root)
    if out.exists() and any(out.iterdir()):
        raise GradingError(f"{out} exists and is not empty: give a new folder")
    known = available_lessons(course_root)
    lessons = lessons or known
    unknown = [lesson for lesson in lessons if lesson not in known]
    if unknown:
        raise GradingError(f"no such lesson in exercises/: {', '.join(unknown)}")
    if check_sync:
        stale = sync.diff(course_root, lessons)
        if stale:
            raise GradingError("exercises/ is out of step with solutions/ (run `autograder "
                               "sync`); a release must not publish stale stubs:\n"
                               + "".join(stale[:20]))
    out.mkdir(parents=True, exist_ok=True)
    (out / "exercises").mkdir()
    shutil.copyfile(course_root / "exercises" / "__init__.py", out / "exercises" / "__init__.py")
    for lesson in lessons:
        shutil.copytree(course_root / "exercises" / lesson, out / "exercises" / lesson,
                        ignore=_IGNORE)
    for name in COPIED:
        if (course_root / name).is_dir():
            shutil.copytree(course_root / name, out / name, ignore=_IGNORE)
    (out / "autograder").mkdir()
    shutil.copyfile(TEMPLATE / "autograder_init.py", out / "autograder" / "__init__.py")
    for name in ("pytest_impl.py", "shared.py"):  # the redirection and what it imports
        shutil.copyfile(course_root / "autograder" / name, out / "autograder" / name)
    readme = (TEMPLATE / "README.md").read_text().replace(
        "{lessons}", ", ".join(str(int(lesson[6:])) for lesson in lessons))
    (out / "README.md").write_text(readme)
    (out / "pyproject.toml").write_text(_pyproject(course_root))
    (out / ".gitignore").write_text((TEMPLATE / "gitignore").read_text())
    workflows = out / ".github" / "workflows"
    workflows.mkdir(parents=True)
    (workflows / "classroom.yml").write_text(_workflow(lessons))
    return sorted(p for p in out.rglob("*") if p.is_file())


# -- the leak check ---------------------------------------------------------------------------

_BEGIN, _END = "### BEGIN SOLUTION", "### END SOLUTION"
_TRIVIAL = re.compile(r"^(import |from \S+ import |@|#|\"\"\"|'''|pass$|else:$|try:$|"
                      r"finally:$|return$|continue$|break$|[\)\]\}:,]+$)")
MIN_LENGTH = 16  # shorter normalized lines ('return x', 'n += 1') say nothing on their own


def normalize(line: str) -> str:
    return " ".join(line.strip().split())


def _bare_call(line: str) -> bool:
    """``f(a, b, c)`` or ``x = f(a, b)``: a call of a (public) name with plain names or
    constants as arguments says nothing a signature does not."""
    import ast
    try:
        tree = ast.parse(line)
    except SyntaxError:
        return False
    if len(tree.body) != 1:
        return False
    node = tree.body[0]
    value = node.value if isinstance(node, (ast.Expr, ast.Assign)) else None
    if isinstance(node, ast.Assign) and not all(isinstance(t, ast.Name) for t in node.targets):
        return False
    if not isinstance(value, ast.Call) or not isinstance(value.func, (ast.Name, ast.Attribute)):
        return False
    args = list(value.args) + [k.value for k in value.keywords]
    return all(isinstance(a, (ast.Name, ast.Constant)) for a in args)


def _significant(line: str) -> bool:
    return len(line) >= MIN_LENGTH and not _TRIVIAL.match(line) and not _bare_call(line)


def solution_lines(course_root: Path = REPO_ROOT) -> dict[str, str]:
    """normalized line -> where it comes from, for every line inside a solution region."""
    found = {}
    for path in sorted((course_root / "solutions").rglob("*.py")):
        inside = False
        for number, raw in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if _BEGIN in raw:
                inside = True
            elif _END in raw:
                inside = False
            elif inside and not raw.strip().startswith("# hint:"):
                found.setdefault(normalize(raw), f"{path.relative_to(course_root)}:{number}")
    return found


def hidden_lines(course_root: Path = REPO_ROOT) -> dict[str, str]:
    found = {}
    for path in sorted((course_root / "autograder" / "hidden").rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            for number, raw in enumerate(path.read_text(errors="replace").splitlines(), 1):
                found.setdefault(normalize(raw), f"{path.relative_to(course_root)}:{number}")
    return found


def public_text(course_root: Path = REPO_ROOT) -> str:
    """What is public by design: the generated stubs and visible tests, the shared helpers."""
    parts = []
    for folder in ("exercises", "course", "hardware_fixtures"):
        for path in sorted((course_root / folder).rglob("*")):
            if path.is_file() and path.suffix in (".py", ".toml"):
                parts.extend(normalize(x) for x in path.read_text(errors="replace").splitlines())
    return "\n".join(parts)


def secret_lines(course_root: Path = REPO_ROOT) -> dict[str, str]:
    """Normalized lines that must not appear anywhere in a release: the lines of solution
    regions and of hidden graders, minus trivial lines and lines (or parts of lines) that
    the public stubs, visible tests and helpers also contain."""
    public = public_text(course_root)
    secrets = {**hidden_lines(course_root), **solution_lines(course_root)}
    return {line: where for line, where in secrets.items()
            if _significant(line) and line not in public}


def _texts_of(path: Path) -> list[str]:
    data = path.read_bytes()
    text = data.decode("utf-8", errors="replace")
    texts = [text]
    if path.suffix in (".json", ".ipynb"):
        try:
            strings = []

            def walk(value):
                if isinstance(value, str):
                    strings.append(value)
                elif isinstance(value, list):
                    for v in value:
                        walk(v)
                elif isinstance(value, dict):
                    for v in value.values():
                        walk(v)
            walk(json.loads(text))
            texts.append("".join(strings))
        except ValueError:
            pass
    return ["\n".join(normalize(line) for line in t.splitlines()) for t in texts]


def find_leaks(release: Path, course_root: Path = REPO_ROOT) -> list[str]:
    """Every (release file, secret line) pair where the line occurs in the file."""
    secrets = secret_lines(course_root)
    leaks = []
    for path in sorted(Path(release).rglob("*")):
        if not path.is_file():
            continue
        texts = _texts_of(path)
        for line, where in secrets.items():
            if any(line in text for text in texts):
                leaks.append(f"{path.relative_to(release)} contains {where}: {line[:80]}")
    return leaks


def cmd_release(args) -> int:
    out = Path(args.out)
    lessons = None
    if args.lesson:
        lessons = [f"lesson{int(v.strip().removeprefix('lesson')):02d}"
                   for value in args.lesson for v in value.split(",")]
    files = build_release(out, lessons=lessons, check_sync=not args.no_sync_check)
    leaks = find_leaks(out)
    if leaks:
        shutil.rmtree(out)
        raise GradingError("the release would contain solution or hidden-grader code "
                           "(nothing written):\n" + "\n".join(leaks[:20]))
    print(f"wrote {len(files)} files to {out}; no line of a solution region or of a hidden "
          "grader appears in them.")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("release", help="write the student repository (no solutions, "
                                              "no hidden graders)")
    p.add_argument("out", help="a new (or empty) folder")
    p.add_argument("--lesson", action="append", metavar="N",
                   help="only these lessons (default: every lesson in exercises/)")
    p.add_argument("--no-sync-check", action="store_true", help=argparse_suppress())
    p.set_defaults(func=cmd_release)


def argparse_suppress():
    import argparse
    return argparse.SUPPRESS

"""``autograder release OUT``: write the repository learners clone.

What goes in, and why:

* ``exercises/`` - the generated stubs and the visible tests of every lesson (refused when
  ``exercises/`` is out of step with ``solutions/``: a stale stub must not be published);
* ``learning/`` - the lesson texts; ``course/`` - the shared helpers the stubs and the tests
  import; ``hardware_fixtures/`` - spec sheets and their loader;
* ``autograder/`` reduced to ``__init__.py`` (a learner's docstring), ``pytest_impl.py``
  (the visible tests need its ``--impl`` redirection and hypothesis profiles:
  ``addopts = -p autograder.pytest_impl``), the ``shared.py`` it imports, and ``selfcheck.py``
  (``python -m autograder.selfcheck``: visible-test points per lesson, the learner's
  self-check). The grading engine (engine, recorder, guard, report, sync, cli, classroom,
  nbgrader, release) stays out: it holds no secret (the threat model never relies on hiding
  it), but a learner has no use for it, it would suggest a ``grade`` command that cannot work
  without the hidden graders, and every file left out is one less to check for leaks.
  ``autograder/hidden/`` and ``solutions/`` never
  go in; ``tests/`` (the maintainers' suite, which plants bugs in copies of the solutions)
  neither;
* from ``autograder/release_template/``: a learner README, a ``pyproject.toml`` (the same
  dependencies, markers and hypothesis plugin as the course, only ``exercises`` as test
  path), ``.gitignore`` and ``.github/workflows/classroom.yml`` (GitHub Classroom
  autograding: one step per lesson running its visible tests).

Nothing else: no ``.git``, caches, notebooks, nbgrader sources or instructor docs, and
not the instructor's oracle ``course/llama_reference.py`` (``INSTRUCTOR_ONLY``: a whole
Llama forward, used by the hidden graders only; the visible tests compare with HF
transformers, and later lessons take their given layer pieces from ``course.hf_layers``).

:func:`check_release` refuses a release that gives answers away (used by ``cmd_release``
and the tests): :func:`find_leaks`, a line of a solution region or of a hidden grader in
any file; :func:`find_implementations`, a function outside ``exercises/`` named like a
graded function, or any function holding most of a graded solution region's code;
:func:`find_missing_imports`, a course module imported that the release left out.
"""

from __future__ import annotations

import ast
import io
import json
import keyword
import re
import shutil
import subprocess
import sys
import textwrap
import tokenize
import tomllib
from dataclasses import dataclass
from pathlib import Path

from . import notebooks, sync
from .engine import REPO_ROOT, GradingError, available_lessons

TEMPLATE = Path(__file__).resolve().parent / "release_template"
COPIED = ("learning", "course", "hardware_fixtures")
# The instructor's internal oracle: a whole Llama forward, the answer to lesson 01 and most of
# lesson 03. Only the hidden graders use it; nothing the release ships may import it.
INSTRUCTOR_ONLY = ("course/llama_reference.py",)
# The learner's side of autograder/: the tests' --impl plugin and the self-check.
# lab.py: what the learner notebooks call (setup, plots, the visible tests).
LEARNER_MODULES = ("pytest_impl.py", "shared.py", "selfcheck.py", "lab.py")  # shared.py: what pytest_impl imports
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints", "*.egg-info",
                                 ".pytest_cache", ".hypothesis")

# One step per lesson: the self-check runs its visible tests and writes the lesson's points in
# the form Classroom's reporter reads (autograder.selfcheck, --classroom); --max-score is the
# lesson's visible points counted here, so a test module that stops importing costs points.
STEP = """      - name: {lesson} visible tests
        id: {lesson}
        timeout-minutes: 15
        run: python -m autograder.selfcheck --lesson {number} --classroom "$GITHUB_OUTPUT" --max-score {points:g}
"""


def visible_points(course_root: Path, lessons: list[str]) -> dict[str, float]:
    """Each lesson's visible points without a GPU, as the self-check counts them."""
    proc = subprocess.run([sys.executable, "-m", "autograder.selfcheck", "--collect-points",
                           "--lesson", ",".join(lessons)], cwd=course_root,
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise GradingError("cannot count the visible tests' points for the Classroom "
                           f"workflow:\n{(proc.stdout + proc.stderr)[-3000:]}")
    points = json.loads(proc.stdout.strip().splitlines()[-1])
    missing = [lesson for lesson in lessons if not points.get(lesson)]
    if missing:
        raise GradingError(f"no visible test to count in {', '.join(missing)}")
    return points


def _toml_list(values) -> str:
    return "[\n" + "".join(f"    {json.dumps(v)},\n" for v in values) + "]"


def _pyproject(course_root: Path) -> str:
    config = tomllib.loads((course_root / "pyproject.toml").read_text())
    project, options = config["project"], config["tool"]["pytest"]["ini_options"]
    extras = project.get("optional-dependencies", {})
    extras_text = "\n".join(f"{name} = {json.dumps(deps)}" for name, deps in extras.items()
                            if name not in ("dev", "nbgrader", "site"))
    text = (TEMPLATE / "pyproject.toml").read_text()
    for key, value in {"{version}": project.get("version", "0.1.0"),
                       "{dependencies}": _toml_list(project.get("dependencies", [])),
                       "{extras}": extras_text,
                       "{markers}": _toml_list(options.get("markers", [])),
                       "{filterwarnings}": _toml_list(options.get("filterwarnings", []))}.items():
        text = text.replace(key, value)
    tomllib.loads(text)  # a template that does not parse is a bug here, not the learner's
    return text


def _workflow(lessons: list[str], points: dict[str, float]) -> str:
    text = (TEMPLATE / ".github" / "workflows" / "classroom.yml").read_text()
    steps = "".join(STEP.format(lesson=lesson, number=lesson[6:], points=points[lesson])
                    for lesson in lessons)
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
        stale = notebooks.diff(course_root, lessons)
        if stale:
            raise GradingError("a notebook is out of step with its source (run `autograder "
                               "sync`):\n" + "".join(stale[:20]))
    out.mkdir(parents=True, exist_ok=True)
    (out / "exercises").mkdir()
    shutil.copyfile(course_root / "exercises" / "__init__.py", out / "exercises" / "__init__.py")
    for lesson in lessons:
        shutil.copytree(course_root / "exercises" / lesson, out / "exercises" / lesson,
                        ignore=_IGNORE)
    def ignore(folder, names):
        rel = Path(folder).relative_to(course_root)
        return set(_IGNORE(folder, names)) | {n for n in names
                                              if (rel / n).as_posix() in INSTRUCTOR_ONLY}

    for name in COPIED:
        if (course_root / name).is_dir():
            shutil.copytree(course_root / name, out / name, ignore=ignore)
    # The learner notebooks of the released lessons (not their sources: the .ipynb is the
    # learner's to edit).
    for lesson in lessons:
        notebook = course_root / notebooks.NOTEBOOK_DIR / f"{lesson}.ipynb"
        if notebook.is_file():
            (out / notebooks.NOTEBOOK_DIR).mkdir(exist_ok=True)
            shutil.copyfile(notebook, out / notebooks.NOTEBOOK_DIR / notebook.name)
    (out / "autograder").mkdir()
    shutil.copyfile(TEMPLATE / "autograder_init.py", out / "autograder" / "__init__.py")
    for name in LEARNER_MODULES:
        shutil.copyfile(course_root / "autograder" / name, out / "autograder" / name)
    readme = (TEMPLATE / "README.md").read_text().replace(
        "{lessons}", ", ".join(str(int(lesson[6:])) for lesson in lessons))
    (out / "README.md").write_text(readme)
    (out / "pyproject.toml").write_text(_pyproject(course_root))
    (out / ".gitignore").write_text((TEMPLATE / "gitignore").read_text())
    workflows = out / ".github" / "workflows"
    workflows.mkdir(parents=True)
    (workflows / "classroom.yml").write_text(_workflow(lessons, visible_points(course_root,
                                                                               lessons)))
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
    """What is public by design: the generated stubs and visible tests, the shared helpers
    (not the instructor-only ones) and the learner's modules of ``autograder/``."""
    paths = [path for folder in ("exercises", "course", "hardware_fixtures")
             for path in sorted((course_root / folder).rglob("*"))
             if path.is_file() and path.suffix in (".py", ".toml")
             and path.relative_to(course_root).as_posix() not in INSTRUCTOR_ONLY]
    paths += [course_root / "autograder" / name for name in LEARNER_MODULES]
    parts = []
    for path in paths:
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


# -- implementations of graded functions -------------------------------------------------------
#
# The line check above misses code written another way: the course's own internal oracle
# (``course/llama_reference.py``, a whole Llama forward) once shipped in ``course/`` with other
# variable names and keyword arguments. Two more checks look at every Python file of the
# release: a function outside ``exercises/`` named like a graded function is refused (a given
# helper needs a name of its own), and a function anywhere whose code holds most of a graded
# solution region, names of variables aside, is refused.

SHINGLE = 5  # tokens per shingle of the code comparison
MIN_SHINGLES = 12  # smaller solution regions (a formula of a line or two) are left to the line check
MAX_COVERED = 0.6  # a function holding this share of a region's shingles implements it
# Given code that the check flags and a maintainer has read and kept, with the reason:
# (release file, function, graded function) -> why it may ship. Keep this short.
REVIEWED = {
    ("exercises/lesson12/batcher.py", "StaticBatcher.step", "ContinuousBatcher.step"):
        "the static batcher is the lesson's given baseline; it shares the admission and "
        "decode loops with the continuous one, whose graded part is admitting while others "
        "run (can_admit) and retiring every step",
}


@dataclass(frozen=True)
class GradedFunction:
    """A function of ``solutions/`` with a solution region: what the learner writes."""

    where: str  # solutions/lessonNN/file.py:line
    qualname: str  # ``rms_norm`` or ``KVCache.append``
    shingles: frozenset


def _code_tokens(source: str) -> list[str]:
    """The tokens of some Python code with every name that is not an attribute replaced by
    ``NAME`` (renaming variables changes nothing) and comments, docstrings, line structure
    and keyword-argument spelling left out."""
    tokens: list[str] = []
    try:
        stream = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return tokens
    skip = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
            tokenize.ENDMARKER, tokenize.ENCODING}
    previous = None
    for tok in stream:
        if tok.type in skip:
            previous = tok
            continue
        if tok.type == tokenize.STRING and (previous is None or previous.type in
                                            (tokenize.NEWLINE, tokenize.INDENT, tokenize.NL,
                                             tokenize.DEDENT)):
            previous = tok  # a docstring or a bare string statement
            continue
        text = tok.string
        if tok.type == tokenize.NAME and not keyword.iskeyword(text):
            after_dot = bool(tokens) and tokens[-1] == "."
            text = text if after_dot else "NAME"
        if text == "=" and tokens and tokens[-1] == "NAME" and len(tokens) > 1 \
                and tokens[-2] in ("(", ","):
            tokens.pop()  # f(x, dim=-1) and f(x, -1) read the same
            previous = tok
            continue
        tokens.append(text)
        previous = tok
    return tokens


def _shingles(tokens: list[str]) -> frozenset:
    return frozenset(tuple(tokens[i:i + SHINGLE]) for i in range(len(tokens) - SHINGLE + 1))


def _functions(tree: ast.AST):
    """(qualified name, node) of every function and method, nested ones included."""
    def walk(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield prefix + child.name, child
                yield from walk(child, prefix + child.name + ".")
            elif isinstance(child, ast.ClassDef):
                yield from walk(child, prefix + child.name + ".")
            else:
                yield from walk(child, prefix)
    yield from walk(tree, "")


def graded_functions(course_root: Path = REPO_ROOT) -> list[GradedFunction]:
    """Every function of ``solutions/lessonNN/*.py`` (tests aside) holding a solution region,
    with the shingles of its region's code."""
    found = []
    for path in sorted((course_root / "solutions").glob("lesson*/*.py")):
        if path.name.startswith("test_"):
            continue
        text = path.read_text(errors="replace")
        lines = text.splitlines()
        regions, start = [], None
        for number, raw in enumerate(lines, 1):
            if _BEGIN in raw:
                start = number
            elif _END in raw and start is not None:
                regions.append((start, number))
                start = None
        if not regions:
            continue
        for qualname, node in _functions(ast.parse(text)):
            inner = [(a, b) for a, b in regions if node.lineno < a <= node.end_lineno]
            if not inner or any(child for child in ast.walk(node) if child is not node
                                and isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
                                and any(child.lineno < a <= child.end_lineno
                                        for a, b in inner)):
                continue  # no region, or the region belongs to a nested function
            code = "\n".join(textwrap.dedent("\n".join(
                line for line in lines[a:b - 1] if not line.strip().startswith("# hint:")))
                for a, b in inner)
            found.append(GradedFunction(f"{path.relative_to(course_root)}:{node.lineno}",
                                        qualname, _shingles(_code_tokens(code))))
    return found


def _python_sources(release: Path):
    """(relative path, Python text) of every .py file of the release and of the code cells of
    every notebook (joined, in order): what the release runs."""
    for path in sorted(release.rglob("*")):
        if path.suffix == ".py" and path.is_file():
            yield path.relative_to(release), path.read_text(errors="replace")
        elif path.suffix == ".ipynb" and path.is_file():
            try:
                cells = json.loads(path.read_text(errors="replace")).get("cells", [])
            except ValueError:
                continue
            yield path.relative_to(release), "\n\n".join(
                "".join(c.get("source", "")) for c in cells if c.get("cell_type") == "code")


def find_implementations(release: Path, course_root: Path = REPO_ROOT) -> list[str]:
    """Functions of the release that implement a graded function: named like one outside
    ``exercises/``, or holding most of the code of its solution region."""
    graded = graded_functions(course_root)
    names = {g.qualname: g.where for g in graded}
    regions = [g for g in graded if len(g.shingles) >= MIN_SHINGLES]
    found = []
    for rel, text in _python_sources(Path(release)):
        try:
            tree = ast.parse(text)
        except SyntaxError:
            continue
        lines = text.splitlines()
        for qualname, node in _functions(tree):
            if rel.parts[0] != "exercises" and qualname in names:
                found.append(f"{rel}:{node.lineno} defines {qualname}, the name of the graded "
                             f"function {names[qualname]}")
            body = textwrap.dedent("\n".join(lines[node.lineno - 1:node.end_lineno]))
            shingles = _shingles(_code_tokens(body))
            for g in regions:
                covered = len(g.shingles & shingles) / len(g.shingles)
                if covered >= MAX_COVERED and (rel.as_posix(), qualname,
                                               g.qualname) not in REVIEWED:
                    found.append(f"{rel}:{node.lineno} {qualname} holds {covered:.0%} of the "
                                 f"solution of {g.qualname} ({g.where})")
    return found


def find_missing_imports(release: Path) -> list[str]:
    """Imports of the course's own packages that the release does not hold (a module left out
    of the release, such as the instructor's oracle, must not be needed there)."""
    release = Path(release)
    own = ("course", "autograder", "hardware_fixtures", "exercises")
    missing = []
    for rel, text in _python_sources(release):
        try:
            tree = ast.parse(text)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
                modules += [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                modules = [a.name for a in node.names]
            else:
                continue
            for module in modules:
                parts = module.split(".")
                if parts[0] not in own:
                    continue
                base = release.joinpath(*parts)
                if not (base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()):
                    init = base.parent / "__init__.py"
                    if module != modules[0] and (base.parent.with_suffix(".py").is_file() or (
                            init.is_file() and re.search(rf"\b{parts[-1]}\b",
                                                         init.read_text(errors="replace")))):
                        continue  # ``from course.x import name``: a name, not a module
                    missing.append(f"{rel}:{node.lineno} imports "
                                   f"{module}, which the release does not hold")
                    break  # its names are missing with it
    return missing


def check_release(release: Path, course_root: Path = REPO_ROOT) -> list[str]:
    """Everything that must stop a release: leaked lines, implementations of graded
    functions, imports of modules left out."""
    return (find_leaks(release, course_root) + find_implementations(release, course_root)
            + find_missing_imports(release))


def write_release(out: Path, course_root: Path = REPO_ROOT, lessons: list[str] | None = None,
                  check_sync: bool = True) -> list[Path]:
    """``build_release``, then ``check_release``: a release that gives answers away (or
    imports a module it left out) is deleted again and refused with the reasons."""
    files = build_release(out, course_root, lessons, check_sync)
    problems = check_release(out, course_root)
    if problems:
        shutil.rmtree(out)
        raise GradingError("the release would give answers away or miss a module "
                           "(nothing written):\n" + "\n".join(problems[:20]))
    return files


def cmd_release(args) -> int:
    out = Path(args.out)
    lessons = None
    if args.lesson:
        lessons = [f"lesson{int(v.strip().removeprefix('lesson')):02d}"
                   for value in args.lesson for v in value.split(",")]
    files = write_release(out, lessons=lessons, check_sync=not args.no_sync_check)
    print(f"wrote {len(files)} files to {out}; no line of a solution region or of a hidden "
          "grader appears in them, no function implements a graded one, and every course "
          "module they import is there.")
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

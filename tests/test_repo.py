"""The course's own consistency: generated files in step, stubs that expose the reference's
API and none of its code, graders that carry points and say what they catch, workflows that
parse, and one test command in the README, CI and the workflow."""

from __future__ import annotations

import ast
import doctest
import importlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from autograder import sync

ROOT = Path(__file__).resolve().parent.parent
LESSONS = sorted(p.name for p in (ROOT / "solutions").iterdir()
                 if p.is_dir() and re.fullmatch(r"lesson\d\d", p.name))
STUB_MODULES = [(lesson, p.name) for lesson in LESSONS
                for p in sorted((ROOT / "solutions" / lesson).glob("*.py"))
                if not p.name.startswith("test_") and p.name != "__init__.py"]


def test_exercises_are_in_step_with_solutions():
    lines = sync.diff(ROOT)
    assert not lines, "exercises/ is stale or was edited by hand; run `autograder sync`:\n" + \
        "".join(lines[:80])


@pytest.mark.parametrize("lesson,module", STUB_MODULES, ids=[f"{a}/{b}" for a, b in STUB_MODULES])
def test_stub_exposes_the_same_api_as_the_solution(lesson, module):
    """Names, signatures, classes and their methods, dataclass fields: identical."""
    def api(path: Path) -> dict[str, str]:
        tree = ast.parse(path.read_text())
        found = {}
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                found[node.name] = ast.unparse(node.args) + " -> " + (
                    ast.unparse(node.returns) if node.returns else "")
            elif isinstance(node, ast.ClassDef):
                found[node.name] = "class(" + ", ".join(ast.unparse(b) for b in node.bases) + ")"
                for item in node.body:
                    if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                        found[f"{node.name}.{item.name}"] = ast.unparse(item.args)
                    elif isinstance(item, ast.AnnAssign):
                        found[f"{node.name}.{ast.unparse(item.target)}"] = ast.unparse(item)
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for t in targets:
                    if isinstance(t, ast.Name):
                        found[t.id] = "value"
        return found

    assert api(ROOT / "exercises" / lesson / module) == api(ROOT / "solutions" / lesson / module)


@pytest.mark.parametrize("lesson,module", STUB_MODULES, ids=[f"{a}/{b}" for a, b in STUB_MODULES])
def test_stub_contains_no_solution_code(lesson, module):
    """Every line inside a solution region is absent from the stub (hints excepted)."""
    source = (ROOT / "solutions" / lesson / module).read_text()
    stub = (ROOT / "exercises" / lesson / module).read_text()
    stub_lines = {line.strip() for line in stub.splitlines()}
    outside = set()
    lines = source.splitlines()
    regions = sync.find_regions(source, module)
    inside_idx = {i for r in regions for i in range(r.begin + 1, r.end)}
    for i, line in enumerate(lines):
        if i not in inside_idx:
            outside.add(line.strip())
    leaked = [lines[i].strip() for i in sorted(inside_idx)
              if lines[i].strip() and not lines[i].strip().startswith(sync.HINT)
              and lines[i].strip() in stub_lines and lines[i].strip() not in outside
              and len(lines[i].strip()) > 12]
    assert not leaked, f"solution lines found in the stub {lesson}/{module}: {leaked[:5]}"
    assert "NotImplementedError" in stub or not regions


def test_sync_rejects_a_region_without_a_section(tmp_path):
    bad = "def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION\n"
    with pytest.raises(sync.SyncError, match="names no section"):
        sync.stub_source(bad, "lesson99", "x.py")
    unclosed = 'def f():\n    """Read: learning/lesson99.md#a"""\n    ### BEGIN SOLUTION\n'
    with pytest.raises(sync.SyncError, match="never closed"):
        sync.stub_source(unclosed, "lesson99", "x.py")


def test_sync_keeps_hints_and_names_the_function():
    src = ('class A:\n    def f(self):\n        """Read: learning/lesson99.md#sec"""\n'
           "        ### BEGIN SOLUTION\n        # hint: think\n        return 1\n"
           "        ### END SOLUTION\n")
    out = sync.stub_source(src, "lesson99", "x.py")
    assert "        # hint: think\n" in out and "return 1" not in out
    assert "NotImplementedError('lesson99: A.f - read learning/lesson99.md#sec')" in out
    compile(out, "x.py", "exec")


@pytest.mark.parametrize("lesson,module", STUB_MODULES, ids=[f"{a}/{b}" for a, b in STUB_MODULES])
def test_docstring_examples_run_against_the_reference(lesson, module):
    from autograder.pytest_impl import ImplFinder
    roots = [f.root for f in sys.meta_path if isinstance(f, ImplFinder)]
    if roots != [ROOT / "solutions"]:
        pytest.skip("docstring examples run against the reference: use --impl=solutions")
    name = f"exercises.{lesson}.{module[:-3]}"  # the name the --impl finder resolves
    mod = sys.modules.get(name) or importlib.import_module(name)
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in finder.find(mod, name):
        runner.run(test)
    assert runner.failures == 0, f"{runner.failures} doctest example(s) fail in {lesson}/{module}"


def _hidden_tests():
    hidden = ROOT / "autograder" / "hidden"
    for path in sorted([*hidden.glob("lesson*/test_*.py"), *hidden.glob("capstone/test_*.py")]):
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                yield path, node
            elif isinstance(node, ast.ClassDef):
                yield path, node


def test_every_hidden_grader_has_points_and_names_its_bug():
    problems = []
    for path, node in _hidden_tests():
        rel = path.relative_to(ROOT)
        if isinstance(node, ast.ClassDef):
            if "Machine" in node.name and not ast.get_docstring(node):
                problems.append(f"{rel}::{node.name}: no docstring naming the bugs it catches")
            continue
        decorators = " ".join(ast.unparse(d) for d in node.decorator_list)
        if "points" not in decorators:
            problems.append(f"{rel}::{node.name}: no @pytest.mark.points(n)")
        doc = ast.get_docstring(node) or ""
        if "bug" not in doc.lower():
            problems.append(f"{rel}::{node.name}: its docstring does not name the bug it catches")
    assert not problems, "\n".join(problems)


def _readme_test_command() -> str:
    text = (ROOT / "README.md").read_text()
    match = re.search(r"<!-- test-command -->\s*```(?:bash|sh)?\n(.+?)\n```", text, re.S)
    assert match, "README.md must hold the test command in a block after <!-- test-command -->"
    return match.group(1).strip()


def test_readme_ci_and_workflow_run_the_same_test_command():
    command = _readme_test_command()
    assert command.startswith(".venv/bin/python -m pytest"), command
    assert command in (ROOT / ".ci" / "run").read_text(), ".ci/run does not run the README command"
    assert command in (ROOT / ".github/workflows/ci.yml").read_text(), \
        "the CI workflow does not run the README command"


def test_workflows_are_valid_github_actions():
    exe = shutil.which("check-jsonschema") or str(Path(sys.executable).parent / "check-jsonschema")
    if not Path(exe).exists():
        pytest.skip("check-jsonschema is not installed (the 'dev' extra)")
    workflows = sorted(str(p) for p in (ROOT / ".github" / "workflows").glob("*.yml"))
    assert workflows
    proc = subprocess.run([exe, "--builtin-schema", "vendor.github-workflows", *workflows],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_stub_names_a_section_that_exists():
    for lesson in LESSONS:
        anchors = sync.lesson_anchors(ROOT / "learning", lesson)
        for path in (ROOT / "exercises" / lesson).glob("*.py"):
            for anchor in re.findall(rf"learning/{lesson}\.md#([a-z0-9\-]+)", path.read_text()):
                assert anchor in anchors, f"{path.relative_to(ROOT)} links #{anchor}, " \
                                          f"not a heading of learning/{lesson}.md"


def test_course_map_marks_exactly_the_lessons_that_exist():
    text = (ROOT / "learning" / "README.md").read_text()
    marked = set(re.findall(r"^\| (\d\d) \|.*available", text, re.M))
    assert marked == {lesson[-2:] for lesson in LESSONS}, \
        "learning/README.md must mark as available exactly the lessons in solutions/"


def test_relative_links_in_markdown_resolve():
    broken = []
    pages = [*sorted((ROOT / "learning").glob("*.md")), ROOT / "README.md",
             ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").glob("*.md"))]
    for page in pages:
        text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if target.startswith(("http://", "https://", "mailto:", "#")):
                continue
            path = target.split("#", 1)[0]
            if path and not (page.parent / path).exists():
                broken.append(f"{page.relative_to(ROOT)} -> {target}")
    assert not broken, "links to missing files:\n" + "\n".join(broken)

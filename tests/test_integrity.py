"""Integrity of grading: submissions written to cheat or to break the grader.

Every attack in tests/attacks/<name>/lesson12/ replaces one function of the reference (the
rest of the submission is the reference itself). All of them go into ONE submission (each
replaces a different function) graded once, to stay fast. The check, for every test: a test
that calls a replaced function (found from the tests' source) or that belongs to a test
module whose import changed the grader's world must score zero; every other test keeps the
reference's outcome; and each attack left the reason we expect in the report.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from autograder import report
from autograder.engine import Limits, decide_isolation, grade_target

ROOT = Path(__file__).resolve().parent.parent
ATTACKS = ROOT / "tests" / "attacks"
ISOLATED = decide_isolation(Limits(), ROOT).mounts
# attack -> (function replaced, text expected in the reason of at least one attacked test)
EXPECTED = {
    "forged_results": ("paged_waste", "wrote a line"),
    "exit_zero": ("write_kv", "exited with code 0"),
    "monkeypatch": ("paged_attention_decode", "changed the grader's environment"),
    "read_reference": ("slot_mapping", "could not read the reference"),
    "escaping_fork": ("contiguous_waste", ""),
    "wrong_types": ("block_table_tensor", ""),
    "plugin_and_conftest": ("worst_case_blocks", "a pytest plugin was registered"),
    "fork_bomb": ("breakeven_hits", "fork failed"),
    "disk_fill": ("prompt_cache_cost", "disk full"),
}
# Unbounded without a uid and a private /tmp (fork_bomb, disk_fill), or expected to succeed
# without a mount namespace (read_reference: docs/THREAT_MODEL.md, "not defended").
NEEDS_ISOLATION = {"fork_bomb", "disk_fill", "read_reference"}


def replace_functions(module_source: str, attack_source: str) -> str:
    """The module with each top-level function the attack defines replaced by the attack's;
    the attack's other top-level statements appended."""
    tree, attack = ast.parse(module_source), ast.parse(attack_source)
    lines = module_source.splitlines(keepends=True)
    replaced, extra = {}, []
    for node in attack.body:
        segment = ast.get_source_segment(attack_source, node)
        if isinstance(node, ast.FunctionDef):
            replaced[node.name] = segment
        else:
            extra.append(segment)
    spans = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name in replaced:
            start = min([node.lineno] + [d.lineno for d in node.decorator_list]) - 1
            spans.append((start, node.end_lineno, replaced.pop(node.name)))
    assert not replaced, f"the reference has no top-level function {sorted(replaced)}"
    for start, end, text in sorted(spans, reverse=True):
        lines[start:end] = [text + "\n"]
    return "".join(lines) + "\n\n" + "\n".join(extra) + "\n"


def build_submission(dest: Path, attacks: list[str]) -> Path:
    shutil.copytree(ROOT / "solutions" / "lesson12", dest / "lesson12",
                    ignore=shutil.ignore_patterns("__pycache__", "test_*.py"))
    for name in attacks:
        for path in sorted((ATTACKS / name / "lesson12").iterdir()):
            if path.suffix == ".attack":
                shutil.copyfile(path, dest / "lesson12" / path.stem)
                continue
            target = dest / "lesson12" / path.name
            attack = path.read_text().replace("COURSE_ROOT", str(ROOT))
            target.write_text(replace_functions(target.read_text(), attack))
    return dest


def calling_tests(function: str) -> set[str]:
    """Node-id prefixes (module::test) of the tests whose body, or a module helper they
    call, names ``function``."""
    found = set()
    for folder, prefix in ((ROOT / "exercises" / "lesson12", "exercises/lesson12"),
                           (ROOT / "autograder" / "hidden" / "lesson12", "hidden/lesson12")):
        for path in sorted(folder.glob("test_*.py")):
            source = path.read_text()
            tree = ast.parse(source)
            helpers = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)
                       and not n.name.startswith("test_")
                       and function in ast.get_source_segment(source, n)}
            for node in tree.body:
                if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                    body = ast.get_source_segment(source, node)
                    if function in body or any(f"{h}(" in body for h in helpers):
                        found.add(f"{prefix}/{path.name}::{node.name}")
    return found


def _attacked(nodeid: str, prefixes: set[str]) -> bool:
    base = nodeid.split("[", 1)[0]
    return base in prefixes


@pytest.fixture(scope="module")
def reference():
    """The reference passes every test that is not skipped (tests/test_grading_engine.py
    checks that); collected here without running anything."""
    from autograder.engine import build_workspace, collect, copy_py as _copy_py
    ws = build_workspace(ROOT / "solutions", ["lesson12"])
    try:
        _copy_py(ROOT / "exercises" / "lesson12", ws.root / "stubs" / "lesson12",
                 lambda n: n.endswith(".py") and not n.startswith("test_"))
        tests = collect(ws, Limits(), ROOT, ws.root / "stubs",
                        decide_isolation(Limits(), ROOT))
    finally:
        shutil.rmtree(ws.root)
    for t in tests:
        if t.outcome != "skipped":
            t.outcome = "passed"
    return {t.nodeid: t for t in tests}


def _sleepers() -> list[str]:
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if "sleep 4242.5" in line and "ps -eo" not in line]


@pytest.fixture(scope="module")
def attacked(reference, tmp_path_factory):
    attacks = [a for a in EXPECTED if ISOLATED or a not in NEEDS_ISOLATION]
    target = build_submission(tmp_path_factory.mktemp("attacks"), attacks)
    results = grade_target(target, ["lesson12"], Limits(timeout_s=15, file_mb=8, disk_mb=48,
                                                         processes=96)).tests
    sleepers = _sleepers()
    for line in sleepers:  # an unisolated run cannot kill a daemon: do not leave it behind
        os.kill(int(line.split()[0]), 9)
    return attacks, {r.nodeid: r for r in results}, sleepers


@pytest.mark.slow
def test_each_attack_scores_zero_on_what_it_attacks_and_the_rest_stands(reference, attacked):
    attacks, results, _ = attacked
    assert set(results) == set(reference)
    prefixes = set().union(*(calling_tests(EXPECTED[a][0]) for a in attacks))
    tampered_modules = {n.split("::")[0] for n, r in results.items()
                        if "changed the grader's environment" in r.reason
                        and "plugin was registered" in r.reason}
    wrong = []
    for nodeid, r in results.items():
        if r.outcome == "skipped":
            continue
        if _attacked(nodeid, prefixes) or nodeid.split("::")[0] in tampered_modules:
            if r.outcome == "passed":
                wrong.append(f"{nodeid} passed although it calls an attacking function")
        elif r.outcome != reference[nodeid].outcome:
            wrong.append(f"{nodeid}: {r.outcome} ({r.reason}); the reference: "
                         f"{reference[nodeid].outcome}")
    assert not wrong, "\n".join(wrong)
    for attack in attacks:
        function, reason = EXPECTED[attack]
        mine = [r for n, r in results.items() if _attacked(n, calling_tests(function))]
        assert mine, f"no test calls {function}"
        if reason:
            assert any(reason in r.reason for r in mine), (
                attack, [r.reason for r in mine])
    # the plugin registered at import zeroes the test module whose import ran it (one per
    # child: after exit_zero ends a child, the next one imports batcher from another module)
    assert tampered_modules
    for module in tampered_modules:
        source = (ROOT / module.replace("hidden/", "autograder/hidden/")).read_text()
        assert "lesson12.batcher import" in source, module


@pytest.mark.slow
def test_the_report_says_what_happened(attacked):
    _, results, _ = attacked
    text = report.table(report.by_lesson(list(results.values())), show_failures=100)
    for words in ("wrote a line", "exited with code 0", "changed the grader's environment",
                  *(["could not read the reference"] if ISOLATED else [])):
        assert words in " ".join(text.split()), words


@pytest.mark.slow
@pytest.mark.skipif(not ISOLATED, reason="needs a grader running as root with mount namespaces")
def test_isolated_child_cannot_read_the_reference_and_leaves_no_process(attacked):
    _, results, sleepers = attacked
    reasons = [r.reason for n, r in results.items() if "slot_mapping" in n]
    assert all("PermissionError" in x or "FileNotFoundError" in x or "could not read" in x
               for x in reasons if x), reasons
    assert not sleepers, f"a daemon started by the submission outlived grading: {sleepers}"
    assert not list(Path("/tmp").glob("attack-fill-*")), "the disk fill reached the real /tmp"


def test_conftest_and_test_files_of_a_submission_are_not_used(tmp_path):
    from autograder.engine import build_workspace
    target = build_submission(tmp_path / "sub", ["plugin_and_conftest"])
    (target / "lesson12" / "test_extra.py").write_text("def test_free_points():\n    pass\n")
    ws = build_workspace(target, ["lesson12"])
    try:
        names = {p.name for p in (ws.submission / "lesson12").iterdir()}
        assert "conftest.py" not in names and "test_extra.py" not in names
        assert not list(ws.tests.rglob("test_extra.py"))
    finally:
        shutil.rmtree(ws.root)


def test_every_course_module_is_guarded(request, monkeypatch):
    """Each module of course/ (found on disk, not from the guard's own list) is snapshotted:
    replacing one of its functions is caught, so a new helper needs no change to the guard."""
    import importlib
    import inspect

    from autograder.guard import Guard, course_modules
    on_disk = {f"course.{p.stem}" for p in (ROOT / "course").glob("*.py") if p.stem != "__init__"}
    assert on_disk <= set(course_modules())
    guard = Guard(request.config.pluginmanager, request.config.hook)
    guard.snapshot()
    for name in sorted(on_disk):
        module = importlib.import_module(name)
        own = [n for n, v in vars(module).items() if not n.startswith("__")
               and inspect.isfunction(v) and v.__module__ == name]
        assert own, f"{name} defines no function to try"
        with monkeypatch.context() as m:
            m.setattr(module, own[0], lambda *a, **k: None)
            changed = guard.check()
        assert any(name in line and own[0] in line for line in changed), \
            f"replacing {name}.{own[0]} went unnoticed: {changed}"
        guard.restore()

"""Running the tests of one submission over as many children as it takes: collection
against the course's stubs, then children for the tests not yet run, until every test has
a result (retries after a crash, one time limit per hung import, the time budget).

A test that runs past the timeout is killed with its whole process group; a child that exits
or crashes mid-test (``os._exit``, a segfault, the memory or file-size limit) costs that test
only: a new child runs the tests not yet run. A submission module that hangs or kills the
child while it is being imported costs one time limit, once: later children refuse to import
it (``COURSE_BROKEN_MODULES``), so every test that needs it fails at once with that reason.
Only the first result of a test counts.
"""

from __future__ import annotations

import time
from pathlib import Path

from .child import run_child
from .results import GradingError, Limits, TestResult
from .sandbox import Isolation
from .workspace import Workspace, copy_tests


def collect(ws: Workspace, limits: Limits, course_root: Path, stubs: Path,
            iso: Isolation | None = None, **child) -> list[TestResult]:
    """Node ids and points of every test, collected against the course's own stubs.

    Collecting against the stubs (which always import) means a submission that cannot be
    imported still has a known list of tests, each scored zero with the import error.
    """
    found: dict[str, TestResult] = {}
    errors: list[str] = []

    def on_event(event):
        if event["event"] == "collected":
            test = TestResult(event["nodeid"], event["lesson"], event["points"], event["hidden"])
            if event.get("skip"):  # skipped whatever the code (a GPU test without a GPU)
                test.outcome, test.reason = "skipped", event["skip"]
            found[event["nodeid"]] = test
        elif event["event"] in ("collect_error", "child_error", "tamper"):
            errors.append(f"{event.get('nodeid', '')}: {event['reason']}")

    saved = ws.submission
    ws.submission = stubs
    try:
        run_child(ws, ["--collect-only", "exercises", "hidden"], limits, course_root,
                  on_event, "collect", iso, **child)
    finally:
        ws.submission = saved
    if errors:
        raise GradingError("the course's own tests do not collect:\n" + "\n".join(errors))
    return list(found.values())


def _selection(tests: list[TestResult], pending: list[str]) -> list[str]:
    """Command-line selection for the pending tests: a whole module by its path when all of
    its tests are pending (a module that fails to import then reports an import error, not
    'not found'), single node ids otherwise."""
    modules: dict[str, list[str]] = {}
    for test in tests:
        if test.outcome != "skipped":  # skipped at collection (no GPU): never selected alone
            modules.setdefault(test.nodeid.split("::", 1)[0], []).append(test.nodeid)
    wanted = set(pending)
    selection = []
    for module, ids in modules.items():
        runnable = [i for i in ids if i in wanted]
        if not runnable:
            continue
        if len(runnable) == len(ids):
            selection.append(module)
        else:
            selection.extend(runnable)
    return selection


def _module_file(name: str) -> str:
    """``exercises.lesson12.allocator`` -> ``lesson12/allocator.py``."""
    parts = name.split(".")
    return "/".join(parts[1:]) + ".py" if len(parts) == 3 else name


def budget_reason(budget_s: float) -> str:
    return (f"not run: the submission's time budget of {budget_s:g} s ran out "
            "(tests that ran too long or hung before this one)")


def run_tests(ws: Workspace, tests: list[TestResult], limits: Limits,
              course_root: Path, iso: Isolation | None = None,
              lessons: list[str] | None = None, *, deadline: float | None = None,
              budget_s: float | None = None, **child) -> tuple[list[TestResult], str | None]:
    """Run ``tests`` on the submission in the workspace; every test ends with a result.

    Returns the tests and, when the submission's time budget ran out (``deadline``, a
    ``time.monotonic()`` value, ``budget_s`` seconds after the start), a note saying so. A test during which a forged line reached
    the grader, and every test of a module whose import changed the grader's world, score
    zero whatever the child reports afterwards.
    """
    by_id = {t.nodeid: t for t in tests}
    finished: set[str] = {t.nodeid for t in tests if t.outcome == "skipped"}
    module_errors: dict[str, str] = {}
    penalties: dict[str, str] = {}  # nodeid -> reason: zero whatever else happens
    broken: dict[str, str] = {}  # submission module -> why it is not imported again
    budget_note = None
    budget_s = limits.budget_s if budget_s is None else budget_s
    attempt = 0

    def penalize(nodeid: str, reason: str) -> None:
        if nodeid in by_id:
            penalties.setdefault(nodeid, reason)
            test = by_id[nodeid]
            test.outcome, test.reason = "failed", penalties[nodeid]

    def mark_broken(event) -> None:
        name = event.get("culprit")
        if name and name not in broken:
            broken[name] = (f"{_module_file(name)}: {event['reason']}; not imported again "
                            "for the other tests")

    while True:
        pending = [t.nodeid for t in tests if t.nodeid not in finished]
        if not pending:
            break
        if deadline is not None and time.monotonic() > deadline:
            budget_note = (f"the submission's time budget of {budget_s:g} s ran out; "
                           f"{len(pending)} test(s) not run score zero")
            for nodeid in pending:
                by_id[nodeid].reason = budget_reason(budget_s)
                finished.add(nodeid)
            break
        attempt += 1
        progress = len(finished)
        child_error: list[dict] = []
        out_of_time: list[dict] = []

        def on_event(event):
            kind = event["event"]
            if kind == "result" and event["nodeid"] in by_id:
                nodeid = event["nodeid"]
                mark_broken(event)
                if nodeid in finished:
                    return  # only the first result counts
                test = by_id[nodeid]
                if nodeid in penalties:
                    test.outcome, test.reason = "failed", penalties[nodeid]
                else:
                    test.outcome, test.reason = event["outcome"], event.get("reason", "")
                finished.add(nodeid)
            elif kind == "collect_error":
                module_errors[event["nodeid"]] = event["reason"]
            elif kind == "tamper":
                for nodeid in by_id:
                    if nodeid.split("::", 1)[0] == event["nodeid"]:
                        penalize(nodeid, event["reason"])
            elif kind == "forged":
                if event.get("nodeid"):
                    penalize(event["nodeid"], event["reason"])
                elif event.get("module"):
                    for nodeid in by_id:
                        if nodeid.split("::", 1)[0] == event["module"]:
                            penalize(nodeid, event["reason"])
            elif kind == "child_error":
                mark_broken(event)
                child_error.append(event)
            elif kind == "budget":
                out_of_time.append(event)

        if lessons is not None and attempt > 1:
            copy_tests(ws, lessons, course_root)
        run_child(ws, _selection(tests, pending), limits, course_root, on_event,
                  f"run{attempt}", iso, broken=dict(broken), deadline=deadline, **child)
        for nodeid in pending:
            module = nodeid.split("::", 1)[0]
            if nodeid not in finished and module in module_errors:
                by_id[nodeid].reason = ("could not import the code under test: "
                                        + module_errors[module])
                finished.add(nodeid)
        for error in child_error:
            if error.get("between"):
                continue  # ended between tests: the tests not run yet run in a new child
            # The child stalled or died while importing: blame the module it was importing,
            # or every test still pending when that is unknown.
            for nodeid in pending:
                if nodeid not in finished and error.get("module") in (
                        None, nodeid.split("::", 1)[0]):
                    by_id[nodeid].reason = error["reason"]
                    finished.add(nodeid)
        if out_of_time:
            running = out_of_time[0].get("nodeid")
            if running in by_id and running not in finished:
                by_id[running].reason = (f"the submission's time budget of {budget_s:g}"
                                         " s ran out during this test")
                finished.add(running)
            continue  # the check at the top of the loop fails the tests not run
        if len(finished) == progress:
            for nodeid in pending:
                if nodeid not in finished:
                    by_id[nodeid].reason = "the test process ended before running this test"
                    finished.add(nodeid)
    for nodeid, reason in penalties.items():
        by_id[nodeid].outcome, by_id[nodeid].reason = "failed", reason
    return tests, budget_note

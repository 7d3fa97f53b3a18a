"""Run the course's tests on a submission in a supervised child process.

Data flow: target folder -> workspace (a private copy) -> pytest in a child -> event stream
-> per-test results. The grader never imports the submission itself.

The workspace holds copies of the course's tests (visible and hidden), its shared packages
(``course``, ``hardware_fixtures``, the pytest plugins of ``autograder``) and the
submission's lesson modules (``lessonNN/*.py`` only: no conftest, no tests of its own). The
child starts with a clean environment, the workspace first on ``sys.path`` and the course's
own source folder removed from it, so the reference solutions are not importable there.

Supervision: the child streams ``start``/``result`` events (``autograder.recorder``). A test
that runs past the timeout is killed with its whole process group; a child that exits or
crashes mid-test (``os._exit``, a segfault, the memory or file-size limit) costs that test
only: the runner starts a new child for the tests not yet run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_PACKAGES = ("course", "hardware_fixtures")
PLUGIN_MODULES = ("__init__.py", "pytest_impl.py", "recorder.py")
_LESSON = re.compile(r"lesson\d\d$")


@dataclass
class TestResult:
    nodeid: str
    lesson: str
    points: float
    hidden: bool
    outcome: str = "failed"  # passed | failed | skipped
    reason: str = ""

    @property
    def score(self) -> float:
        return self.points if self.outcome == "passed" else 0.0


@dataclass
class Limits:
    timeout_s: float = 60.0  # per test
    collect_timeout_s: float = 120.0  # importing one test module (and the code it imports)
    memory_mb: int = 8192  # address space of the child
    file_mb: int = 256  # largest file the child may write (stdout flood, disk fill)
    threads: int = 0  # torch/OpenMP threads in the child; 0 leaves the default


@dataclass
class Workspace:
    root: Path
    tests: Path = field(init=False)
    lib: Path = field(init=False)
    submission: Path = field(init=False)

    def __post_init__(self):
        self.tests, self.lib = self.root / "tests", self.root / "lib"
        self.submission = self.root / "submission"


class GradingError(Exception):
    """The grader cannot run (a missing folder, no lessons): a message for the instructor."""


def available_lessons(course_root: Path = REPO_ROOT) -> list[str]:
    return sorted(p.name for p in (course_root / "exercises").iterdir()
                  if p.is_dir() and _LESSON.match(p.name))


def submitted_lessons(target: Path) -> list[str]:
    return sorted(p.name for p in target.iterdir() if p.is_dir() and _LESSON.match(p.name))


def _copy_py(src: Path, dst: Path, keep) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for path in sorted(src.iterdir()):
        if path.is_file() and keep(path.name):
            shutil.copyfile(path, dst / path.name)


def build_workspace(target: Path, lessons: list[str], course_root: Path = REPO_ROOT) -> Workspace:
    ws = Workspace(Path(tempfile.mkdtemp(prefix="course-grade-")))
    for name in SHARED_PACKAGES:
        shutil.copytree(course_root / name, ws.lib / name,
                        ignore=shutil.ignore_patterns("__pycache__"))
    _copy_py(course_root / "autograder", ws.lib / "autograder", lambda n: n in PLUGIN_MODULES)
    (ws.tests / "exercises").mkdir(parents=True)
    (ws.tests / "exercises" / "__init__.py").write_text("")
    (ws.tests / "hidden").mkdir()
    (ws.tests / "hidden" / "__init__.py").write_text("")
    is_test = lambda n: n.startswith("test_") or n in ("conftest.py", "__init__.py") \
        or n.endswith((".json", ".txt", ".toml"))
    for lesson in lessons:
        _copy_py(course_root / "exercises" / lesson, ws.tests / "exercises" / lesson, is_test)
        hidden = course_root / "autograder" / "hidden" / lesson
        if hidden.is_dir():
            _copy_py(hidden, ws.tests / "hidden" / lesson, is_test)
        submitted = target / lesson
        if submitted.is_dir():
            _copy_py(submitted, ws.submission / lesson,
                     lambda n: n.endswith(".py") and not n.startswith("test_")
                     and n != "conftest.py")
        else:
            (ws.submission / lesson).mkdir(parents=True)
    _write_ini(ws, course_root)
    (ws.root / "home").mkdir()
    (ws.root / "tmp").mkdir()
    return ws


def _write_ini(ws: Workspace, course_root: Path) -> None:
    config = tomllib.loads((course_root / "pyproject.toml").read_text())
    options = config["tool"]["pytest"]["ini_options"]
    lines = ["[pytest]", "addopts = -p autograder.pytest_impl -p autograder.recorder",
             "markers ="]
    lines += [f"    {m}" for m in options.get("markers", [])]
    lines += ["filterwarnings ="] + [f"    {w}" for w in options.get("filterwarnings", [])]
    (ws.tests / "pytest.ini").write_text("\n".join(lines) + "\n")


_BOOTSTRAP = """
import os, sys
ws, course_root = sys.argv[1], sys.argv[2]
drop = {os.path.realpath(course_root), os.path.realpath(os.getcwd())}
sys.path[:] = [p for p in sys.path if os.path.realpath(p or '.') not in drop]
sys.path[:0] = [os.path.join(ws, 'lib'), os.path.join(ws, 'tests')]
import pytest
sys.exit(pytest.main(sys.argv[3:]))
"""


def _child_env(ws: Workspace, limits: Limits) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k in ("PATH", "LANG", "LC_ALL", "CUDA_VISIBLE_DEVICES", "COURSE_CACHE_DIR",
                    "NCCL_NVLS_ENABLE", "TORCH_SYMM_MEM_DISABLE_MULTICAST", "TRITON_INTERPRET")}
    env.setdefault("COURSE_CACHE_DIR", str(Path.home() / ".cache" / "llm-inference-course"))
    env.update(HOME=str(ws.root / "home"), TMPDIR=str(ws.root / "tmp"), PYTHONHASHSEED="0",
               HYPOTHESIS_PROFILE="course", PYTHONDONTWRITEBYTECODE="1",
               PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    if limits.threads:
        env.update(OMP_NUM_THREADS=str(limits.threads), MKL_NUM_THREADS=str(limits.threads))
    return env


def _limit(limits: Limits):
    def apply():
        import resource
        os.setsid()
        mem = limits.memory_mb * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
        size = limits.file_mb * 2**20
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    return apply


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _read_events(path: Path, offset: int) -> tuple[list[dict], int]:
    if not path.exists():
        return [], offset
    with open(path, "rb") as fh:
        fh.seek(offset)
        data = fh.read()
    events, used = [], 0
    for line in data.splitlines(keepends=True):
        if not line.endswith(b"\n"):
            break  # half-written line: read it next time
        used += len(line)
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return events, offset + used


def _exit_reason(code: int, log: Path) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        meaning = {"SIGKILL": "killed (out of memory?)", "SIGSEGV": "crashed (segfault)",
                   "SIGXFSZ": "wrote more output than allowed",
                   "SIGABRT": "aborted"}.get(name, "stopped")
        return f"the test process {meaning} [{name}]"
    tail = ""
    if log.exists():
        text = log.read_bytes()[-4000:].decode("utf-8", "replace").strip().splitlines()
        tail = " / ".join(line for line in text[-3:] if line.strip())
    return f"the test process exited with code {code} during this test" + (
        f" (last output: {tail[:300]})" if tail else "")


def run_child(ws: Workspace, args: list[str], limits: Limits, course_root: Path,
              on_event, log_name: str) -> None:
    """Start pytest in a child and feed its events to ``on_event`` until it ends.

    ``on_event(event) -> None``; the callback may raise ``_Kill(reason)`` to stop the child.
    Hangs are detected here: a test running longer than ``limits.timeout_s`` or a module
    collecting longer than ``limits.collect_timeout_s``.
    """
    events_path = ws.root / f"{log_name}.jsonl"
    log = ws.root / f"{log_name}.log"
    cmd = [sys.executable, "-s", "-E", "-c", _BOOTSTRAP, str(ws.root), str(course_root),
           "-c", str(ws.tests / "pytest.ini"), "--rootdir", str(ws.tests),
           "-p", "no:cacheprovider", "--continue-on-collection-errors", "-q",
           "--impl", str(ws.submission), "--record", str(events_path), *args]
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, cwd=ws.tests, env=_child_env(ws, limits), stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                preexec_fn=_limit(limits))
    offset, running, since = 0, None, time.monotonic()
    collecting, module = True, None
    while True:
        events, offset = _read_events(events_path, offset)
        for event in events:
            kind = event["event"]
            if kind == "start":
                running, since, collecting = event["nodeid"], time.monotonic(), False
            elif kind == "result":
                running, since = None, time.monotonic()
            elif kind == "collecting":
                module, since = event["nodeid"], time.monotonic()
            elif kind in ("collected", "collect_error"):
                since = time.monotonic()
            on_event(event)
        code = proc.poll()
        if code is not None:
            events, offset = _read_events(events_path, offset)
            for event in events:
                on_event(event)
                if event["event"] == "result":
                    running = None
            if running is not None:
                on_event({"event": "result", "nodeid": running, "outcome": "failed",
                          "reason": _exit_reason(code, log)})
            elif code not in (0, 1, 5) and collecting:
                on_event({"event": "child_error", "module": module,
                          "reason": _exit_reason(code, log).replace("during this test",
                                                                    "while importing")})
            return
        limit = limits.collect_timeout_s if collecting else limits.timeout_s
        if time.monotonic() - since > limit:
            _kill(proc)
            if running is not None:
                on_event({"event": "result", "nodeid": running, "outcome": "failed",
                          "reason": f"timed out after {limits.timeout_s:g} s (an infinite "
                                    "loop, or far too slow?)"})
            else:
                on_event({"event": "child_error", "module": module,
                          "reason": f"importing the code did not finish in {limit:g} s "
                                    "(an infinite loop at import time?)"})
            return
        time.sleep(0.05)


def collect(ws: Workspace, limits: Limits, course_root: Path, stubs: Path) -> list[TestResult]:
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
        elif event["event"] in ("collect_error", "child_error"):
            errors.append(f"{event.get('nodeid', '')}: {event['reason']}")

    saved = ws.submission
    ws.submission = stubs
    try:
        run_child(ws, ["--collect-only", "exercises", "hidden"], limits, course_root,
                  on_event, "collect")
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


def run_tests(ws: Workspace, tests: list[TestResult], limits: Limits,
              course_root: Path) -> list[TestResult]:
    """Run ``tests`` on the submission in the workspace; every test ends with a result."""
    by_id = {t.nodeid: t for t in tests}
    finished: set[str] = {t.nodeid for t in tests if t.outcome == "skipped"}
    module_errors: dict[str, str] = {}
    attempt = 0
    while True:
        pending = [t.nodeid for t in tests if t.nodeid not in finished]
        if not pending:
            break
        attempt += 1
        progress = len(finished)
        child_error: list[str] = []

        def on_event(event):
            kind = event["event"]
            if kind == "result" and event["nodeid"] in by_id:
                test = by_id[event["nodeid"]]
                test.outcome, test.reason = event["outcome"], event.get("reason", "")
                finished.add(test.nodeid)
            elif kind == "collect_error":
                module_errors[event["nodeid"]] = event["reason"]
            elif kind == "child_error":
                child_error.append(event)

        run_child(ws, _selection(tests, pending), limits, course_root, on_event,
                  f"run{attempt}")
        for nodeid in pending:
            module = nodeid.split("::", 1)[0]
            if nodeid not in finished and module in module_errors:
                by_id[nodeid].reason = ("could not import the code under test: "
                                        + module_errors[module])
                finished.add(nodeid)
        for error in child_error:
            # The child stalled or died while importing: blame the module it was importing,
            # or every test still pending when that is unknown.
            for nodeid in pending:
                if nodeid not in finished and error.get("module") in (
                        None, nodeid.split("::", 1)[0]):
                    by_id[nodeid].reason = error["reason"]
                    finished.add(nodeid)
        if len(finished) == progress:
            for nodeid in pending:
                if nodeid not in finished:
                    by_id[nodeid].reason = "the test process ended before running this test"
                    finished.add(nodeid)
    return tests


def grade_target(target: Path, lessons: list[str] | None = None, limits: Limits | None = None,
                 course_root: Path = REPO_ROOT, keep_workspace: bool = False) -> list[TestResult]:
    """Grade one submission folder; returns one result per test, in collection order."""
    limits = limits or Limits()
    target = Path(target)
    if not target.is_dir():
        raise GradingError(f"{target}: no such folder. Give a folder that holds lessonNN/ "
                           "packages (for example ./exercises or a student's copy).")
    known = available_lessons(course_root)
    if lessons is None:
        lessons = [lesson for lesson in submitted_lessons(target) if lesson in known]
        if not lessons:
            raise GradingError(f"{target} holds no lessonNN/ folder that the course has "
                               f"(the course has {', '.join(known)}).")
    else:
        unknown = [lesson for lesson in lessons if lesson not in known]
        if unknown:
            raise GradingError(f"no such lesson in the course: {', '.join(unknown)} "
                               f"(the course has {', '.join(known)}).")
    ws = build_workspace(target.resolve(), lessons, course_root)
    try:
        stubs = ws.root / "stubs"
        for lesson in lessons:
            _copy_py(course_root / "exercises" / lesson, stubs / lesson,
                     lambda n: n.endswith(".py") and not n.startswith("test_"))
        tests = collect(ws, limits, course_root, stubs)
        return run_tests(ws, tests, limits, course_root)
    finally:
        if not keep_workspace:
            shutil.rmtree(ws.root, ignore_errors=True)

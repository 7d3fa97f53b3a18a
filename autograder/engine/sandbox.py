"""Keeping the grading child apart from the grader: an unprivileged uid, a private mount
namespace (through ctypes: unshare and mount) where the course's secrets are hidden and
``/tmp``, ``/var/tmp``, ``/dev/shm`` are small private tmpfs, resource limits, and killing
the child with everything it started.

When the grader runs as root (CI, a container) the child runs as a uid of its own, in a
private mount namespace where the course's secrets (``solutions/``, ``.git``, the
instructor's tests) are hidden under empty mounts, with a process limit (a fork bomb stops
there); every process of that uid is killed when the child ends (a fork that outlives its
test dies with it). The child also dies with the grader (``PR_SET_PDEATHSIG``), even when
the grader is killed outright.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from course.cache import model_cache_dir

from .results import Limits

# Folders of the course that the grading child must not read (hidden when it runs as root).
SECRET_DIRS = ("solutions", ".git", "autograder/hidden", "tests", "source", "nbgrader",
               "release")
PRIVATE_PLACES = ("/tmp", "/var/tmp", "/dev/shm")


@dataclass
class Isolation:
    """How the child is kept apart from the grader; decided once per grading run."""

    uid: int | None = None  # run the child as this uid (None: as the grader's own user)
    mounts: bool = False  # private mount namespace with secrets hidden and a private /tmp
    hidden: tuple[str, ...] = ()  # absolute folders hidden from the child
    reveal: tuple = ()  # (folder covered, (paths bound back read-only)), see enter_mounts
    needed: tuple[str, ...] = ()  # what the child reads outside the workspace, see needed_paths
    note: str = ""  # one line for the report

    @property
    def label(self) -> str:
        return self.note


_libc = None


def _load_libc():
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def _libc_call(name: str, *args) -> None:
    _load_libc()
    if getattr(_libc, name)(*args) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{name}: {os.strerror(err)}")


_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_REMOUNT, _MS_BIND, _MS_REC, _MS_PRIVATE = \
    1, 2, 4, 32, 4096, 16384, 1 << 18
_CLONE_NEWNS = 0x00020000
_PR_SET_PDEATHSIG = 1


def _mount(source, target, fstype, flags, data) -> None:
    _libc_call("mount", source and source.encode(), str(target).encode(),
               fstype and fstype.encode(), ctypes.c_ulong(flags), data and data.encode())


def _bind_back(fd: int, path: str) -> None:
    """Bind the file or folder held open as ``fd`` at ``path``, read-only (creating the
    mount point on the tmpfs that now covers it)."""
    if os.path.isdir(f"/proc/self/fd/{fd}"):
        os.makedirs(path, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        open(path, "a").close()
    _mount(f"/proc/self/fd/{fd}", path, None, _MS_BIND | _MS_REC, None)
    _mount(None, path, None, _MS_BIND | _MS_REMOUNT | _MS_RDONLY, None)


def enter_mounts(ws_root: Path, hidden: tuple[str, ...], disk_mb: int, uid: int,
                 reveal: tuple[tuple[str, tuple[str, ...]], ...] = (),
                 needed: tuple[str, ...] = ()) -> None:
    """In the child (as root, before exec): private mounts, secrets hidden, private /tmp.

    ``reveal``: (a folder the child may not traverse, such as /root, (paths under it the
    child needs, such as the Python installation)): the folder is covered by an empty
    tmpfs and only those paths are bound back, read-only. ``needed``: every path the child
    must read outside the workspace (see ``needed_paths``)."""
    _libc_call("unshare", _CLONE_NEWNS)
    _mount(None, "/", None, _MS_REC | _MS_PRIVATE, None)
    keep = os.open(ws_root, os.O_PATH | os.O_DIRECTORY)
    kept = {path: os.open(path, os.O_PATH) for _, paths in reveal for path in paths}
    # Needed paths (the interpreter, its packages, the model cache) that live under a folder
    # about to be replaced by a private tmpfs (a course cloned under /tmp, say): bound back.
    in_tmp = {path: os.open(path, os.O_PATH) for path in needed
              if any(path == place or path.startswith(place + "/") for place in PRIVATE_PLACES)}
    for folder in hidden:
        _mount("tmpfs", folder, "tmpfs", _MS_RDONLY | _MS_NOSUID | _MS_NODEV, "size=4k,mode=000")
    for cover, paths in reveal:
        _mount("tmpfs", cover, "tmpfs", _MS_NOSUID | _MS_NODEV, "size=64k,mode=755")
        for path in paths:
            _bind_back(kept[path], path)
        _mount(None, cover, None, _MS_REMOUNT | _MS_RDONLY | _MS_NOSUID | _MS_NODEV, None)
    size = f"size={disk_mb}m,mode=1777"
    for place in PRIVATE_PLACES:
        if os.path.isdir(place):
            _mount("tmpfs", place, "tmpfs", _MS_NOSUID | _MS_NODEV, size)
    # the workspace itself lived under /tmp: bind it back at the same path
    parts = ws_root.parts
    if len(parts) > 1 and "/" + parts[1] in PRIVATE_PLACES:
        os.makedirs(ws_root, exist_ok=True)
        _mount(f"/proc/self/fd/{keep}", ws_root, None, _MS_BIND | _MS_REC, None)
    for path, fd in in_tmp.items():
        _bind_back(fd, path)
    for fd in [keep, *kept.values(), *in_tmp.values()]:
        os.close(fd)
    for sub in ("home", "tmp"):
        path = Path("/tmp") / f"course-{sub}"
        path.mkdir(mode=0o700, exist_ok=True)
        os.chown(path, uid, uid)


def needed_paths(cache: Path | None = None) -> tuple[str, ...]:
    """What the child must read outside the workspace: the interpreter and its packages,
    and the course's model cache (``cache``, which must exist by now: a folder created
    after the plan was made would stay hidden from the child)."""
    cache = Path(os.path.abspath(cache or model_cache_dir()))
    paths = {os.path.realpath(sys.base_prefix), os.path.realpath(sys.prefix),
             os.path.realpath(sys.executable)}
    if os.path.isdir(cache):
        paths.add(os.path.realpath(cache))
    return tuple(p for p in sorted(paths)  # not those inside another
                 if not any(p != q and p.startswith(q.rstrip("/") + "/") for q in paths))


def _reveal_plan(needed: tuple[str, ...]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    plan: dict[str, list[str]] = {}
    for path in needed:
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


def decide_isolation(limits: Limits, course_root: Path, slot: int | None = None,
                     cache: Path | None = None) -> Isolation:
    """``slot``: a class grader's worker number (its uid is then its parent's range + slot,
    so concurrent workers never share a uid). ``cache``: the model cache (default: the
    course's), which must be filled before this is called (see ``needed_paths``)."""
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
        needed = needed_paths(cache)
        return Isolation(uid, True, hidden, _reveal_plan(needed), needed, (
            "child runs as an unprivileged uid of its own in a private mount namespace "
            f"({len(hidden)} course folders hidden, private /tmp)"))
    if not _others_can_run_python():
        return Isolation(note=(
            "no mount namespace here and the Python installation is private to root: the "
            "child runs as root and can read the course folders (see docs/THREAT_MODEL.md)"))
    readable = [h for h in hidden if _world_readable(Path(h))]
    return Isolation(uid, False, (), (), (), (
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


def preexec(limits: Limits, iso: Isolation | None = None, ws_root: Path | None = None):
    """The function the child runs between fork and exec: its own session, resource
    limits, then (isolated) the mounts and the drop to its uid; last, death with the
    grader (set after the uid change, which would clear it)."""
    parent = os.getpid()
    if os.name == "posix":
        _load_libc()  # in the grader: nothing to load between fork and exec

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
                enter_mounts(ws_root, iso.hidden, limits.disk_mb, iso.uid, iso.reveal,
                             iso.needed)
            resource.setrlimit(resource.RLIMIT_NPROC, (limits.processes, limits.processes))
            os.setgroups([])
            os.setgid(iso.uid)
            os.setuid(iso.uid)
        if sys.platform.startswith("linux"):
            _libc_call("prctl", _PR_SET_PDEATHSIG, ctypes.c_ulong(signal.SIGKILL), 0, 0, 0)
            if os.getppid() != parent:  # the grader died before the line above
                os._exit(1)
    return apply


def kill(proc: subprocess.Popen) -> None:
    """Kill the child's whole process group (forks that outlive the child) and reap it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def kill_uid(uid: int) -> None:
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

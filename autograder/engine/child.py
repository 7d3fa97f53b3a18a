"""Supervising one grading child: start pytest in it (clean environment, limits, the
signed pipe), feed its events on, and end it when a test or an import runs past its time
limit, when the submission's time budget runs out, or when it dies.

The child starts with a clean environment, the workspace first on ``sys.path`` and the
course's own source folder removed from it, so the reference solutions are not importable
there. A child that ends without its signed ``done`` line did not finish (``os._exit(0)`` is
no pass).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from .channel import FORGED, Channel
from .results import Limits
from .sandbox import Isolation, kill, kill_uid, preexec
from .workspace import Workspace

_BOOTSTRAP = """
import os, sys
ws, course_root = sys.argv[1], sys.argv[2]
drop = {os.path.realpath(course_root), os.path.realpath(os.getcwd())}
sys.path[:] = [p for p in sys.path if os.path.realpath(p or '.') not in drop]
sys.path[:0] = [os.path.join(ws, 'lib'), os.path.join(ws, 'tests')]
import pytest
sys.exit(pytest.main(sys.argv[3:]))
"""

# Starting pytest, the plugins and torch, before the first test module (no submission code
# runs then): slow on a busy machine, never the submission's fault, so never its time limit.
STARTUP_S = 600.0

# Read by ``autograder.pytest_impl`` in the child: submission modules that already failed to
# import in an earlier child (a hang, a crash), with the reason; importing them fails at once.
BROKEN_ENV = "COURSE_BROKEN_MODULES"


def child_env(ws: Workspace, limits: Limits, iso: Isolation | None = None,
              cache: Path | None = None, broken: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k in ("PATH", "LANG", "LC_ALL", "CUDA_VISIBLE_DEVICES",
                    "NCCL_NVLS_ENABLE", "TORCH_SYMM_MEM_DISABLE_MULTICAST", "TRITON_INTERPRET")}
    if cache is not None:
        env["COURSE_CACHE_DIR"] = str(cache)
    home, tmp = ws.root / "home", ws.root / "tmp"
    if iso is not None and iso.mounts:
        home, tmp = Path("/tmp/course-home"), Path("/tmp/course-tmp")
    env.update(HOME=str(home), TMPDIR=str(tmp), PYTHONHASHSEED="0",
               HYPOTHESIS_PROFILE="course", COURSE_GRADING="1", PYTHONDONTWRITEBYTECODE="1",
               PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    if broken:
        env[BROKEN_ENV] = json.dumps(broken, sort_keys=True)
    if limits.threads:
        env.update(OMP_NUM_THREADS=str(limits.threads), MKL_NUM_THREADS=str(limits.threads))
    return env


def exit_reason(code: int, log: Path) -> str:
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
              on_event, log_name: str, iso: Isolation | None = None, *,
              cache: Path | None = None, broken: dict[str, str] | None = None, deadline: float | None = None) -> None:
    """Start pytest in a child and feed its events to ``on_event`` until it ends.

    ``on_event(event) -> None``. Hangs are detected here: a test running longer than
    ``limits.timeout_s`` or a module collecting longer than ``limits.collect_timeout_s``
    (the clock starts when the module's collection starts: the child's own start-up is
    allowed ``STARTUP_S``);
    so is the end of the submission's time budget (``deadline``, a ``time.monotonic()``
    value: the event ``budget``). Besides the recorder's events it sees ``forged`` (a line
    that failed the signature check, with the test that was running) and ``child_error``;
    both ``child_error`` and a timed-out ``result`` name the submission module that was
    being imported when it happened, if any (``culprit``: a hang or a crash at import).
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
            proc = subprocess.Popen(cmd, cwd=ws.tests,
                                    env=child_env(ws, limits, iso, cache, broken),
                                    stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, pass_fds=(event_w, key_r),
                                    preexec_fn=preexec(limits, iso, ws.root))
    finally:
        os.close(event_w)
        os.close(key_r)
    channel = Channel(event_r, key)
    running, since = None, time.monotonic()
    collecting, module, done = True, None, False
    importing: list[str] = []  # submission modules being imported, innermost last

    def feed(items):
        nonlocal running, since, collecting, module, done
        for kind_of_item, item in items:
            if kind_of_item == "forged":
                on_event({"event": "forged", "nodeid": running, "module": module,
                          "reason": FORGED.format(what=item)})
                continue
            event = item
            kind = event.get("event")
            if kind == "importing":
                importing.append(str(event.get("module")))
                continue
            if kind == "imported":
                name = str(event.get("module"))
                if name in importing:
                    del importing[len(importing) - 1 - importing[::-1].index(name)]
                continue
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

    def culprit() -> str | None:
        return importing[-1] if importing else None

    try:
        while True:
            feed(channel.read())
            code = proc.poll()
            if code is not None:
                time.sleep(0.02)
                feed(channel.read())
                if running is not None:
                    on_event({"event": "result", "nodeid": running, "outcome": "failed",
                              "reason": exit_reason(code, log), "culprit": culprit()})
                elif not done and collecting:
                    on_event({"event": "child_error", "module": module, "culprit": culprit(),
                              "reason": exit_reason(code, log).replace("during this test",
                                                                       "while importing")})
                elif not done:
                    on_event({"event": "child_error", "module": None, "between": True,
                              "reason": exit_reason(code, log).replace(
                                  "during this test", "between tests")})
                return
            now = time.monotonic()
            if deadline is not None and now > deadline:
                kill(proc)
                on_event({"event": "budget", "nodeid": running})
                return
            if collecting and module is None:  # starting up: the course's code, not graded
                limit = max(limits.collect_timeout_s, STARTUP_S)
            else:
                limit = limits.collect_timeout_s if collecting else limits.timeout_s
            if now - since > limit:
                kill(proc)
                if running is not None:
                    on_event({"event": "result", "nodeid": running, "outcome": "failed",
                              "culprit": culprit(),
                              "reason": f"timed out after {limits.timeout_s:g} s (an "
                                        "infinite loop, or far too slow?)"})
                else:
                    on_event({"event": "child_error", "module": module, "culprit": culprit(),
                              "reason": f"importing the code did not finish in {limit:g} s "
                                        "(an infinite loop at import time?)"})
                return
            time.sleep(0.05)
    finally:
        kill(proc)  # the whole process group: forks that outlive the child
        if iso.uid is not None:
            kill_uid(iso.uid)
        channel.close()

"""A fork server for the planted-bug checks: one process per test worker imports the heavy
libraries once (torch, numpy, hypothesis, transformers), then forks a fresh child per mutation
that runs ``pytest.main`` on the mutated copy. Each child starts from the same clean state a new
``python -m pytest`` would (nothing of the course is imported before the fork), so a mutation's
result is what a separate pytest process gives, without paying the interpreter and import start
(several seconds) once per mutation.

Protocol: one JSON request per line on stdin, ``{"args": [...], "log": path, "timeout": s}``;
one JSON reply per line on stdout, ``{"rc": exit code}`` (-9 when the child ran past its
timeout and was killed with its process group). The child's output goes to ``log``.

Run as ``python tests/mutations/forkserver.py`` with the repository root as the working
directory.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import traceback


def _preload() -> None:
    import numpy  # noqa: F401
    import pytest  # noqa: F401
    import hypothesis  # noqa: F401
    import torch  # noqa: F401
    try:  # the real-model graders' oracle: the slowest import of all
        import transformers  # noqa: F401
        from transformers import LlamaConfig, LlamaForCausalLM  # noqa: F401
    except ImportError:
        pass


def _child(args: list[str], log: str) -> None:
    try:
        os.setpgid(0, 0)  # its own group, so a timeout kills what it started too
        out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(out, 1)
        os.dup2(out, 2)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        sys.stdin = open(os.devnull)
        import pytest
        code = int(pytest.main(args))
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:  # noqa: BLE001 - report anything, never return into the server loop
        traceback.print_exc()
        sys.stderr.flush()
        code = 70
    os._exit(code)


def run_one(args: list[str], log: str, timeout: float) -> int:
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        _child(args, log)
    deadline = time.monotonic() + timeout
    code = None
    while code is None:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            code = os.waitstatus_to_exitcode(status)
        elif time.monotonic() > deadline:
            code = -9
        else:
            time.sleep(0.02)
    try:  # whatever the child left running (ranks, servers) goes with it
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    if code == -9:
        os.waitpid(pid, 0)
    return code


def main() -> None:
    sys.path[0] = os.getcwd()  # as `python -m pytest` run from the repository root (not this folder)
    _preload()
    for line in sys.stdin:
        request = json.loads(line)
        code = run_one(request["args"], request["log"], float(request["timeout"]))
        sys.stdout.write(json.dumps({"rc": code}) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()

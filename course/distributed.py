"""Run a function on N torch.distributed ranks from inside a test: `run_ranks`.

Learners do not write this file. A test calls::

    results = run_ranks(fn, 2, x, w)      # fn(rank, world_size, x, w) runs in 2 processes

and gets back the list of what each rank returned, in rank order. Each rank is a fresh
process (start method 'spawn', so nothing of the test process is shared by accident) with
one torch thread and an initialised default process group (gloo on the CPU; NCCL on
``cuda:rank`` when ``backend="nccl"``). The group's rendezvous is a TCPStore that the caller
opens on 127.0.0.1 port 0, so the OS picks a free port and two tests never collide.

Invariants:
* an exception in any rank becomes an AssertionError in the caller, with that rank's
  traceback text; the other ranks (which would wait forever in a collective) are killed;
* a run longer than ``timeout`` seconds kills every rank and raises AssertionError;
* ``destroy_process_group`` always runs in a rank that got as far as creating one;
* the ranks import ``exercises.lessonNN.*`` from the same implementation as the caller: the
  ``--impl`` redirection (``autograder.pytest_impl``) is a finder on the caller's
  ``sys.meta_path`` that a spawned process would not have, so its root is passed to each rank
  and installed there before the function (pickled by reference) is unpickled.

`count_collectives()` counts calls of torch.distributed's collectives inside a rank, so a test
can require "exactly one all-reduce per MLP".
"""

from __future__ import annotations

import contextlib
import datetime
import os
import pickle
import queue as queue_module
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

COLLECTIVES = ("all_reduce", "all_gather", "all_gather_into_tensor", "reduce_scatter",
               "reduce_scatter_tensor", "broadcast", "reduce", "all_to_all",
               "all_to_all_single", "send", "recv", "isend", "irecv", "gather", "scatter")


def _impl_root() -> str | None:
    """Root folder of the caller's ``--impl`` redirection, if the pytest plugin installed one."""
    for finder in sys.meta_path:
        if type(finder).__name__ == "ImplFinder" and hasattr(finder, "root"):
            return str(finder.root)
    return None


def _rank_main(rank: int, world_size: int, port: int, backend: str, impl_root: str | None,
               payload: bytes, timeout: float, results) -> None:
    """Body of one rank process: set up, run the function, report (pickled) to the caller."""
    dist = None
    try:
        if impl_root is not None:
            from autograder import pytest_impl
            pytest_impl.install(Path(impl_root))
        import torch
        import torch.distributed as dist
        torch.set_num_threads(1)
        os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
        os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
        fn, args = pickle.loads(payload)
        if backend == "nccl":
            torch.cuda.set_device(rank)
        store = dist.TCPStore("127.0.0.1", port, world_size, is_master=False,
                              timeout=datetime.timedelta(seconds=timeout))
        dist.init_process_group(backend, store=store, rank=rank, world_size=world_size,
                                timeout=datetime.timedelta(seconds=timeout))
        try:
            value = fn(rank, world_size, *args)
        finally:
            dist.destroy_process_group()
        results.put((rank, "ok", pickle.dumps(value)))
    except BaseException:  # noqa: BLE001 - everything goes back to the caller as text
        results.put((rank, "error", traceback.format_exc()))


def _context():
    """A 'forkserver' context whose server has torch imported once per test session.

    Each rank is then a fork of that clean server (not of the test process): as isolated as
    'spawn', but a rank starts in a fraction of a second instead of importing torch again
    (seconds on a 2-core machine, times 4 ranks). Every rank still receives the caller's
    current sys.path and working directory. Falls back to 'spawn' where forkserver is missing.
    """
    import torch.multiprocessing as mp

    if os.environ.get("COURSE_GRADING"):
        # The grader kills every process a test leaves behind, a forkserver included: start
        # each rank afresh there (slower, but nothing outlives its test).
        return mp.get_context("spawn")
    try:
        ctx = mp.get_context("forkserver")
    except ValueError:  # pragma: no cover - Windows
        return mp.get_context("spawn")
    # What the ranks of a test import anyway (a test module imports pytest and hypothesis):
    # loaded once in the server instead of once per rank. Missing ones are skipped.
    ctx.set_forkserver_preload(["torch", "torch.distributed", "torch.nn.functional", "numpy",
                                "pytest", "hypothesis", "course.distributed", "course.config",
                                "course.testing", "course.llama_reference", "course.model",
                                "course.hf_layers"])
    _forget_dead_forkserver()
    return ctx


def _forget_dead_forkserver() -> None:
    """If the forkserver of an earlier call has died (the grader kills processes a test
    leaves behind), forget it so that the next start launches a fresh one; otherwise
    starting a rank fails with 'EOFError: unexpected EOF'."""
    from multiprocessing import forkserver

    server = forkserver._forkserver
    pid = getattr(server, "_forkserver_pid", None)
    if pid is None:
        return
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:  # already reaped: it is gone
        done = pid
    if done == 0:
        return  # alive
    try:
        os.close(server._forkserver_alive_fd)
    except (OSError, TypeError):
        pass
    address = server._forkserver_address
    server._forkserver_alive_fd = server._forkserver_pid = server._forkserver_address = None
    if address and isinstance(address, str) and not address.startswith("\0"):
        try:
            os.unlink(address)
        except OSError:
            pass


def run_ranks(fn: Callable[..., Any], world_size: int, *args: Any, timeout: float = 60.0,
              backend: str = "gloo") -> list[Any]:
    """Run ``fn(rank, world_size, *args)`` on ``world_size`` new processes; return their results.

    ``fn`` must be importable by name (a module-level function of a test module) and its
    arguments and return value picklable (tensors are fine). Raises AssertionError naming the
    rank and quoting its traceback when a rank fails, or when the ranks run past ``timeout``
    seconds (then all of them are killed).
    """
    import torch.distributed as dist

    if world_size < 1:
        raise ValueError(f"world_size must be at least 1, got {world_size}")
    ctx = _context()
    payload = pickle.dumps((fn, args))
    # The caller holds the rendezvous store: port 0 lets the OS choose a free port.
    store = dist.TCPStore("127.0.0.1", 0, world_size + 1, is_master=True,
                          timeout=datetime.timedelta(seconds=timeout), wait_for_workers=False)
    results = ctx.Queue()
    procs = [ctx.Process(target=_rank_main, daemon=True,
                         args=(rank, world_size, store.port, backend, _impl_root(), payload,
                               timeout, results))
             for rank in range(world_size)]
    got: dict[int, Any] = {}
    failure: str | None = None
    try:
        for proc in procs:
            proc.start()
        deadline = time.monotonic() + timeout
        while len(got) < world_size and failure is None:
            left = deadline - time.monotonic()
            if left <= 0:
                failure = (f"the {world_size} ranks did not finish within {timeout:.0f} s "
                           "(a rank waiting forever in a collective the others never call?); "
                           "all ranks were killed")
                break
            try:
                rank, status, data = results.get(timeout=min(left, 0.5))
            except queue_module.Empty:
                dead = [p for p in procs if p.exitcode not in (None, 0)]
                if dead and results.empty():
                    time.sleep(0.2)  # a report may still be in flight
                    if results.empty():
                        failure = (f"a rank process died with exit code {dead[0].exitcode} "
                                   "without reporting (out of memory? a crash?)")
                continue
            if status == "ok":
                got[rank] = pickle.loads(data)
            else:
                failure = _describe_failure(world_size, {rank: data}, results)
    finally:
        for proc in procs:
            if proc.pid is None:  # start() failed: its error is the one to report
                continue
            if failure is None:
                proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()
            proc.join()
        results.close()
        del store
    if failure is not None:
        raise AssertionError(failure)
    return [got[rank] for rank in range(world_size)]


_PEER_ERRORS = ("Connection closed by peer", "Connection reset by peer", "remote worker")


def _describe_failure(world_size: int, errors: dict[int, str], results) -> str:
    """Gather the other ranks' errors for a moment; put a rank's own error before the
    "peer closed the connection" errors that its crash caused in the others."""
    grace = time.monotonic() + 1.0
    while len(errors) < world_size and time.monotonic() < grace:
        try:
            rank, status, data = results.get(timeout=0.1)
        except queue_module.Empty:
            continue
        if status == "error":
            errors[rank] = data
    order = sorted(errors, key=lambda r: (any(m in errors[r] for m in _PEER_ERRORS), r))
    first = order[0]
    lines = [line for line in errors[first].strip().splitlines() if line.strip()]
    # The first line names the exception, so one-line summaries (pytest -rA) show it.
    text = (f"rank {first} of {world_size} raised {lines[-1] if lines else 'an error'}\n"
            f"{errors[first]}")
    if len(order) > 1:
        text += ("\n(also failed, probably as a consequence: rank(s) "
                 f"{', '.join(map(str, order[1:]))})")
    return text


@contextlib.contextmanager
def count_collectives() -> Iterator[Counter]:
    """Count calls of torch.distributed collectives (by name) made inside the ``with`` block.

    Patches the functions on both ``torch.distributed`` and ``torch.distributed.distributed_c10d``
    and restores them on exit. Use inside a rank::

        with count_collectives() as calls:
            out = tp_mlp_forward(...)
        assert calls["all_reduce"] == 1 and sum(calls.values()) == 1
    """
    import torch.distributed as dist
    import torch.distributed.distributed_c10d as c10d

    calls: Counter = Counter()
    saved = []
    for module in (dist, c10d):
        for name in COLLECTIVES:
            original = getattr(module, name, None)
            if original is None:
                continue

            def counting(*a, __name=name, __original=original, **kw):
                calls[__name] += 1
                return __original(*a, **kw)

            saved.append((module, name, original))
            setattr(module, name, counting)
    try:
        yield calls
    finally:
        for module, name, original in saved:
            setattr(module, name, original)

"""Every grader is tested both ways: it passes the reference (the main suite runs the hidden
graders with --impl=solutions) and it fails a plausible buggy version, planted here.

Each mutation copies solutions/lessonNN (for the capstone: every lesson its engine runs, with
``file`` naming ``lessonNN/module.py``), replaces one snippet of the reference with the bug,
and runs the grader tests that exist to catch it on that copy: they must fail. Each run is a
fresh pytest process, forked from a server that has already imported the heavy libraries
(tests/mutations/forkserver.py), so a mutation costs its tests, not an interpreter start.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from autograder.shared import CAPSTONE, module_lessons
from mutations import Mutation, all_mutations

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT_S = 600  # a guard against a hang, never a grade

MUTATIONS = all_mutations()


class ForkServer:
    """One per test worker; see tests/mutations/forkserver.py for the protocol."""

    def __init__(self, log_dir: Path):
        self.errors = log_dir / "forkserver.err"
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "tests" / "mutations" / "forkserver.py")], cwd=ROOT,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.errors.open("w"),
            text=True)

    def pytest(self, args: list[str], log: Path, timeout: float = TIMEOUT_S) -> tuple[int, str]:
        request = {"args": args, "log": str(log), "timeout": timeout}
        try:
            self.proc.stdin.write(json.dumps(request) + "\n")
            self.proc.stdin.flush()
            reply = self.proc.stdout.readline()
        except BrokenPipeError:
            reply = ""
        if not reply:
            raise RuntimeError(f"the planted-bug fork server died:\n{self.errors.read_text()[-3000:]}")
        return json.loads(reply)["rc"], log.read_text(errors="replace") if log.exists() else ""

    def close(self) -> None:
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture(scope="session")
def fork_server(tmp_path_factory):
    server = ForkServer(tmp_path_factory.mktemp("forkserver"))
    yield server
    server.close()


def _mutate(mutation: Mutation, dest: Path) -> Path:
    impl = dest / "impl"
    for lesson in module_lessons([mutation.lesson]):
        shutil.copytree(ROOT / "solutions" / lesson, impl / lesson,
                        ignore=shutil.ignore_patterns("__pycache__", "test_*"))
    path = impl / mutation.file if mutation.lesson == CAPSTONE \
        else impl / mutation.lesson / mutation.file
    text = path.read_text()
    assert text.count(mutation.old) == 1, \
        f"mutation '{mutation.name}': its snippet is not found once in {mutation.file}; " \
        "the reference changed - update the mutation"
    path.write_text(text.replace(mutation.old, mutation.new))
    return impl


def _param(m: Mutation):
    return pytest.param(m, id=f"{m.lesson}: {m.name}",
                        marks=[pytest.mark.gpu] if m.gpu else [])


@pytest.mark.slow
@pytest.mark.parametrize("mutation", [_param(m) for m in MUTATIONS])
def test_grader_catches_planted_bug(mutation: Mutation, tmp_path: Path, fork_server: ForkServer):
    impl = _mutate(mutation, tmp_path)
    code, out = fork_server.pytest(
        [*mutation.catchers, f"--impl={impl}", "-q", "-rfEs", "-p", "no:cacheprovider",
         "--no-header"], tmp_path / "pytest.log")
    assert code != -9, f"the graders ran past {TIMEOUT_S} s on the planted bug '{mutation.name}'"
    skipped = [line for line in out.splitlines() if line.startswith("SKIPPED")]
    if mutation.gpu and code == 0 and skipped:
        pytest.skip(f"the catcher is a GPU grader that cannot run here: {skipped[0]}")
    failed = [line.split()[1] for line in out.splitlines()
              if line.startswith(("FAILED ", "ERROR "))]
    missed = [c for c in mutation.catchers if not any(f.startswith(c) for f in failed)]
    assert code == 1 and not missed, (
        f"the grader(s) {missed or mutation.catchers} did not catch the planted bug "
        f"'{mutation.name}' (pytest exit code {code}):\n{out[-5000:]}")


def test_fork_server_reports_pass_fail_and_hang(fork_server: ForkServer, tmp_path: Path):
    """The server itself: a child starts with no module of the course imported (as a new pytest
    process would), a passing run gives 0, a failing one 1 with its output, and a hang is killed
    at its timeout and reported as -9."""
    probe = tmp_path / "test_probe.py"
    probe.write_text("import sys\n"
                     "def test_clean_start():\n"
                     "    assert not [m for m in sys.modules if m.split('.')[0] in "
                     "('exercises', 'solutions', 'course')]\n")
    code, out = fork_server.pytest([str(probe), "-q", "-p", "no:cacheprovider"], tmp_path / "a.log")
    assert code == 0, out
    probe.write_text("def test_fails():\n    assert 1 == 2\n")
    code, out = fork_server.pytest([str(probe), "-q", "-p", "no:cacheprovider"], tmp_path / "b.log")
    assert code == 1 and "assert 1 == 2" in out, out
    probe.write_text("def test_hangs():\n    while True:\n        pass\n")
    code, out = fork_server.pytest([str(probe), "-q", "-p", "no:cacheprovider"], tmp_path / "c.log",
                                   timeout=3)
    assert code == -9, out

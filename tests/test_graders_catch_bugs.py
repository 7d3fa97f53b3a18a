"""Every grader is tested both ways: it passes the reference (the main suite runs the hidden
graders with --impl=solutions) and it fails a plausible buggy version, planted here.

Each mutation copies solutions/lessonNN, replaces one snippet of the reference with the bug,
and runs the grader tests that exist to catch it on that copy: they must fail.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mutations import Mutation, all_mutations

ROOT = Path(__file__).resolve().parent.parent


MUTATIONS = all_mutations()


def _mutate(mutation: Mutation, dest: Path) -> Path:
    impl = dest / "impl"
    shutil.copytree(ROOT / "solutions" / mutation.lesson, impl / mutation.lesson,
                    ignore=shutil.ignore_patterns("__pycache__", "test_*"))
    path = impl / mutation.lesson / mutation.file
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
def test_grader_catches_planted_bug(mutation: Mutation, tmp_path: Path):
    impl = _mutate(mutation, tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", *mutation.catchers, f"--impl={impl}", "-q", "-rfEs",
         "-p", "no:cacheprovider", "--no-header"],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    skipped = [line for line in proc.stdout.splitlines() if line.startswith("SKIPPED")]
    if mutation.gpu and proc.returncode == 0 and skipped:
        pytest.skip(f"the catcher is a GPU grader that cannot run here: {skipped[0]}")
    failed = [line.split()[1] for line in proc.stdout.splitlines()
              if line.startswith(("FAILED ", "ERROR "))]
    missed = [c for c in mutation.catchers if not any(f.startswith(c) for f in failed)]
    assert proc.returncode == 1 and not missed, (
        f"the grader(s) {missed or mutation.catchers} did not catch the planted bug "
        f"'{mutation.name}' (pytest exit code {proc.returncode}):\n"
        f"{proc.stdout[-3000:]}{proc.stderr[-2000:]}")

"""Grading a class: one CSV, per-student reports, the same CSV every time, and a run that
is killed half-way resumes and completes."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from autograder import classroom

ROOT = Path(__file__).resolve().parent.parent
GRADE = [sys.executable, "-m", "autograder", "grade", "--timeout", "20", "--lesson", "12"]


@pytest.fixture(scope="module")
def klass(tmp_path_factory):
    folder = tmp_path_factory.mktemp("class") / "cs-fall"
    ignore = shutil.ignore_patterns("__pycache__", "test_*.py")
    shutil.copytree(ROOT / "solutions" / "lesson12", folder / "alice" / "lesson12", ignore=ignore)
    # bob cloned the release and changed nothing: his lessons sit in exercises/
    shutil.copytree(ROOT / "exercises" / "lesson12", folder / "bob" / "exercises" / "lesson12",
                    ignore=ignore)
    carol = folder / "carol" / "lesson12"
    shutil.copytree(ROOT / "solutions" / "lesson12", carol, ignore=ignore)
    text = (carol / "fragmentation.py").read_text()
    (carol / "fragmentation.py").write_text(text.replace(
        "def paged_waste(lengths: Sequence[int], block_size: int) -> int:",
        "def paged_waste(lengths: Sequence[int], block_size: int) -> int:\n    return 0\n\n"
        "def _unused(lengths, block_size):"))
    (folder / "dave").mkdir()  # submitted nothing
    return folder


def _rows(path: Path) -> list[list[str]]:
    return list(csv.reader(path.open()))


def test_class_folder_is_detected(klass):
    assert classroom.is_class_folder(klass)
    assert not classroom.is_class_folder(klass / "alice")
    assert not classroom.is_class_folder(ROOT / "solutions")
    assert classroom.submission_root(klass / "bob") == klass / "bob" / "exercises"


def test_jobs_fit_the_memory_budget():
    jobs, budget = classroom.default_jobs(8192, budget_mb=20000)
    assert jobs * 8192 <= 20000 and jobs >= 1
    assert classroom.default_jobs(8192, budget_mb=1000)[0] == 1


@pytest.fixture(scope="module")
def first_run(klass, tmp_path_factory):
    out = tmp_path_factory.mktemp("grades1")
    proc = subprocess.run(GRADE + [str(klass), "--out", str(out), "--jobs", "2"],
                          capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out, proc.stdout


@pytest.mark.slow
def test_class_csv_and_reports(first_run):
    out, _ = first_run
    rows = _rows(out / "grades.csv")
    assert rows[0] == ["student", "lesson12", "total"]
    table = {r[0]: float(r[2]) for r in rows[1:]}
    assert list(table) == ["alice", "bob", "carol", "dave"]
    alice = json.loads((out / "students" / "alice.json").read_text())
    assert table["alice"] == alice["max_score"] > 0
    assert table["bob"] == 0 and table["dave"] == 0
    assert 0 < table["carol"] < table["alice"]
    carol = (out / "students" / "carol.txt").read_text()
    assert "test_paged_waste_worked_example" in carol
    assert "no lessonNN/ folder" in (out / "students" / "dave.txt").read_text()


@pytest.mark.slow
def test_same_class_twice_same_csv_and_nothing_regraded(klass, first_run):
    out, _ = first_run
    before = (out / "grades.csv").read_text()
    proc = subprocess.run(GRADE + [str(klass), "--out", str(out)], capture_output=True,
                          text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "0 graded, 4 reused" in proc.stdout
    assert (out / "grades.csv").read_text() == before


@pytest.mark.slow
def test_killed_run_resumes_and_gives_the_same_csv(klass, first_run, tmp_path):
    out = tmp_path / "grades2"
    proc = subprocess.Popen(GRADE + [str(klass), "--out", str(out), "--jobs", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT,
                            start_new_session=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not list((out / "students").glob("*.json")):
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = list((out / "students").glob("*.json"))
    assert done and not (out / "grades.csv").exists(), "killed after the first student"
    resumed = subprocess.run(GRADE + [str(klass), "--class", "--out", str(out), "--jobs", "2"],
                             capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{len(done)} reused" in resumed.stdout
    assert (out / "grades.csv").read_text() == (first_run[0] / "grades.csv").read_text()
    for name in ("alice", "bob", "carol", "dave"):
        a = json.loads((out / "students" / f"{name}.json").read_text())
        b = json.loads((first_run[0] / "students" / f"{name}.json").read_text())
        assert a == b, f"{name}'s report differs between two gradings"

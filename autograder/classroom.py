"""Grade a class: one sub-folder per student, graded in parallel, one CSV, resumable.

``autograder grade CLASS_FOLDER`` (detected: the folder holds no ``lessonNN/`` itself but
its sub-folders do, directly or in ``<student>/exercises/``; or ``--class``) writes into
``--out`` (default ``CLASS_FOLDER-grades``):

* ``grades.csv`` - ``student, lessonNN..., total`` (points), one row per student, sorted;
* ``students/<student>.json`` and ``.txt`` - the per-test report, with the integrity notes.

Every student is graded on the same lessons (``--lesson``, or every course lesson that any
student submitted): a missing lesson scores zero with a reason, and the columns agree.

Parallelism within a memory budget: each student is graded by a worker process (its own
grading child, its own unprivileged uid when isolated) whose test process has an address
space limit of ``--memory-mb``; ``--jobs`` defaults to the largest N with
``N x memory_mb <= budget`` (80% of the available memory) and ``N <= cores``; a larger
``--jobs`` is lowered to fit, with a note.

Resumable: a report records the hash of what was graded (the student's lesson files, the
course's tests and hidden graders, the engine's own code, the limits). A student whose
report exists with the same hash is not graded again; reports are written atomically, so an
interrupted run leaves no half report and the next run grades only what is missing. Grading
is deterministic (derandomized hypothesis, fixed seeds), so the same class gives the same CSV.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import hashlib
import io
import json
import os
import queue
import re
import signal
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path

from . import report
from .engine import (REPO_ROOT, GradingError, Limits, TestResult, gradeable_lessons,
                     submitted_lessons)
from .engine.model_cache import warm_model_cache
from .shared import fmt_points, lesson_dirs

# The engine's own code, part of every report's hash (a change grades everyone again).
ENGINE_FILES = ("engine/*.py", "shared.py", "recorder.py", "guard.py", "pytest_impl.py",
                "report.py", "classroom.py")


def submission_root(student: Path) -> Path | None:
    """Where a student's lessonNN/ packages are: the folder, or its exercises/ (a clone of
    the release)."""
    for candidate in (student, student / "exercises"):
        if candidate.is_dir() and lesson_dirs(candidate):
            return candidate
    return None


def is_class_folder(folder: Path) -> bool:
    folder = Path(folder)
    if not folder.is_dir() or lesson_dirs(folder):
        return False
    return any(submission_root(p) for p in folder.iterdir() if p.is_dir())


def students_of(folder: Path) -> list[Path]:
    return sorted((p for p in Path(folder).iterdir()
                   if p.is_dir() and not p.name.startswith(".")), key=lambda p: p.name)


def _hash_files(h, root: Path, paths) -> None:
    for path in sorted(paths):
        h.update(str(path.relative_to(root)).encode() + b"\0")
        h.update(hashlib.sha256(path.read_bytes()).digest())


def course_fingerprint(lessons: list[str], limits: Limits, course_root: Path = REPO_ROOT) -> str:
    # Threads change how fast a child runs, never what it scores: a run resumed with another
    # --jobs (and so another share of the cores) still reuses the reports already written.
    settings = {k: v for k, v in asdict(limits).items() if k != "threads"}
    h = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    files = sorted({path for pattern in ENGINE_FILES
                    for path in (course_root / "autograder").glob(pattern) if path.is_file()})
    for lesson in lessons:
        for folder in (course_root / "exercises" / lesson,
                       course_root / "autograder" / "hidden" / lesson):
            if folder.is_dir():
                files += [p for p in folder.iterdir() if p.is_file()
                          and "__pycache__" not in p.parts]
    for shared in ("course", "hardware_fixtures"):
        files += [p for p in (course_root / shared).rglob("*") if p.is_file()
                  and "__pycache__" not in p.parts]
    _hash_files(h, course_root, files)
    return h.hexdigest()


def submission_hash(student: Path, lessons: list[str], fingerprint: str) -> str:
    h = hashlib.sha256(fingerprint.encode() + b"\0" + ",".join(lessons).encode())
    root = submission_root(student)
    if root is not None:
        files = [p for lesson in lessons if (root / lesson).is_dir()
                 for p in (root / lesson).iterdir() if p.is_file() and p.suffix == ".py"]
        _hash_files(h, root, files)
    return h.hexdigest()


def default_jobs(memory_mb: int, budget_mb: int | None = None) -> tuple[int, int]:
    """(jobs, budget in MB): as many as the cores, and jobs x memory_mb <= budget."""
    if budget_mb is None:
        available = None
        try:
            for line in open("/proc/meminfo"):
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) // 1024
        except OSError:
            pass
        if available is None:
            available = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
        budget_mb = int(available * 0.8)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(cores or 1, budget_mb // max(memory_mb, 1))), budget_mb


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._@+-]", "_", name)


def grade_class(folder: Path, out: Path, lessons: list[str] | None = None,
                limits: Limits | None = None, jobs: int | None = None,
                budget_mb: int | None = None, log=print) -> Path:
    """Grade every student of ``folder``; returns the CSV's path."""
    folder, out = Path(folder), Path(out)
    limits = limits or Limits()
    students = students_of(folder)
    if not students:
        raise GradingError(f"{folder}: no student folders")
    known = gradeable_lessons()
    if lessons is None:
        found = {lesson for s in students if submission_root(s)
                 for lesson in submitted_lessons(submission_root(s))}
        lessons = sorted(found & set(known))
        if not lessons:
            raise GradingError(f"no student folder of {folder} holds a lessonNN/ folder that "
                               f"the course has ({', '.join(known)})")
    fit, budget = default_jobs(limits.memory_mb, budget_mb)
    if jobs is None:
        jobs = fit
    elif jobs > fit:
        log(f"note: --jobs {jobs} x {limits.memory_mb} MB would exceed the memory budget of "
            f"{budget} MB; using {fit} jobs")
        jobs = fit
    jobs = max(1, min(jobs, 16))  # worker uids come in blocks of 16
    if jobs > 1 and not limits.threads:
        # Each child gets its share of the cores. torch's default (a thread per core in every
        # child) oversubscribes the machine, and a heavy grader then runs many times slower.
        limits = dataclasses.replace(limits, threads=max(1, (os.cpu_count() or 1) // jobs))
    fingerprint = course_fingerprint(lessons, limits)
    note = warm_model_cache(lessons, log=log)  # once, before the workers start
    if note:
        log(f"real model: {note}")
    reports = out / "students"
    reports.mkdir(parents=True, exist_ok=True)
    lock = threading.Lock()
    slots: "queue.Queue[int]" = queue.Queue()
    for slot in range(jobs):  # one uid per concurrent worker
        slots.put(slot)
    summary: dict[str, dict] = {}
    counts = {"reused": 0, "graded": 0}

    def one(index: int, student: Path) -> None:
        name = _safe_name(student.name)
        digest = submission_hash(student, lessons, fingerprint)
        json_path = reports / f"{name}.json"
        if json_path.exists():
            try:
                old = json.loads(json_path.read_text())
                if old.get("hash") == digest:
                    with lock:
                        summary[name] = old
                        counts["reused"] += 1
                    return
            except ValueError:
                pass
        slot = slots.get()
        try:
            if _STOPPING.is_set():
                return
            data = _grade_in_worker(student, lessons, limits, slot)
        finally:
            slots.put(slot)
        if _STOPPING.is_set():
            return  # stopped mid-grade: no report, the next run grades this student
        data.update(student=student.name, hash=digest)
        text = _text_report(data)
        _write_atomic(reports / f"{name}.txt", text)
        _write_atomic(json_path, json.dumps(data, indent=2, sort_keys=True) + "\n")
        with lock:
            summary[name] = data
            counts["graded"] += 1
        log(f"graded {student.name}: {fmt_points(data['score'])} / "
            f"{fmt_points(data['max_score'])}")

    log(f"grading {len(students)} students on {', '.join(lessons)} with {jobs} parallel "
        f"job(s) ({limits.memory_mb} MB each, budget {budget} MB)")
    with _workers_stopped_by_signals(), ThreadPoolExecutor(max_workers=jobs) as pool:
        for future in [pool.submit(one, i, s) for i, s in enumerate(students)]:
            future.result()
    csv_path = out / "grades.csv"
    _write_atomic(csv_path, _csv(summary, lessons))
    log(f"{counts['graded']} graded, {counts['reused']} reused; wrote {csv_path}")
    return csv_path


def _csv(summary: dict[str, dict], lessons: list[str]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["student", *lessons, "total"])
    for name in sorted(summary):
        data = summary[name]
        points = {row["lesson"]: row["score"] for row in data["lessons"]}
        writer.writerow([data["student"], *(fmt_points(points.get(lesson, 0)) for lesson in lessons),
                         fmt_points(data["score"])])
    return buffer.getvalue()


def _text_report(data: dict) -> str:
    results = [TestResult(**{k: t[k] for k in ("nodeid", "lesson", "points", "hidden",
                                               "outcome", "reason")})
               for row in data["lessons"] for t in row["tests"]]
    lines = [report.table(report.by_lesson(results), title=f"Grades for {data['student']}",
                          show_failures=1000)]
    if data.get("error"):
        lines.append(f"\nthe grader could not grade this submission: {data['error']}")
    if data.get("budget"):
        lines.append(f"\ntime budget: {data['budget']}")
    if data.get("review"):
        lines.append("\nfor review (not scored): lines of the submission that touch the grader, "
                     "processes or the interpreter:")
        lines += [f"  {x}" for x in data["review"]]
    return "\n".join(lines) + "\n"


def _grade_in_worker(student: Path, lessons: list[str], limits: Limits, index: int) -> dict:
    root = submission_root(student)
    if root is None:
        return {"target": student.name, "score": 0.0, "max_score": 0.0, "lessons": [],
                "review": [], "error": "no lessonNN/ folder in this submission"}
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "result.json"
        cmd = [sys.executable, "-m", "autograder.classroom", "--worker", str(root),
               str(result), json.dumps(asdict(limits)), ",".join(lessons), str(index)]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                cwd=REPO_ROOT)
        with _LIVE_LOCK:
            _LIVE.add(proc)
        try:
            stdout, stderr = proc.communicate()
        finally:
            with _LIVE_LOCK:
                _LIVE.discard(proc)
        if proc.returncode != 0 or not result.exists():
            tail = (stderr or stdout).strip().splitlines()[-3:]
            return {"target": student.name, "score": 0.0, "max_score": 0.0, "lessons": [],
                    "review": [], "error": " / ".join(tail) or f"exit {proc.returncode}"}
        return json.loads(result.read_text())


_LIVE: set = set()  # worker processes running now
_LIVE_LOCK = threading.Lock()
_STOPPING = threading.Event()


@contextlib.contextmanager
def _workers_stopped_by_signals():
    """When the class grader is stopped (SIGTERM, SIGHUP, Ctrl-C), pass SIGTERM on to every
    worker (each kills its grading child and exits) and start no new one."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        _STOPPING.set()
        with _LIVE_LOCK:
            for proc in _LIVE:
                try:
                    proc.send_signal(signal.SIGTERM)
                except OSError:
                    pass
        raise SystemExit(128 + signum) if signum != signal.SIGINT else KeyboardInterrupt

    signals = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)
    saved = {sig: signal.signal(sig, stop) for sig in signals}
    _STOPPING.clear()
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def _worker(argv: list[str]) -> int:
    """Grade one submission; write report.to_json + integrity notes to a file."""
    from .engine import grade_target
    target, result, limits_json, lessons, index = argv
    limits = Limits(**json.loads(limits_json))
    graded = grade_target(Path(target), lessons.split(","), limits, child_uid_slot=int(index),
                          log=lambda line: None)
    data = report.to_json(report.by_lesson(graded.tests), Path(target).name)
    data.update(review=graded.review, isolation=graded.isolation)
    if graded.budget:
        data.update(budget=graded.budget)
    Path(result).write_text(json.dumps(data, sort_keys=True))
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        sys.exit(_worker(sys.argv[2:]))
    print("use: autograder grade CLASS_FOLDER [--class] [--jobs N] [--out DIR]", file=sys.stderr)
    sys.exit(2)

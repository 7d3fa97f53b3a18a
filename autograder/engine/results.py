"""What grading takes and gives: the limits, one result per test, the result of a grade."""

from __future__ import annotations

from dataclasses import dataclass, field


class GradingError(Exception):
    """The grader cannot run (a missing folder, no lessons): a message for the instructor."""


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
    """Time and resource limits of one grade (the time-limit policy: autograder.engine).

    The time limits are generous on purpose: a correct solution several times slower than
    the reference, on a machine with other graders beside it, must never reach them. A hang
    stays bounded all the same: it costs ``timeout_s`` once per test (a hang at import: once
    per submission module, see ``autograder.engine.runner``), and never more than
    ``budget_s`` per lesson graded for the whole submission.
    """

    timeout_s: float = 300.0  # per test
    collect_timeout_s: float = 300.0  # importing one test module (and the code it imports)
    budget_s: float = 3600.0  # per lesson graded: the submission's total is this x lessons
    memory_mb: int = 8192  # address space of the child
    file_mb: int = 256  # largest file the child may write (stdout flood, disk fill)
    threads: int = 0  # torch/OpenMP threads in the child; 0 leaves the default
    disk_mb: int = 512  # private /tmp of the child (when isolated)
    processes: int = 1024  # processes + threads of the child's uid (when isolated): torch
    # starts a thread pool in every rank of a distributed test, and RLIMIT_NPROC counts threads
    isolate: bool = True  # unprivileged uid + private mounts when the grader is root


@dataclass
class GradeResult:
    """One submission's grade: ``tests`` in collection order, and what the grader learned
    beside them for the report."""

    tests: list[TestResult]
    isolation: str = ""  # how the child was kept apart from the grader (one line)
    review: list[str] = field(default_factory=list)  # lines worth an instructor's look
    model: str | None = None  # why the real model's cache could not be prepared, if so
    budget: str | None = None  # the submission's time budget ran out, if so

    def notes(self) -> list[str]:
        """The lines a report prints under the table."""
        lines = []
        if self.budget:
            lines.append(f"time budget: {self.budget}")
        if self.isolation:
            lines.append(f"isolation: {self.isolation}")
        if self.model:
            lines.append(f"real model: {self.model}")
        return lines

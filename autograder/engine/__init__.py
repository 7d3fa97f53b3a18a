"""The grading engine: run the course's tests on a submission in a supervised child process.

Data flow: target folder -> workspace (a private copy) -> pytest in a child -> event stream
-> per-test results. The grader never imports the submission itself. One job per module:

* ``workspace``   - the private copy of the submission, the course's tests and plugins;
* ``sandbox``     - the child's uid, mount namespace, limits, and killing it;
* ``channel``     - the signed event pipe from the child;
* ``child``       - starting and supervising one child (time limits, crashes);
* ``runner``      - collection, then children until every test has a result (retries);
* ``model_cache`` - filling the real model's cache before graded code runs;
* ``scan``        - lines of a submission worth an instructor's look;
* ``results``     - limits, per-test results, the result of a grade;
* ``grade``       - ``grade_target``: grading one submission folder with all of the above.

Time limits (``Limits``): generous per-test and per-import limits (300 s each by default,
about five times what the slowest reference test takes on a busy two-core machine) plus a
total budget per submission (3600 s per lesson graded, so that a whole-course grade on a
loaded machine stays far inside it). A correct solution a few times slower than the
reference never reaches them, even beside other graders; a hang is bounded all the same: a
hang at import costs one limit once per submission module (later children refuse to import
it), a hang in a test one limit for that test, and the whole submission never more than
its budget (the report says when the budget ran out, and which tests did not run). Limits
scaled by a calibration measured when grading starts were considered and not chosen: the
load of a shared machine changes during a grade, so the measurement would be noisy, and a
grade would depend on the moment it was taken.

Integrity (docs/THREAT_MODEL.md): see ``channel``, ``sandbox`` and ``autograder.recorder``.
"""

from ..shared import REPO_ROOT
from .grade import grade_target
from .results import GradeResult, GradingError, Limits, TestResult
from .runner import collect, run_tests
from .sandbox import Isolation, decide_isolation
from .workspace import (Workspace, available_lessons, build_workspace, copy_py,
                        gradeable_lessons, submitted_lessons)

__all__ = ["REPO_ROOT", "GradeResult", "GradingError", "Isolation", "Limits", "TestResult",
           "Workspace", "available_lessons", "build_workspace", "collect", "copy_py",
           "gradeable_lessons",
           "decide_isolation", "grade_target", "run_tests", "submitted_lessons"]

"""The course's grading engine: run the tests on a submission, score, report.

Modules: ``pytest_impl`` (the --impl redirection, loaded in every test run), ``sync``
(solutions -> exercises), ``run`` (a supervised child process per submission), ``recorder``
(the child's event stream), ``report`` (points, tables, JSON, Gradescope), ``cli``, and
``selfcheck`` (the learner's visible-test points per lesson; it ships in the student release).
Hidden graders live in ``autograder/hidden/lessonNN``.
"""

"""The course's grading engine: run the tests on a submission, score, report.

Modules: ``pytest_impl`` (the --impl redirection, loaded in every test run), ``sync``
(solutions -> exercises), ``run`` (a supervised child process per submission), ``recorder``
(the child's event stream), ``report`` (points, tables, JSON, Gradescope) and ``cli``.
Hidden graders live in ``autograder/hidden/lessonNN``.
"""

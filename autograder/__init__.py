"""The course's grading engine: run the tests on a submission, score, report.

Modules: ``pytest_impl`` (the --impl redirection, loaded in every test run), ``sync``
(solutions -> exercises), ``engine`` (a package: a supervised child process per submission,
one job per module), ``recorder`` (the child's event stream), ``guard`` (tamper detection in
the child), ``report`` (points, tables, JSON, Gradescope), ``classroom`` (a whole class),
``shared`` (definitions they share), ``cli``, and ``selfcheck`` (the learner's visible-test
points per lesson; it ships in the student release).
Hidden graders live in ``autograder/hidden/lessonNN``.
"""

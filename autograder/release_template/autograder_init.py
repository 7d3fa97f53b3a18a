"""The learner's side of the course's test tooling: the pytest plugin and the self-check.

``autograder.pytest_impl`` gives the tests the ``--impl`` option (which implementation
``exercises.lessonNN`` names: your ``exercises/`` by default, or another folder of
``lessonNN/`` packages) and the hypothesis profiles. ``python -m autograder.selfcheck``
runs the visible tests and prints points per lesson. The grading engine and the hidden
tests stay with your instructor.
"""

"""The learner's side of the course's test tooling: only the pytest plugin.

``autograder.pytest_impl`` gives the tests the ``--impl`` option (which implementation
``exercises.lessonNN`` names: your ``exercises/`` by default, or another folder of
``lessonNN/`` packages) and the hypothesis profiles. The grading engine and the hidden
tests stay with your instructor.
"""

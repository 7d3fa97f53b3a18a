"""Hidden graders: instructors only; never part of the student release."""

"""Hidden graders of lesson 02."""

"""Hidden graders of lesson 01."""

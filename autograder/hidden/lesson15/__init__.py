"""Hidden graders for lesson 15."""

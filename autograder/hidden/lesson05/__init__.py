"""Hidden graders for lesson 05."""

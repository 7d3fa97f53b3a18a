"""Hidden graders for lesson 18."""

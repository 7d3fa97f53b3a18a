"""Hidden graders for lesson 16."""

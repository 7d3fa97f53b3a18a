"""Hidden graders for lesson 12."""

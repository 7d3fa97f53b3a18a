"""Hidden graders for lesson 06."""

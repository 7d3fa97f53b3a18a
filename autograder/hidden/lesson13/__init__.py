"""Hidden graders for lesson 13."""

"""Hidden graders for lesson 03 (prefill vs decode)."""

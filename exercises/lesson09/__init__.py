"""Lesson 09: benchmarking correctly (timing protocol, bootstrap intervals, load generators)."""

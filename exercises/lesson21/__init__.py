"""Lesson 21: mixture-of-experts routing, capacity and expert parallelism."""

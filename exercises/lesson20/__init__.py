"""Lesson 20: pipeline parallelism (stages, micro-batches, the bubble) and context parallelism (ring attention)."""

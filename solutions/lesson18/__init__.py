"""Lesson 18: scheduling, admission control and preemption."""

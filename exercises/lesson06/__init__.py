"""Lesson 06: capacity planning - weights, KV cache and overhead on real GPUs."""

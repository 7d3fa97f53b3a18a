"""Lesson 04: KV cache arithmetic and a preallocated KV cache."""

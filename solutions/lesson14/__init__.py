"""Lesson 14: speculative decoding (draft, verify, and the rejection rule that keeps the output exact)."""

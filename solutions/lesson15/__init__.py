"""Lesson 15: weight-only INT4 GEMM (W4A16)."""

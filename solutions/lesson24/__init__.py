"""Lesson 24: the latency-throughput knee, chunked prefill, goodput and Little's Law."""

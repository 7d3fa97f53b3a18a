"""Lesson 02: generation and sampling - temperature, top-k, top-p, min-p, and a cached decode loop."""

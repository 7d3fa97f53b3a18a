"""Lesson 13: prefix caching, the radix tree, chained block hashes and cache-aware routing."""

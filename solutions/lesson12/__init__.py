"""Lesson 12: PagedAttention, continuous batching and the prompt-caching bridge."""

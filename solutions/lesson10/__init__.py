"""Lesson 10: FlashAttention: the online softmax, tiled attention and split-KV decode."""

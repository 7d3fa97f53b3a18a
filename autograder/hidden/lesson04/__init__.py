"""Hidden graders for lesson 04 (KV cache arithmetic and a preallocated cache)."""

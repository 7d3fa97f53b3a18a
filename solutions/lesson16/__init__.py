"""Lesson 16: quantization - FP8 formats, SmoothQuant, AWQ and an FP8 KV cache."""

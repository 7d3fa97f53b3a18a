"""Lesson 01: the transformer at inference time - parameters, FLOPs, and a Llama forward pass."""

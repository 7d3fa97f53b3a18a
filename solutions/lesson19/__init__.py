"""Lesson 19: tensor parallelism (Megatron-style) on torch.distributed, and what it costs."""

"""Lesson 07: GPU architecture and the memory hierarchy (occupancy, shared memory, L2, HBM)."""

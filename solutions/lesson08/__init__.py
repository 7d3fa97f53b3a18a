"""Lesson 08: arithmetic intensity, and what fusing operators saves."""

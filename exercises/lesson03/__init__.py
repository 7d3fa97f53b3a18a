"""Lesson 03: prefill vs decode - one forward that fills the KV cache, steps that extend it, and their time model."""

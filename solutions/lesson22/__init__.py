"""Lesson 22: disaggregated prefill and decode: shipping the KV cache between two instances."""

"""Lesson 23: long context and KV compression (windows, attention sinks, H2O, int8 KV)."""

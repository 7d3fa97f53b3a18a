"""Lesson 05: multi-head, multi-query and grouped-query attention (MHA, MQA, GQA)."""

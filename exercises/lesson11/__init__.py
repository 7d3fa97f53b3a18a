"""Lesson 11: the roofline model (Williams, Waterman and Patterson, CACM 2009)."""

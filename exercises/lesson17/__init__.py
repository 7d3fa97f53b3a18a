"""Lesson 17: serving metrics (TTFT, TPOT, ITL, E2E, percentiles, SLO attainment, MBU, MFU)."""

"""Hidden graders for lesson 06 (capacity planning).

Classes of learner mistakes they catch (planted in tests/mutations/lesson06.py; the classes
that do not apply to byte arithmetic, with the reasons, are in its NOT_APPLICABLE):

============== ===============================================================================
logic          K/V projections sized like Q, tied embedding twice, norms forgotten, KV without
               the factor 2 or with n_heads, weights replicated, reserve or overhead misapplied
boundary       fractional bytes truncated; usable bytes rounded instead of floored; min_gpus
               wanting more than the target
special-value  a negative KV budget when the weights do not fit
unvaried-arg   context_len, choices, formats or plan options ignored
contract       min_gpus returning a count instead of None when nothing is enough
============== ===============================================================================
"""

"""Hidden graders for lesson 07 (GPU architecture and the memory hierarchy).

Classes of learner mistakes they catch (planted in tests/mutations/lesson07.py; the classes
that have nothing to catch here, with the reasons, are in its NOT_APPLICABLE):

============== ===============================================================================
logic          threads instead of warps, registers without the 256 unit or the four
               sub-partitions, shared memory without the 1 KiB reservation or the 128 B unit,
               the floor of the knee taken over the whole curve, the knee read in linear size
boundary       a tile exactly at the per-block limit, a curve that drops by exactly
               min_drop_ratio, ties between limits
special-value  one thread per block; a block too big for the register file (zero blocks)
unvaried-arg   min_drop_ratio ignored; limits hard-coded for one compute capability
contract       find_knee returning a size instead of None for a curve without a knee
dtype-device   (GPU) a probe that allocates elements of 4 bytes but counts one
cost           (GPU) a copy probe that copies in small chunks from Python
============== ===============================================================================
"""

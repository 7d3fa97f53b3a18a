"""Hidden graders for lesson 08 (arithmetic intensity and operator fusion).

Classes of learner mistakes they catch (planted in tests/mutations/lesson08.py):

============== ===============================================================================
logic          a matmul of M K N FLOPs (no factor 2); the score matrix counted once instead of
               written and read twice; a rotation that pairs neighbours instead of halves
extreme        squares of fp16 activations taken in fp16 (they overflow past 65504)
rows-differ    one RMS for the whole tensor instead of one per row
boundary       the first operator's operands not all counted as inputs (one input short)
special-value  eps dropped: an all-zero row (a padding token) becomes NaN
multi-token    one position's rotation for every token; K/V bytes from q_len
dtype-device   float32 results for bf16 or fp16 inputs
unvaried-arg   c_bytes ignored (the output at the inputs' size); eps replaced by a constant
contract       x modified in place when it is already float32
cost           a graph break (.item()) that torch.compile cannot fuse; the tables counted at
               x's size; on a GPU, a fused function split in two kernels
============== ===============================================================================
"""

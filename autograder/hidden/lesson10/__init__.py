"""Hidden graders for lesson 10 (FlashAttention: online softmax, tiled forward, split-KV decode).

Classes of learner mistakes they catch (planted in tests/mutations/lesson10.py):

============== ===============================================================================
logic          a merge that rescales the wrong way; an output not rescaled when the maximum
               grows; lse = m + l; split outputs summed without their weights
extreme        m started at 0 instead of -inf (rows whose scores are all below -88 underflow)
rows-differ    one maximum for a whole tile or merge (rows thousands apart underflow); the
               length of sequence 0 used for every sequence
boundary       one key tile too few under the causal mask; a query not seeing its own key; the
               key at position lengths[b] - 1 dropped
special-value  merging two empty states gives NaN; an empty chunk (more splits than keys, or
               past a short sequence) gives NaN; scale 0 taken for the default
multi-token    a top-left causal mask (is_causal with T < S)
dtype-device   float32 output for bf16 inputs
unvaried-arg   scale ignored (tiled forward and split-KV decode); n_splits ignored (one chunk)
contract       a merge that rescales its inputs in place
cost           a tile as large as the score matrix; no skipping of masked tiles; K/V padded
               to a multiple of the chunk; a Python loop over chunks; (GPU) the whole score
               matrix in device memory, K/V converted to float32 at every step
============== ===============================================================================
"""

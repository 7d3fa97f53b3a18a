"""Hidden graders for lesson 23 (sliding windows, attention sinks, H2O, int8 KV).

Classes of learner mistakes they catch (planted in tests/mutations/lesson23.py):

============== ===============================================================================
logic          sinks evicted once the window wraps, values not moved with their keys, H2O
               keeping the lowest scores, the int8 axes swapped
extreme        the int8 scale from max instead of absmax (negative outliers clip)
rows-differ    H2O scores pooled over the rows (heads, sequences) instead of per row
boundary       window one key wide or short (< vs <=), a query not seeing itself, the slice
               one key short, the sink window one short, positions kept twice before the
               cache is full, H2O ties to the later position, truncation or half-away
               rounding, 128 steps instead of 127
special-value  q_len 0 taken as "all queries", window 0 accepted, no scale floor (NaN on
               all-zero rows)
multi-token    no mask for several queries, one token evicted per append (chunks overflow)
dtype-device   float32 output for bf16 attention, the scale left in x's dtype, the dequant
               dtype ignored
unvaried-arg   the window ignored (plain causal), the attention scale ignored, H2O n_sink
               ignored
contract       seen counting appends instead of tokens, a budget below n_sink + n_recent
               accepted
cost           the whole cache masked instead of sliced (NaN outside the window; GPU time)
============== ===============================================================================
"""

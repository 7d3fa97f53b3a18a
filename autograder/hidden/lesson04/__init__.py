"""Hidden graders for lesson 04 (KV cache arithmetic and a preallocated cache).

Classes of learner mistakes they catch (planted in tests/mutations/lesson04.py):

============== ===============================================================================
logic          query heads for KV heads, K without V, batch ignored, positions restarting at 0
extreme        a budget past 2**53 B counted by float division
rows-differ    one argmax over the whole batch (rows of a batch continue differently)
boundary       tokens in a budget rounded up; the last token picked also run (cache sized exactly)
special-value  a negative budget
multi-token    append advancing the length by one token whatever the chunk
dtype-device   a bf16 model upcast to float32 inside forward_cached; logits not in its dtype
unvaried-arg   dtype_bytes dropped by kv_cache_bytes or max_tokens_in_budget; get ignoring layer
contract       get returning copies instead of views; a float budget answered with a float
cost           append reallocating; logits for every prompt position; re-running the prefix
============== ===============================================================================
"""

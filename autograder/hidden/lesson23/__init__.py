"""Hidden graders for lesson 23 (MHA, MQA and GQA).

Classes of learner mistakes they catch (planted in tests/mutations/lesson23.py):

============== ===============================================================================
logic          tiled instead of interleaved heads, query head h on KV head h % n_kv, strided or
               summed or first-head conversion
extreme        a softmax without the row maximum, on scores past 100
rows-differ    the sequences of a batch attending to each other's keys
boundary       a causal mask one diagonal short (a query not seeing its own key)
special-value  an MHA (group of one) shortcut through is_causal=True; scale 0 taken as default
multi-token    a top-left causal mask; the grouped mask repeated row by row
dtype-device   float32 results for bf16 attention or bf16 / fp16 converted weights
unvaried-arg   scale ignored; kv_reduction_factor ignoring n_kv_heads
contract       repeat_kv(x, 1) not x itself; q.view failing on a transposed q
cost           K/V repeated before attention (bytes counted; GPU bandwidth)
============== ===============================================================================
"""

"""Hidden graders for lesson 11 (the roofline).

Classes of learner mistakes they catch (planted in tests/mutations/lesson11.py):

============== ===============================================================================
logic          max instead of min; the ridge upside down (bandwidth / peak); bytes of attention
               without q and the output; softmax bytes read only; a plot whose points sit on
               their roofs instead of at the achieved rate, or whose bandwidth roof stops at the
               lowest ridge; GPU: a host clock around an asynchronous launch
boundary       an op exactly at the ridge called memory-bound; a point 4% above its roof refused
               (the 5% tolerance ignored)
rows-differ    every op of a report judged against the peak of the first op's dtype
special-value  a report of no ops failing instead of returning []
dtype-device   2 bytes per element whatever the dtype (fp32 and fp8 counts wrong); a torch
               dtype (torch.bfloat16) not understood by ridge_point
unvaried-arg   the dtype ignored by ridge_point (always the bf16 peak)
contract       a point above its roof accepted instead of raising RooflineViolation naming the op
cost           GPU: the suite run in float32, well below the bf16 ceilings measured in the same run
============== ===============================================================================
"""

"""Hidden graders for lesson 17 (serving metrics from a trace).

Classes of learner mistakes they catch (planted in tests/mutations/lesson17.py):

============== ===============================================================================
logic          TPOT divided by every token or over the whole E2E, nearest-rank percentiles,
               unsorted percentiles, latencies left in seconds, weights read once per sequence
rows-differ    a gap taken across requests, a batch's KV counted from its longest context
boundary       a target met exactly counted as missed, the percentile position n q / 100, an
               index one past the end at q = 100
special-value  a one-token request's TPOT 0 instead of None, request id 0 taken as missing
multi-token    output tokens counted as events when one event delivers several
dtype-device   trace times in float32 (a clock 10^6 s from its origin)
unvaried-arg   the qs of summarize ignored
contract       unfinished requests in the results, results in finish order instead of arrival
               order, E2E ending at the last token instead of the finish, MBU returned before
               the given check that refuses a share above 1
cost           the trace scanned once per request
============== ===============================================================================
"""

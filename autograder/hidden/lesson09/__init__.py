"""Hidden graders for lesson 09 (benchmarking correctly).

Classes of learner mistakes they catch (planted in tests/mutations/lesson09.py):

============== ===============================================================================
logic          the flush inside the timed window; one pair of events around all calls; the
               warm-up timed; the detector's comparison reversed; resampling without
               replacement; the mean instead of the quantile; tails not halved; ends swapped;
               an open loop without a queue, or started at the previous finish when idle, or
               without the service time; a closed loop timed from the start of service
extreme        float32 samples: a long clock offset swallows microsecond differences
rows-differ    the bootstrap quantile taken down the resamples instead of along each one; the
               samples of calls that differ sorted instead of in call order
boundary       a warm-up one call short (the device's slow first kernels are timed)
special-value  a closed loop whose heap leaves out user 0 (one user: nothing to serve)
dtype-device   0-d tensors returned where Python floats are promised
unvaried-arg   the flush flag, the confidence level, the seed or the think time ignored
contract       the detector lets EventNotReady escape, times a kernel shorter than a launch,
               or leaves the kernel's first call to the timer
cost           a synchronize after every timed call (the device idles; launches get timed)
============== ===============================================================================

multi-token has nothing to catch here (no tokens, attention or cache).
"""

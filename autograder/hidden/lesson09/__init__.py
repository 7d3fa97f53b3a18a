"""Hidden graders for lesson 09 (benchmarking correctly).

Classes of learner mistakes they catch (planted in tests/mutations/lesson09.py):

============== ===============================================================================
logic          the flush inside the timed window; one window around all calls; a host clock
               instead of events; the mean instead of the quantile; no resampling with
               replacement; tails not halved; the open loop without queueing, the closed loop
               timed from the service start
extreme        float32 samples: a long clock offset swallows microsecond differences
rows-differ    the bootstrap quantile taken down the resamples instead of along each one; the
               samples of calls that differ returned out of call order
boundary       a warm-up one call short (the device's slow first kernels are timed)
special-value  a closed loop whose heap leaves out user 0 (one user: nothing to serve)
dtype-device   0-d tensors returned where Python floats are promised
unvaried-arg   the flush flag, the confidence level, the seed or the think time ignored
contract       the detector lets EventNotReady escape; it times a kernel shorter than a launch;
               it times a first call; flushes when told not to
cost           a synchronize after every timed call (idle device, launch time in the window)
============== ===============================================================================
"""

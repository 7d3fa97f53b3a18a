"""Timing work on an asynchronous device: the protocol of ``course.bench.cuda_time``.

The device is any object with the interface of ``course.simdevice`` (``event``, ``record``,
``synchronize``, ``elapsed_s``, ``flush_l2``, ``host_time``): a ``SimDevice``, which the CPU
tests use because its answers are exact, or a ``CudaDevice`` over ``torch.cuda``, which the GPU
graders use. Your code cannot tell them apart.

Read: learning/lesson09.md#the-timing-protocol
"""

from __future__ import annotations

from collections.abc import Callable

from course.simdevice import EventNotReady, SimDevice

# The kernel a missing-sync detector times: long against the simulated launch overhead (5 us).
KNOWN_KERNEL_S = 1e-3


def time_kernel(fn: Callable[[], object], device, *, warmup: int = 10, iters: int = 100,
                flush: bool = True) -> list[float]:
    """Device seconds of each of `iters` calls of fn(), measured with events.

    The protocol, in order:

    1. call fn() `warmup` times, untimed (first-call set-up, clocks ramping up);
    2. for each of the `iters` timed calls: if `flush`, ``device.flush_l2()`` first, OUTSIDE
       the timed window; then record a start event, call fn(), record an end event (one pair
       of new events per call);
    3. ``device.synchronize()`` once, after the loop, and only then read each pair with
       ``device.elapsed_s(start, end)``.

    Returns a list of `iters` floats, seconds per call, in call order. With ``flush=True``
    every call starts with a cold L2 cache; with ``flush=False`` the calls after the first
    find their operands cached. Never read the host clock: it shows when work was launched,
    not when it ran. About 10 lines.

    Read: learning/lesson09.md#the-timing-protocol
    """
    if int(warmup) != warmup or warmup < 0 or int(iters) != iters or iters < 1:
        raise ValueError(f"need whole numbers iters >= 1 and warmup >= 0, got iters={iters!r}, "
                         f"warmup={warmup!r}")
    raise NotImplementedError('lesson09: time_kernel - read learning/lesson09.md#the-timing-protocol')


def detect_missing_sync(timer: Callable[[Callable[[], None], SimDevice], float]) -> bool:
    """True when `timer` reads its clock before the device has finished the work it times.

    `timer(fn, device)` is a candidate timing function: it calls fn() on `device` (as many
    times as it likes) and returns its estimate of the seconds one call takes. Judge it on a
    kernel whose time you know: make a fresh ``SimDevice()`` (default settings), a kernel
    ``device.kernel(KNOWN_KERNEL_S)`` that always takes ``KNOWN_KERNEL_S`` of device time
    (much longer than the 5 us launch), call it once and synchronize (so its 1 ms first-call
    set-up is spent before the timer starts), then run the timer once on it. Flag the timer
    (return True) when

    - it reports less than 90% of ``KNOWN_KERNEL_S``: no correct timer can see a call finish
      before the device has run it; a timer that times only the launch reports microseconds;
    - or it raises ``EventNotReady``: it read an event before synchronizing (the same bug, which
      the device refuses).

    A timer that reports more (it also counts a launch or a first call) is slow, not wrong
    in this way: return False. Let any other exception propagate. About 10 lines.

    Read: learning/lesson09.md#catching-a-missing-synchronize
    """
    raise NotImplementedError('lesson09: detect_missing_sync - read learning/lesson09.md#catching-a-missing-synchronize')

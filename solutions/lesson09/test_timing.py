"""Lesson 09, part 1: the timing protocol on a simulated device. Run: pytest exercises/lesson09

The simulated device (course.simdevice.SimDevice, default settings) launches a kernel in 5 us
of host time, gives a kernel's first call 1 ms of host set-up, runs its first 3 kernels at half
clock and flushes the L2 in 100 us. Every expected time below follows from those numbers.
"""

import pytest

from course.simdevice import SimDevice
from exercises.lesson09.timing import detect_missing_sync, time_kernel

US = 1e-6


def test_flushed_calls_take_the_cold_time():
    device = SimDevice()
    kernel = device.kernel(40 * US, 25 * US, buffer="weights")  # 40 us cold, 25 us from L2
    samples = time_kernel(kernel, device, warmup=3, iters=5, flush=True)
    assert len(samples) == 5, f"asked for 5 timed calls, got {len(samples)} samples"
    assert samples == pytest.approx([40 * US] * 5, abs=1e-12), (
        f"every flushed call should take the cold 40 us; got {[s / US for s in samples]} us. "
        "Is the flush inside the timed window, or the warm-up too short?")


def test_without_flush_the_cache_is_warm():
    device = SimDevice()
    kernel = device.kernel(40 * US, 25 * US, buffer="weights")
    samples = time_kernel(kernel, device, warmup=3, iters=4, flush=False)
    assert samples[1:] == pytest.approx([25 * US] * 3, abs=1e-12), (
        f"without a flush the operand stays in L2 (25 us); got {[s / US for s in samples]} us")


def test_warmup_calls_are_not_timed():
    device = SimDevice()
    kernel = device.kernel(40 * US)
    cold_start = time_kernel(kernel, device, warmup=0, iters=1, flush=False)
    # no warm-up: the 1 ms first-call set-up, the 5 us launch and a half-clock 80 us kernel
    assert cold_start == pytest.approx([1085 * US], abs=1e-12)
    device = SimDevice()
    samples = time_kernel(device.kernel(40 * US), device, warmup=3, iters=2, flush=True)
    assert samples == pytest.approx([40 * US] * 2, abs=1e-12)


def test_host_timer_without_sync_is_detected():
    def launch_only(fn, device):  # the classic bug: the host clock sees only the launch
        t0 = device.host_time()
        fn()
        return device.host_time() - t0

    def host_timer_with_syncs(fn, device):
        fn()
        device.synchronize()
        t0 = device.host_time()
        fn()
        device.synchronize()
        return device.host_time() - t0

    def events_read_too_early(fn, device):
        start, end = device.event(), device.event()
        device.record(start)
        fn()
        device.record(end)
        return device.elapsed_s(start, end)

    assert detect_missing_sync(launch_only) is True
    assert detect_missing_sync(host_timer_with_syncs) is False
    assert detect_missing_sync(events_read_too_early) is True
    assert detect_missing_sync(lambda fn, device: min(time_kernel(fn, device, iters=5))) is False

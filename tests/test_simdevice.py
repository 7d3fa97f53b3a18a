"""The simulated device of lesson 09 (course.simdevice): its two clocks, events, first calls,
clock ramp and L2, checked on timelines worked out by hand."""

import pytest

from course.simdevice import EventNotReady, SimDevice

US = 1e-6


def test_launch_returns_at_once_and_the_device_runs_later():
    device = SimDevice(first_call_s=0, slow_kernels=0)
    kernel = device.kernel(100 * US)
    kernel()
    assert device.host_time() == pytest.approx(5 * US, abs=1e-12)  # the launch only
    device.synchronize()
    assert device.host_time() == pytest.approx(105 * US, abs=1e-12)
    assert device.syncs == 1


def test_events_are_stamped_when_the_queue_reaches_them():
    device = SimDevice()
    start, end = device.event(), device.event()
    device.record(start)
    device.kernel(1e-3)()
    device.record(end)
    with pytest.raises(EventNotReady, match="synchronize"):
        device.elapsed_s(start, end)
    device.synchronize()
    # the 1 ms first-call set-up, the 5 us launch and the 2 ms half-clock kernel
    assert device.elapsed_s(start, end) == pytest.approx(1e-3 + 5 * US + 2e-3, abs=1e-12)
    with pytest.raises(ValueError, match="never recorded"):
        device.elapsed_s(device.event(), end)
    with pytest.raises(TypeError):
        SimDevice().record(start)


def test_l2_warm_until_flushed():
    device = SimDevice(first_call_s=0, slow_kernels=0)
    kernel = device.kernel(40 * US, 25 * US, buffer="w")
    marks = [device.event() for _ in range(6)]
    device.record(marks[0])
    kernel()
    device.record(marks[1])
    device.record(marks[2])
    kernel()
    device.record(marks[3])
    device.flush_l2()
    device.record(marks[4])
    kernel()
    device.record(marks[5])
    device.synchronize()
    got = [device.elapsed_s(marks[i], marks[i + 1]) / US for i in (0, 2, 4)]
    assert got == pytest.approx([45, 25, 40], abs=1e-6)  # first: idle device waits the launch


def test_bad_settings_are_refused():
    with pytest.raises(ValueError):
        SimDevice(launch_s=-1)
    with pytest.raises(ValueError):
        SimDevice().kernel(10 * US, 20 * US)

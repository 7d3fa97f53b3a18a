"""Hidden grader, lesson 09: the timing protocol and the missing-sync detector, on simulated
devices (course.simdevice.SimDevice).

Every expected time is worked out by hand from the device's settings (launch 5 us, first call
1 ms, first 3 kernels at half clock, flush 100 us unless a test says otherwise): the device is
deterministic, so a correct protocol gets them to the nanosecond.
"""

import pytest

from course.simdevice import SimDevice
from exercises.lesson09.timing import detect_missing_sync, time_kernel

US = 1e-6


def in_us(samples):
    return [round(s / US, 6) for s in samples]


def cycling(kernels):
    """A callable that launches kernels[0], kernels[1], ... in turn: calls that differ."""
    state = {"i": 0}

    def fn():
        kernels[state["i"] % len(kernels)]()
        state["i"] += 1
    return fn


COLD_CASES = {
    # name: (device settings, kernel times in us as (cold, warm), warmup, iters, expected us)
    "default device, 40 us cold": ({}, [(40, 25)], 3, 6, [40] * 6),
    "fast launch, short flush": (dict(launch_s=2 * US, flush_s=30 * US, slow_kernels=2),
                                 [(70, 10)], 2, 3, [70] * 3),
    "calls that differ, in call order": ({}, [(10, 5), (50, 20), (30, 30)], 3, 7,
                                         [10, 50, 30, 10, 50, 30, 10]),
}


@pytest.mark.points(1)
@pytest.mark.parametrize("case", list(COLD_CASES))
def test_flushed_calls_take_the_cold_time_exactly(case):
    """Bugs: the flush inside the timed window (each call reports flush + kernel); one pair of
    events around all calls divided by the count; the warm-up timed or skipped; the host clock
    instead of events; samples sorted or reversed (calls that differ show it); the flush flag
    ignored."""
    settings, times, warmup, iters, want = COLD_CASES[case]
    device = SimDevice(**settings)
    kernels = [device.kernel(cold * US, warm * US, buffer=f"operand{i}")
               for i, (cold, warm) in enumerate(times)]
    samples = time_kernel(cycling(kernels), device, warmup=warmup, iters=iters, flush=True)
    assert isinstance(samples, list) and len(samples) == iters, (
        f"time_kernel(iters={iters}) must return a list of {iters} samples, got "
        f"{type(samples).__name__} of length {len(samples)}")
    assert in_us(samples) == pytest.approx(want, abs=1e-3), (
        f"{case}: with the L2 flushed before each call (outside the timed window) the calls take "
        f"{want} us; time_kernel reported {in_us(samples)} us")


@pytest.mark.points(2)
def test_without_flush_the_calls_find_a_warm_cache():
    """Bugs: flushing although flush=False; a synchronize inside the timed loop (the device
    idles, the next start event is stamped at once and the 5 us launch falls inside every
    window: 30 us instead of 25 us)."""
    device = SimDevice()
    kernel = device.kernel(40 * US, 25 * US, buffer="weights")
    samples = in_us(time_kernel(kernel, device, warmup=3, iters=5, flush=False))
    assert device.flushes == 0, f"flush=False, but flush_l2() was called {device.flushes} times"
    assert samples[1:] == pytest.approx([25] * 4, abs=1e-3), (
        f"calls 2-5 find the operand in L2 (25 us, the kernel alone); got {samples} us. A "
        "synchronize inside the loop lets the device idle, and each window then includes a launch")
    # a synchronize after the warm-up (as course.bench does) may put one launch in the first
    assert 25 - 1e-3 <= samples[0] <= 30 + 1e-3, f"the first call took {samples[0]} us"


@pytest.mark.points(2)
def test_warmup_count_and_first_call():
    """Bugs: a warm-up one call short (``range(warmup - 1)``: the device's third, half-clock
    kernel is timed: 80 us instead of 40 us); warm-up calls returned as samples; the first-call
    set-up hidden when warmup=0 (it must show: 1000 us set-up + 5 us launch + 80 us)."""
    device = SimDevice()
    samples = in_us(time_kernel(device.kernel(40 * US), device, warmup=3, iters=3, flush=False))
    assert len(samples) == 3, f"3 timed calls after 3 warm-up calls, got {len(samples)} samples"
    assert samples[1:] == pytest.approx([40, 40], abs=1e-3), (
        f"after 3 warm-up calls the clocks are up: 40 us per call; got {samples} us")
    # a synchronize after the warm-up (as course.bench does) may put one launch in the first
    assert 40 - 1e-3 <= samples[0] <= 45 + 1e-3, f"the first timed call took {samples[0]} us"
    device = SimDevice()
    first = in_us(time_kernel(device.kernel(40 * US), device, warmup=0, iters=1, flush=False))
    assert first == pytest.approx([1085], abs=1e-3), (
        f"with warmup=0 the one timed call includes the 1 ms first-call set-up, the 5 us launch "
        f"and a half-clock 80 us kernel: 1085 us; got {first} us")


@pytest.mark.points(1)
def test_one_synchronize_and_python_floats():
    """Bugs: a synchronize after every timed call (the device idles between calls; on a GPU
    the clocks drop too); elapsed times returned as tensors or milliseconds."""
    device = SimDevice()
    samples = time_kernel(device.kernel(40 * US), device, warmup=3, iters=20, flush=True)
    assert device.syncs <= 3, (
        f"time_kernel called synchronize() {device.syncs} times for 20 calls; once after the "
        "loop is enough (once before and once after the warm-up are harmless)")
    assert all(isinstance(s, float) for s in samples), "return Python floats, seconds per call"


# ------------------------------------------------------------------ the missing-sync detector

def launch_only(fn, device):
    t0 = device.host_time()
    fn()
    return device.host_time() - t0


def warm_then_launch_only(fn, device):
    for _ in range(3):
        fn()
    return launch_only(fn, device)


def mean_of_launches(fn, device):
    t0 = device.host_time()
    for _ in range(10):
        fn()
    return (device.host_time() - t0) / 10


def reads_before_the_sync(fn, device):
    device.synchronize()
    t0 = device.host_time()
    fn()
    t1 = device.host_time()
    device.synchronize()
    return t1 - t0


def events_without_sync(fn, device):
    start, end = device.event(), device.event()
    device.record(start)
    fn()
    device.record(end)
    return device.elapsed_s(start, end)


def host_with_syncs(fn, device):
    device.synchronize()
    t0 = device.host_time()
    fn()
    device.synchronize()
    return device.host_time() - t0


def loop_then_sync(fn, device):
    t0 = device.host_time()
    for _ in range(10):
        fn()
    device.synchronize()
    return (device.host_time() - t0) / 10


def events_median(fn, device):
    pairs = [(device.event(), device.event()) for _ in range(9)]
    for start, end in pairs:
        device.record(start)
        fn()
        device.record(end)
    device.synchronize()
    return sorted(device.elapsed_s(s, e) for s, e in pairs)[4]


def overcounts(fn, device):
    return 2 * host_with_syncs(fn, device)


PLANTED = {launch_only: True, warm_then_launch_only: True, mean_of_launches: True,
           reads_before_the_sync: True, events_without_sync: True,
           host_with_syncs: False, loop_then_sync: False, events_median: False,
           overcounts: False}


@pytest.mark.points(3)
def test_detector_on_planted_timers():
    """Bugs: a known kernel shorter than the launch (a launch-only timer then reports more than
    the kernel and passes); the kernel's first call left to the timer (its 1 ms set-up hides
    the missing sync); EventNotReady not caught (events read before the sync must count as
    the bug); the comparison reversed; a timer that reports more than the kernel flagged."""
    wrong = []
    for timer, want in PLANTED.items():
        try:
            got = detect_missing_sync(timer)
        except Exception as exc:  # reported with the timer's name, not as a traceback
            got = f"an exception, {type(exc).__name__}: {exc}"
        if got is not want:
            wrong.append(f"{timer.__name__}: returned {got!r}, expected {want!r} ("
                         + ("it reads its clock before the device has run the kernel)"
                            if want else "it waits for the device: slow, not wrong)"))
    assert not wrong, "detect_missing_sync misjudged planted timers:\n" + "\n".join(wrong)

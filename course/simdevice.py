"""A simulated asynchronous device, and the same interface over a real CUDA GPU.

Lesson 09 writes a timing protocol against a small device interface, so that it can be graded
to the nanosecond on a CPU and then run unchanged on a GPU:

==========================  ==================================================================
``device.event()``          a new event (a marker in the device's queue)
``device.record(event)``    put the event at the end of the queue; returns at once
``device.synchronize()``    the host waits until the queue is empty
``device.elapsed_s(a, b)``  seconds of device time between two completed events
``device.flush_l2()``       queue work that overwrites the L2 cache; returns at once
``device.host_time()``      the host's clock in seconds (``time.perf_counter`` on a GPU)
==========================  ==================================================================

`SimDevice` keeps two clocks, as a real host and GPU do. Launching work costs the host a
launch overhead and returns at once; the device runs its queue in order, each item starting
when both the device is free and the host has finished launching it. An event's time is the
device time at which the queue reaches it; the host can read it only once its own clock has
passed that time (after `synchronize`, in practice), otherwise `elapsed_s` raises
`EventNotReady`, as ``torch.cuda.Event.elapsed_time`` raises on an event not yet completed.
Kernels made by `SimDevice.kernel` model three effects a benchmark must control:

- the first call of a kernel costs the host a one-time set-up (module load, autotuning);
- the device runs its first few kernels at a lower clock (clocks ramp up under load);
- a kernel whose buffer is in the L2 cache (it ran before, with no flush since) runs faster.

All times are whole nanoseconds inside, so every result is exact and the same on every machine.
`CudaDevice` gives the same six methods over ``torch.cuda``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

NS_PER_S = 1_000_000_000


class EventNotReady(RuntimeError):
    """Read an event the device has not reached yet (no synchronize before reading)."""


def _ns(seconds: float, what: str) -> int:
    if not seconds >= 0:
        raise ValueError(f"{what} must be a time >= 0 in seconds, got {seconds!r}")
    return round(seconds * NS_PER_S)


@dataclass
class SimEvent:
    """A marker in a SimDevice's queue; ``time_ns`` is None until it is recorded."""

    device: SimDevice
    time_ns: int | None = None


class SimKernel:
    """A callable that launches one kernel on its SimDevice (made by `SimDevice.kernel`)."""

    def __init__(self, device: SimDevice, cold_ns: int, warm_ns: int, buffer: str | None):
        self.device, self.cold_ns, self.warm_ns, self.buffer = device, cold_ns, warm_ns, buffer
        self.calls = 0

    def __call__(self) -> None:
        device = self.device
        if self.calls == 0:
            device.host_ns += device.first_call_ns
        self.calls += 1
        cached = self.buffer is not None and self.buffer in device.l2
        device._launch(self.warm_ns if cached else self.cold_ns)
        if self.buffer is not None:
            device.l2.add(self.buffer)


class SimDevice:
    """A deterministic model of an asynchronous accelerator with one queue (see the module).

    Defaults, in the simulation's own units (not measurements of any GPU): 5 us of host time to
    launch a kernel, 1 ms of host time for a kernel's first call, the first 3 kernels at half
    clock (twice as long), and a 100 us L2 flush.
    """

    def __init__(self, *, launch_s: float = 5e-6, first_call_s: float = 1e-3,
                 slow_kernels: int = 3, slow_factor: int = 2, flush_s: float = 100e-6):
        if int(slow_kernels) != slow_kernels or slow_kernels < 0:
            raise ValueError(f"slow_kernels must be a whole number >= 0, got {slow_kernels!r}")
        if int(slow_factor) != slow_factor or slow_factor < 1:
            raise ValueError(f"slow_factor must be a whole number >= 1, got {slow_factor!r}")
        self.launch_ns = _ns(launch_s, "launch_s")
        self.first_call_ns = _ns(first_call_s, "first_call_s")
        self.flush_ns = _ns(flush_s, "flush_s")
        self.slow_kernels, self.slow_factor = int(slow_kernels), int(slow_factor)
        self.host_ns = 0          # the host's clock
        self.free_ns = 0          # device time at which the queue is empty
        self.kernels_run = 0      # kernels queued so far (flushes included)
        self.syncs = 0            # calls of synchronize()
        self.flushes = 0          # calls of flush_l2()
        self.l2: set[str] = set()  # buffers the L2 cache holds

    # -- the interface a timing protocol uses ---------------------------------------------
    def event(self) -> SimEvent:
        """A new, unrecorded event."""
        return SimEvent(self)

    def record(self, event: SimEvent) -> None:
        """Place `event` at the end of the queue; it costs the host nothing."""
        if not isinstance(event, SimEvent) or event.device is not self:
            raise TypeError(f"record() takes an event made by this device's event(), got "
                            f"{event!r}")
        event.time_ns = max(self.free_ns, self.host_ns)

    def synchronize(self) -> None:
        """The host waits until the device has run everything queued."""
        self.syncs += 1
        self.host_ns = max(self.host_ns, self.free_ns)

    def elapsed_s(self, start: SimEvent, end: SimEvent) -> float:
        """Device seconds from `start` to `end`; both must be recorded and completed."""
        for name, event in (("start", start), ("end", end)):
            if not isinstance(event, SimEvent) or event.device is not self:
                raise TypeError(f"elapsed_s: {name} is not an event of this device: {event!r}")
            if event.time_ns is None:
                raise ValueError(f"elapsed_s: the {name} event was never recorded")
            if event.time_ns > self.host_ns:
                raise EventNotReady(
                    f"elapsed_s: the {name} event is at device time "
                    f"{event.time_ns / 1e3:.3f} us but the host clock is at "
                    f"{self.host_ns / 1e3:.3f} us: the device has not reached it yet. "
                    "Call device.synchronize() before reading events.")
        return (end.time_ns - start.time_ns) / NS_PER_S

    def flush_l2(self) -> None:
        """Queue a kernel that overwrites the whole L2 cache."""
        self.flushes += 1
        self._launch(self.flush_ns)
        self.l2.clear()

    def host_time(self) -> float:
        """The host's clock, in seconds."""
        return self.host_ns / NS_PER_S

    # -- making work ----------------------------------------------------------------------
    def kernel(self, cold_s: float, warm_s: float | None = None,
               buffer: str | None = None) -> Callable[[], None]:
        """A callable that launches a kernel taking `cold_s` device seconds, or `warm_s` when
        its `buffer` (a name) is in the L2 cache. Without a buffer it always takes `cold_s`."""
        cold = _ns(cold_s, "cold_s")
        warm = cold if warm_s is None else _ns(warm_s, "warm_s")
        if warm > cold:
            raise ValueError(f"a kernel is not slower with a warm cache: warm_s={warm_s} > "
                             f"cold_s={cold_s}")
        return SimKernel(self, cold, warm, buffer)

    def _launch(self, duration_ns: int) -> None:
        if self.kernels_run < self.slow_kernels:
            duration_ns *= self.slow_factor
        self.kernels_run += 1
        self.host_ns += self.launch_ns
        start = max(self.free_ns, self.host_ns)
        self.free_ns = start + duration_ns


class CudaDevice:
    """The interface of SimDevice over ``torch.cuda`` (the current device and stream).

    ``flush_l2`` zeroes a buffer of ``course.bench.l2_flush_bytes()`` (twice the L2, at least
    256 MiB), allocated here so that no allocation falls between timed calls.
    """

    def __init__(self):
        import torch

        from course.bench import ensure_cuda, l2_flush_bytes

        ensure_cuda("CudaDevice")
        self._flush = torch.empty(l2_flush_bytes(), dtype=torch.uint8, device="cuda")

    def event(self):
        import torch

        return torch.cuda.Event(enable_timing=True)

    def record(self, event) -> None:
        event.record()

    def synchronize(self) -> None:
        import torch

        torch.cuda.synchronize()

    def elapsed_s(self, start, end) -> float:
        return start.elapsed_time(end) / 1e3

    def flush_l2(self) -> None:
        self._flush.zero_()

    def host_time(self) -> float:
        return time.perf_counter()

"""GPU timing harness for the measured tier of the graders (CUDA events, L2 flush, medians).

Every GPU grader times through `cuda_time`, compares against a ceiling measured in the same run
(`measure_copy_bandwidth`, `measure_gemm_flops`) and rejects a point above the physical roof
with `check_roofline`: a rate above the datasheet is a timing bug, never a fast kernel.

The module imports without CUDA. Its timing functions then raise CudaUnavailableError; a test
calls `require_cuda()` first, which skips with the reason "needs a CUDA GPU".
"""

from __future__ import annotations

import datetime
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import torch

import hardware_fixtures
from hardware_fixtures.spec import GPUSpec

NEEDS_CUDA = "needs a CUDA GPU"
MIN_FLUSH_BYTES = 256 << 20          # 256 MiB: flush buffer when the cache size is unknown or small


class CudaUnavailableError(RuntimeError):
    """A GPU timing function was called where torch sees no CUDA device."""


class RooflineViolation(AssertionError):
    """A measured rate is above the device's physical roof: the measurement is wrong."""


def cuda_available() -> bool:
    """True when torch sees a CUDA (or ROCm) device."""
    return torch.cuda.is_available()


def require_cuda() -> None:
    """In a test: skip with reason "needs a CUDA GPU" when no CUDA device is present."""
    if not cuda_available():
        import pytest

        pytest.skip(NEEDS_CUDA)


def ensure_cuda(what: str) -> None:
    """Raise CudaUnavailableError naming `what` when no CUDA device is present."""
    if not cuda_available():
        raise CudaUnavailableError(
            f"{what} {NEEDS_CUDA}, but torch {torch.__version__} sees none "
            "(torch.cuda.is_available() is False). GPU-timed checks only run on a GPU; "
            "a test should call course.bench.require_cuda() first so it skips on CPU."
        )


@dataclass(frozen=True)
class Timing:
    """Per-call times in seconds from CUDA events; median is the number to report."""

    samples_s: tuple[float, ...]
    median_s: float
    min_s: float
    p90_s: float

    @classmethod
    def from_samples(cls, samples_s: Sequence[float]) -> Timing:
        """Summarise raw samples (seconds); needs at least one."""
        if not samples_s:
            raise ValueError("Timing needs at least one sample")
        samples = tuple(float(s) for s in samples_s)
        p90 = samples[0]
        if len(samples) > 1:
            p90 = statistics.quantiles(samples, n=10, method="inclusive")[-1]
        return cls(samples, statistics.median(samples), min(samples), p90)

    def __str__(self) -> str:
        return (f"median {self.median_s * 1e3:.4f} ms (min {self.min_s * 1e3:.4f}, "
                f"p90 {self.p90_s * 1e3:.4f}, n={len(self.samples_s)})")


def l2_flush_bytes() -> int:
    """Bytes to overwrite before each timed call: twice the largest cache, at least 256 MiB."""
    ensure_cuda("l2_flush_bytes")
    spec = hardware_fixtures.current()
    if spec is not None:
        cache = spec.last_level_cache_bytes
    else:
        props = torch.cuda.get_device_properties(torch.cuda.current_device())
        cache = int(getattr(props, "L2_cache_size", 0))
    return max(MIN_FLUSH_BYTES, 2 * cache)


# A kernel's GPU time, not its Python: how long the GPU is kept busy before each timed call of
# a kernel-vs-kernel comparison (cuda_time's host_lead_s). A Triton wrapper spends about 70 us
# on the host per call on the machine the course measured on (argument checks, Triton's
# launcher), more than many kernels take on the GPU; a C++ operator such as torch's int4 kernel
# spends a few. Without a lead, a timing starts when the GPU reaches the start event and so
# includes whatever part of that host time the L2 flush (about 70 us for 256 MiB) did not cover:
# a 23 us GEMV measured 23 us in some rounds and 50 to 80 us in others.
KERNEL_HOST_LEAD_S = 300e-6


def cuda_time(fn: Callable[[], object], *, warmup: int = 10, iters: int = 100,
              flush_l2: bool = True, host_lead_s: float = 0.0) -> Timing:
    """Time fn() on the current CUDA stream: one pair of CUDA events around each call.

    Runs fn `warmup` times untimed, then `iters` timed calls; before each timed call it
    overwrites a buffer larger than the L2 (so fn starts with a cold cache), outside the events.
    Synchronizes before reading the events. Returns seconds per call.

    ``host_lead_s > 0``: after the flush, the GPU also spins for that long before the start
    event, so that the host has queued fn's launches by the time the GPU gets there: the figure
    is then GPU time only. Use it to compare kernels (``KERNEL_HOST_LEAD_S``); leave it at 0
    where the host's share is part of what is measured (eager launches against a CUDA graph).
    """
    ensure_cuda("cuda_time")
    if iters < 1 or warmup < 0:
        raise ValueError(f"need iters >= 1 and warmup >= 0, got iters={iters}, warmup={warmup}")
    if not host_lead_s >= 0:
        raise ValueError(f"host_lead_s must be >= 0 seconds, got {host_lead_s}")
    flush = torch.empty(l2_flush_bytes(), dtype=torch.uint8, device="cuda") if flush_l2 else None
    lead_cycles = int(host_lead_s * _spin_cycles_per_s()) if host_lead_s > 0 else 0
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(iters)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(iters)]
    for start, end in zip(starts, ends):
        if flush is not None:
            flush.zero_()
        if lead_cycles:
            torch.cuda._sleep(lead_cycles)
        start.record()
        fn()
        end.record()
    torch.cuda.synchronize()
    return Timing.from_samples([s.elapsed_time(e) / 1e3 for s, e in zip(starts, ends)])


_SPIN_RATE: dict[int, float] = {}


def _spin_cycles_per_s() -> float:
    """Cycles of ``torch.cuda._sleep`` per second on the current device, measured once."""
    index = torch.cuda.current_device()
    if index not in _SPIN_RATE:
        cycles = 2_000_000
        torch.cuda._sleep(cycles)                     # first call: module load, clocks up
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        torch.cuda._sleep(cycles)
        end.record()
        torch.cuda.synchronize()
        _SPIN_RATE[index] = cycles / max(start.elapsed_time(end) / 1e3, 1e-9)
    return _SPIN_RATE[index]


def measure_copy_bandwidth(nbytes: int = 1 << 30, *, warmup: int = 5, iters: int = 50) -> float:
    """Device-to-device copy rate in bytes/s, counting bytes read plus bytes written.

    This is the achievable DRAM bandwidth to compare a memory-bound kernel against
    (an H100 80GB HBM3 reaches about 3.0e12 of its 3.35e12 datasheet figure).
    """
    ensure_cuda("measure_copy_bandwidth")
    src = torch.randint(0, 256, (nbytes,), dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)
    timing = cuda_time(lambda: dst.copy_(src), warmup=warmup, iters=iters)
    if not torch.equal(dst, src):
        raise RuntimeError("measure_copy_bandwidth: the copy is wrong; the timing means nothing")
    return 2 * nbytes / timing.median_s


def measure_gemm_flops(n: int = 8192, dtype: torch.dtype = torch.bfloat16, *,
                       warmup: int = 10, iters: int = 50) -> float:
    """Rate of an n x n x n matmul on random data in FLOP/s (2 n^3 per call).

    fp8 dtypes (torch.float8_e4m3fn, torch.float8_e5m2) go through torch._scaled_mm with unit
    scales, a bf16 output and use_fast_accum=True (the fastest mode: on an H100 about 7% above
    the default); other dtypes through torch.mm. A few output rows are checked against float32
    so a fast wrong answer cannot pass. Short runs on a cold GPU read higher than sustained
    load (H100 bf16 8192^3: about 800 TFLOP/s cold, 680-700 sustained).
    """
    ensure_cuda("measure_gemm_flops")
    a = torch.randn(n, n, device="cuda")
    b = torch.randn(n, n, device="cuda")
    if dtype in (torch.float8_e4m3fn, torch.float8_e5m2):
        a8, b8 = a.to(dtype), b.to(dtype).t()            # _scaled_mm wants b column-major
        one = torch.ones((), device="cuda")
        a, b = a8.float(), b8.float()
        fn = lambda: torch._scaled_mm(a8, b8, scale_a=one, scale_b=one,  # noqa: E731
                                      out_dtype=torch.bfloat16, use_fast_accum=True)
    else:
        a_t, b_t = a.to(dtype), b.to(dtype)
        out = torch.empty(n, n, device="cuda", dtype=dtype)
        a, b = a_t.float(), b_t.float()
        fn = lambda: torch.mm(a_t, b_t, out=out)  # noqa: E731
    timing = cuda_time(fn, warmup=warmup, iters=iters)
    rows = min(n, 64)
    got, want = fn()[:rows].float(), a[:rows] @ b
    rel = ((got - want).norm() / want.norm()).item()
    if not rel < 2e-2:
        raise RuntimeError(f"measure_gemm_flops: result off by {rel:.3g} (relative); timing discarded")
    return 2 * n**3 / timing.median_s


def check_roofline(achieved: float, roof: float, what: str, *, tolerance: float = 0.05) -> float:
    """Return achieved / roof; raise RooflineViolation if achieved > roof x (1 + tolerance).

    `what` names the quantity and unit, e.g. "copy bandwidth (bytes/s)". A measured rate above
    the physical roof means the timing is wrong (no synchronize before reading a host clock,
    timing a cached or empty call, or counting bytes/FLOPs the kernel does not do).
    """
    if roof <= 0 or achieved < 0:
        raise ValueError(f"{what}: need roof > 0 and achieved >= 0, got {achieved=} {roof=}")
    ratio = achieved / roof
    if ratio > 1 + tolerance:
        raise RooflineViolation(
            f"{what}: measured {achieved:.4g} is {ratio:.2f}x the physical roof {roof:.4g} "
            f"(allowed up to {1 + tolerance:.2f}x). This is a timing bug, not a fast kernel: "
            "check for a missing torch.cuda.synchronize(), an empty or cached call, or a "
            "FLOP/byte count the kernel does not actually do."
        )
    return ratio


def record(test: str, figures: dict) -> None:
    """Print a GPU grader's measured figures as one JSON line, and append it (with the test's
    name) to the file named by $COURSE_BENCH_OUT when set: how calibrations are collected."""
    import json
    import os

    print(json.dumps(figures))
    out = os.environ.get("COURSE_BENCH_OUT")
    if out:
        with open(out, "a") as fh:
            fh.write(json.dumps({"test": test, **figures}) + "\n")


def spec_or_measure(*, copy_nbytes: int = 1 << 30, gemm_n: int = 8192) -> GPUSpec:
    """The current device's fixture (``hardware_fixtures.current()``), or a spec measured now
    if none matches.

    A measured spec has the device's own SM count, L2 and memory size, the measured copy
    bandwidth (bytes read + written per second) as its bandwidth, and the measured bf16 GEMM
    rate as its only peak. Raises CudaUnavailableError without CUDA.
    """
    ensure_cuda("course.bench.spec_or_measure")
    spec = hardware_fixtures.current()
    if spec is not None:
        return spec
    return _measure_current(copy_nbytes, gemm_n)


def _measure_current(copy_nbytes: int, gemm_n: int) -> GPUSpec:
    """A spec of the current device from its properties and two measurements."""
    props = torch.cuda.get_device_properties(torch.cuda.current_device())
    copy = measure_copy_bandwidth(copy_nbytes)
    gemm = measure_gemm_flops(gemm_n, torch.bfloat16)
    l2 = int(getattr(props, "L2_cache_size", 0))
    today = datetime.date.today().isoformat()
    how = f"measured by course.bench on {today}"
    calibration = {
        "device": props.name, "torch": torch.__version__, "cuda": str(torch.version.cuda),
        "date": today, "provisional": False,
        "command": f"course.bench.measure_copy_bandwidth({copy_nbytes}); "
                   f"course.bench.measure_gemm_flops({gemm_n}, torch.bfloat16)",
        "copy_bytes_per_s": copy, "bf16_gemm_flops_per_s": gemm,
    }
    return GPUSpec(
        key="measured", name=props.name, vendor="unknown", architecture="unknown", chip="unknown",
        compute_capability=f"{props.major}.{props.minor}", match=(props.name,), exclude=(),
        compute_unit="SM", sm_count=props.multi_processor_count, l2_bytes=l2,
        last_level_cache_bytes=l2, memory_type="unknown", memory_bytes=props.total_memory,
        memory_bandwidth_bytes_per_s=copy, peak_flops_per_s=MappingProxyType({"bf16": gemm}),
        gpu_link="unknown", gpu_link_bytes_per_s_per_direction=0.0, pcie_generation=0,
        pcie_x16_bytes_per_s_per_direction=0.0,
        sources=MappingProxyType({
            "sm_count": "torch.cuda.get_device_properties",
            "l2_bytes": "torch.cuda.get_device_properties",
            "memory_bytes": "torch.cuda.get_device_properties (total_memory)",
            "memory_bandwidth_bytes_per_s": f"{how}: device copy, bytes read + written / median time",
            "peak_flops_per_s.bf16": f"{how}: {gemm_n}^3 bf16 matmul, 2n^3 / median time",
        }),
        unverified=MappingProxyType({}), calibration=MappingProxyType(calibration),
        path=None, measured=True,
    )


def capture_cuda_graph(fn: Callable[[], object], *, warmup: int = 3):
    """Capture fn() in a CUDA graph; return ``(graph, out)``, where ``graph.replay()`` reruns
    the captured kernels and rewrites ``out`` (the tensors fn returned while being captured).

    A replay is one launch from the host, so timing ``graph.replay`` with ``cuda_time``
    measures the device's work, not how fast a busy host issues a few hundred small kernels.
    fn is first run ``warmup`` times on a side stream (lazy initialisation, cuBLAS workspaces),
    as torch's CUDA-graph notes require. Raises whatever capture raised when fn cannot be
    captured: a host synchronisation (``.item()``, ``.cpu()``, ``print`` of a tensor, a
    data-dependent shape such as ``nonzero``) or a copy from pageable host memory.
    """
    ensure_cuda("capture_cuda_graph")
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(warmup):
            fn()
    torch.cuda.current_stream().wait_stream(side)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = fn()
    torch.cuda.synchronize()
    return graph, out

"""The roofline model (Williams, Waterman and Patterson, CACM 2009) on a GPU's spec sheet.

An operator that does ``flops`` floating-point operations and moves ``nbytes`` bytes between
DRAM and the chip has an arithmetic intensity of ``flops / nbytes`` FLOP/byte. On a device with
a peak of ``P`` FLOP/s and a DRAM bandwidth of ``B`` bytes/s it can run at most at
``min(P, B * intensity)`` FLOP/s: the roof. The two roofs meet at the ridge point ``P / B``.

Units everywhere: FLOP, bytes, seconds, FLOP/s, bytes/s (decimal: 3.35 TB/s is 3.35e12).

Read: learning/lesson11.md#the-model
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from course.bench import RooflineViolation, check_roofline  # noqa: F401  (the error it raises)
from hardware_fixtures.spec import GPUSpec, canonical_dtype

TOLERANCE = 0.05  # a point may sit up to 5% above its roof (timer noise), as in course.bench
MIN_RATE = 1e9    # below 1 GB/s or 1 GFLOP/s a "rate" was given in the wrong unit


@dataclass(frozen=True)
class OpSpec:
    """One operator as the roofline sees it: FLOPs done, DRAM bytes moved, and the dtype whose
    peak applies (``"bf16"``, ``"fp8"``, ``"fp32"``, or a torch dtype)."""

    name: str
    flops: float
    nbytes: float
    dtype: str = "bf16"

    def __post_init__(self):
        for what, value in (("flops", self.flops), ("nbytes", self.nbytes)):
            if isinstance(value, bool) or not isinstance(value, numbers.Real) \
                    or not math.isfinite(value) or value <= 0:
                raise ValueError(f"op {self.name!r}: {what} must be a positive finite number, "
                                 f"got {value!r}")
        object.__setattr__(self, "dtype", canonical_dtype(self.dtype))

    @property
    def intensity(self) -> float:
        """Arithmetic intensity in FLOP/byte."""
        return self.flops / self.nbytes


@dataclass(frozen=True)
class Point:
    """One operator placed on the roofline. Rates in FLOP/s, intensity in FLOP/byte."""

    name: str
    dtype: str
    intensity: float
    time_s: float
    achieved_flops: float          # op.flops / time_s
    roof_flops: float              # attainable_flops at this intensity for this dtype
    fraction: float                # achieved_flops / roof_flops
    bound: Literal["memory", "compute"]


def check_rates(peak_flops: float, peak_bw: float) -> None:
    """Raise ValueError, in plain words, for a peak or bandwidth that is not a positive rate in
    FLOP/s or bytes/s (a bandwidth of 3.35 is TB/s written without its 1e12)."""
    rates = (("peak_flops", "FLOP/s", peak_flops), ("peak_bw", "bytes/s", peak_bw))
    for what, unit, value in rates:
        if isinstance(value, bool) or not isinstance(value, numbers.Real) \
                or not math.isfinite(value):
            raise ValueError(f"{what} must be a finite number of {unit}, got {value!r}")
        if value <= 0:
            raise ValueError(f"{what} must be positive ({unit}), got {value!r}")
        if value < MIN_RATE:
            raise ValueError(
                f"{what} = {value!r} {unit} is below 1e9: no GPU is that slow. Rates here are in "
                f"{unit}, not T{unit} or G{unit}: 3.35 TB/s is 3.35e12 bytes/s, 989.4 TFLOP/s "
                "is 989.4e12 FLOP/s")


def attainable_flops(ai: float, peak_flops: float, peak_bw: float) -> float:
    """The roof: the highest rate an operator of intensity ``ai`` can reach.

    Args:
        ai: arithmetic intensity in FLOP/byte (> 0).
        peak_flops: the compute roof in FLOP/s (e.g. 989.4e12).
        peak_bw: the DRAM bandwidth in bytes/s (e.g. 3.35e12, not 3.35).
    Returns:
        FLOP/s: ``roof = min(peak_flops, peak_bw * ai)``. Never above either roof, and
        non-decreasing in ``ai``.

    Example: an H100 SXM (989.4e12 FLOP/s, 3.35e12 bytes/s) at 1 FLOP/byte (a bf16 GEMV)
    reaches at most 3.35e12 FLOP/s; at 1000 FLOP/byte, 989.4e12.

    >>> attainable_flops(1.0, 989.4e12, 3.35e12)
    3350000000000.0

    Read: learning/lesson11.md#the-model
    """
    check_rates(peak_flops, peak_bw)
    if isinstance(ai, bool) or not isinstance(ai, numbers.Real) or not math.isfinite(ai) or ai <= 0:
        raise ValueError(f"arithmetic intensity must be a positive finite FLOP/byte, got {ai!r}")
    ### BEGIN SOLUTION
    return min(peak_flops, peak_bw * ai)
    ### END SOLUTION


def ridge_point(spec: GPUSpec, dtype: object) -> float:
    """The intensity, in FLOP/byte, where the bandwidth roof meets the compute roof of ``dtype``.

    Args:
        spec: a GPU's spec sheet (``hardware_fixtures.load("h100_sxm")``): ``spec.peak_flops(
            dtype)`` is the dense peak in FLOP/s, ``spec.memory_bandwidth_bytes_per_s`` the DRAM
            bandwidth in bytes/s.
        dtype: ``"bf16"``, ``"fp8"``, ``"fp32"``, ... or a torch dtype.
    Returns:
        ``ridge = peak / bandwidth``, e.g. about 295 FLOP/byte for an H100 SXM in bf16.

    Read: learning/lesson11.md#ridge-points-of-real-gpus
    """
    ### BEGIN SOLUTION
    return spec.peak_flops(dtype) / spec.memory_bandwidth_bytes_per_s
    ### END SOLUTION


def classify(op: OpSpec, spec: GPUSpec) -> Literal["memory", "compute"]:
    """Which roof limits ``op`` on ``spec``: ``"memory"`` or ``"compute"``.

    ``"memory"`` when the op's intensity lies strictly below the ridge point of its own dtype,
    ``"compute"`` from the ridge on: an op exactly at the ridge is ``"compute"``, because there
    it already reaches the peak and more bandwidth would not make it faster.

    Example: a bf16 GEMV (about 1 FLOP/byte) is ``"memory"`` on every GPU; an 8192^3 bf16 GEMM
    (about 2731 FLOP/byte) is ``"compute"``.

    Read: learning/lesson11.md#which-side-of-the-ridge
    """
    ### BEGIN SOLUTION
    return "memory" if op.intensity < ridge_point(spec, op.dtype) else "compute"
    ### END SOLUTION


def roofline_report(ops: Sequence[OpSpec], measured_times_s: Sequence[float],
                    spec: GPUSpec) -> list[Point]:
    """Place measured operators under their roofs.

    Args:
        ops: the operators, each with its own dtype (a report may mix bf16 and fp8).
        measured_times_s: one time per op, in seconds (a median from ``course.bench.cuda_time``).
        spec: the device the times were measured on.
    Returns:
        One ``Point`` per op, in the order given: ``achieved = op.flops / time``, ``roof =
        attainable_flops`` at the op's intensity with the peak of the op's dtype and the
        spec's bandwidth, ``fraction = achieved / roof``, ``bound = classify(op, spec)``.
        An empty list of ops gives an empty report.
    Raises:
        RooflineViolation (from ``course.bench.check_roofline``) naming the op when a point
        lies more than ``TOLERANCE`` (5%) above its roof: that is a timing bug (a missing
        synchronize, a cached result, a FLOP or byte count the kernel does not do), never a
        fast kernel.

    Read: learning/lesson11.md#a-report-from-measured-times
    """
    ops, times = list(ops), list(measured_times_s)
    if len(ops) != len(times):
        raise ValueError(f"{len(ops)} ops but {len(times)} measured times: give one time per op")
    for op, t in zip(ops, times):
        if isinstance(t, bool) or not isinstance(t, numbers.Real) or not math.isfinite(t) or t <= 0:
            raise ValueError(f"op {op.name!r}: measured time must be a positive number of "
                             f"seconds, got {t!r}")
    ### BEGIN SOLUTION
    # hint: check_roofline(achieved, roof, what, tolerance=TOLERANCE) raises for you
    points = []
    for op, t in zip(ops, times):
        peak = spec.peak_flops(op.dtype)
        roof = attainable_flops(op.intensity, peak, spec.memory_bandwidth_bytes_per_s)
        achieved = op.flops / t
        check_roofline(achieved, roof, f"{op.name} ({op.dtype}, FLOP/s)", tolerance=TOLERANCE)
        points.append(Point(op.name, op.dtype, op.intensity, t, achieved, roof, achieved / roof,
                            classify(op, spec)))
    return points
    ### END SOLUTION

"""Hidden grader, lesson 11: the roofline, the ridge, classification and the report.

References: the formulas of Williams, Waterman and Patterson (CACM 2009), written out here,
``min(peak, bandwidth x intensity)`` and ``peak / bandwidth``, with the peaks and bandwidths of
the course's fixtures; specs with round figures make the ridge an exact number.
"""

import dataclasses
import math
from types import MappingProxyType

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import hardware_fixtures as hf
from course.bench import RooflineViolation
from exercises.lesson11.roofline import (OpSpec, attainable_flops, classify, ridge_point,
                                         roofline_report)

H100 = hf.load("h100_sxm")


def round_spec(bf16=200e12, fp8=400e12, fp32=50e12, bw=2e12):
    """The H100's sheet with round figures: ridges of exactly 100, 200 and 25 FLOP/byte."""
    return dataclasses.replace(H100, memory_bandwidth_bytes_per_s=bw, peak_flops_per_s=
                               MappingProxyType({"bf16": bf16, "fp8": fp8, "fp32": fp32}))


@pytest.mark.points(2)
@settings(max_examples=60)
@given(ai=st.floats(1e-3, 1e7), ai2=st.floats(1e-3, 1e7), peak=st.floats(1e9, 1e17),
       bw=st.floats(1e9, 1e14))
def test_attainable_is_the_min_and_non_decreasing(ai, ai2, peak, bw):
    """Bugs: max instead of min (a GEMV promised the tensor-core peak); the two roofs added or
    combined harmonically (below both, never reaching either); peak x intensity."""
    got = attainable_flops(ai, peak, bw)
    want = min(peak, bw * ai)
    assert math.isclose(got, want, rel_tol=1e-12), (
        f"attainable_flops({ai!r}, {peak!r}, {bw!r}) = {got!r}; expected min(peak, bw * ai) = "
        f"{want!r}")
    lo, hi = sorted((ai, ai2))
    assert attainable_flops(lo, peak, bw) <= attainable_flops(hi, peak, bw), \
        f"the roof must not go down as intensity grows: {lo} -> {hi}"


@pytest.mark.points(2)
@pytest.mark.parametrize("key", sorted(hf.names()))
def test_ridge_of_every_fixture_and_dtype(key):
    """Bugs: bandwidth / peak (the ridge upside down); the dtype ignored (always the bf16
    peak: FP8's ridge is twice as far out); a bandwidth in GB/s or GiB/s; a dtype given as a
    torch dtype not understood (use spec.peak_flops, which knows the aliases)."""
    spec = hf.load(key)
    for dtype, peak in spec.peak_flops_per_s.items():
        want = peak / spec.memory_bandwidth_bytes_per_s
        got = ridge_point(spec, dtype)
        assert math.isclose(got, want, rel_tol=1e-12), (
            f"{spec.name}, {dtype}: ridge_point = {got!r}; expected peak / bandwidth = "
            f"{peak:.4g} / {spec.memory_bandwidth_bytes_per_s:.4g} = {want:.4g} FLOP/byte")
    if "bf16" in spec.peak_flops_per_s:
        assert math.isclose(ridge_point(spec, torch.bfloat16), ridge_point(spec, "bf16"))


@pytest.mark.points(2)
def test_classification_flips_exactly_at_the_ridge():
    """Bugs: ``<=`` where the docstring says the ridge itself is compute-bound; the dtype's own
    ridge not used (an FP8 op at 150 FLOP/byte is memory-bound where a BF16 one is not); the
    answer spelled other than 'memory' / 'compute'."""
    spec = round_spec()                         # ridges: bf16 100, fp8 200, fp32 25 FLOP/byte
    nbytes = 1_000_000
    for dtype, ridge in (("bf16", 100), ("fp8", 200), ("fp32", 25)):
        at = OpSpec("at", ridge * nbytes, nbytes, dtype)
        below = OpSpec("below", ridge * nbytes - 1, nbytes, dtype)
        above = OpSpec("above", ridge * nbytes + 1, nbytes, dtype)
        got = (classify(below, spec), classify(at, spec), classify(above, spec))
        assert got == ("memory", "compute", "compute"), (
            f"{dtype}, ridge {ridge} FLOP/byte: just below, exactly at, just above the ridge "
            f"classified {got}; expected ('memory', 'compute', 'compute'): the ridge itself is "
            "compute-bound")
    assert classify(OpSpec("fp8 op", 150 * nbytes, nbytes, "fp8"), spec) == "memory"
    for key in ("h100_sxm", "a100_sxm_80gb", "l4"):   # at the ridge of real sheets
        real = hf.load(key)
        op = OpSpec("at", real.peak_flops("bf16"), real.memory_bandwidth_bytes_per_s, "bf16")
        assert classify(op, real) == "compute", f"{real.name}: an op at the ridge is compute"


def op_at(name, dtype, intensity, fraction, spec):
    """An op of this intensity and a time that puts it at `fraction` of its roof."""
    nbytes = 1e9
    op = OpSpec(name, intensity * nbytes, nbytes, dtype)
    roof = min(spec.peak_flops(dtype), spec.memory_bandwidth_bytes_per_s * intensity)
    return op, op.flops / (fraction * roof), roof


@pytest.mark.points(3)
def test_report_of_mixed_dtypes():
    """Bugs: every op judged against the peak of the first op's dtype (an FP8 GEMM then seems
    twice as fast as the BF16 peak allows, and an FP32 one far from its roof); achieved taken
    as nbytes / time; fraction against the peak on the memory side; points out of order."""
    spec = round_spec()
    cases = [op_at("gemv", "bf16", 1.0, 0.9, spec), op_at("fp8 gemm", "fp8", 1000.0, 0.8, spec),
             op_at("fp32 gemm", "fp32", 40.0, 0.5, spec), op_at("bf16 gemm", "bf16", 300.0, 0.7, spec)]
    ops, times = [c[0] for c in cases], [c[1] for c in cases]
    report = roofline_report(ops, times, spec)
    assert [p.name for p in report] == [op.name for op in ops], "one point per op, in order"
    for p, (op, t, roof) in zip(report, cases):
        where = f"point {op.name!r} ({op.dtype}, {op.intensity} FLOP/byte)"
        assert p.dtype == op.dtype and math.isclose(p.intensity, op.intensity), where
        assert math.isclose(p.time_s, t), f"{where}: time {p.time_s}, measured {t}"
        assert math.isclose(p.achieved_flops, op.flops / t, rel_tol=1e-9), \
            f"{where}: achieved {p.achieved_flops:.4g} FLOP/s, expected flops / time"
        assert math.isclose(p.roof_flops, roof, rel_tol=1e-9), \
            f"{where}: roof {p.roof_flops:.4g} FLOP/s, expected {roof:.4g} (its own dtype's)"
        assert math.isclose(p.fraction, op.flops / t / roof, rel_tol=1e-9), where
    assert [p.bound for p in report] == ["memory", "compute", "compute", "compute"]


@pytest.mark.points(1)
def test_empty_report():
    """Bug: a report that looks at ops[0] (a common dtype, a first peak) and fails on an empty
    list instead of returning one."""
    assert roofline_report([], [], H100) == []


@pytest.mark.points(3)
def test_points_above_the_roof_fail_beyond_the_tolerance_naming_the_op():
    """Bugs: no check at all (a timing bug reported as a kernel at 300% of the peak); the 5%
    tolerance ignored (a point 4% above its roof, within timer noise, refused); the error not
    naming the op that is wrong."""
    spec = round_spec()
    fine = [op_at("gemv", "bf16", 1.0, 1.04, spec), op_at("gemm", "fp8", 500.0, 1.0, spec)]
    report = roofline_report([c[0] for c in fine], [c[1] for c in fine], spec)
    assert [round(p.fraction, 6) for p in report] == [1.04, 1.0], \
        "points up to 5% above their roof are timer noise and must be reported"
    bad = [op_at("decode gemv", "bf16", 1.0, 0.9, spec),
           op_at("softmax without synchronize", "bf16", 1.25, 3.0, spec)]
    with pytest.raises(RooflineViolation) as info:
        roofline_report([c[0] for c in bad], [c[1] for c in bad], spec)
    assert "softmax without synchronize" in str(info.value), (
        f"the error must name the op whose point is above its roof; it said: {info.value}")
    just_over = [op_at("gemm", "bf16", 1000.0, 1.06, spec)]
    with pytest.raises(RooflineViolation, match="gemm"):
        roofline_report([c[0] for c in just_over], [c[1] for c in just_over], spec)

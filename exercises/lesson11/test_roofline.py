"""Lesson 11, part 1: attainable FLOP/s, ridge points, classification and the report.
Run: pytest exercises/lesson11"""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hardware_fixtures as hf
from course.bench import RooflineViolation
from exercises.lesson11.roofline import (OpSpec, attainable_flops, classify, ridge_point,
                                         roofline_report)

H100 = hf.load("h100_sxm")


def test_attainable_on_each_side_of_the_ridge():
    # H100 SXM datasheet: 989.4e12 FLOP/s dense bf16, 3.35e12 bytes/s
    assert attainable_flops(1.0, 989.4e12, 3.35e12) == 3.35e12          # a bf16 GEMV
    assert attainable_flops(100.0, 989.4e12, 3.35e12) == 335e12
    assert attainable_flops(1000.0, 989.4e12, 3.35e12) == 989.4e12      # past the ridge


@settings(max_examples=40)
@given(ai=st.floats(1e-3, 1e6), peak=st.floats(1e12, 1e16), bw=st.floats(1e10, 1e13))
def test_attainable_is_under_both_roofs_and_reaches_one(ai, peak, bw):
    got = attainable_flops(ai, peak, bw)
    assert got <= min(peak, bw * ai), f"attainable {got} is above min(peak, bw * ai)"
    assert math.isclose(got, min(peak, bw * ai), rel_tol=1e-12), \
        f"attainable_flops({ai}, {peak}, {bw}) = {got}, expected min(peak, bw * ai)"


def test_ridge_points_of_real_gpus():
    """peak / bandwidth, from the datasheet figures the fixtures hold."""
    assert math.isclose(ridge_point(H100, "bf16"), 989.4e12 / 3.35e12)             # ~295
    assert math.isclose(ridge_point(hf.load("a100_sxm_80gb"), "bf16"), 312e12 / 2.039e12)  # ~153
    assert math.isclose(ridge_point(hf.load("l4"), "bf16"), 121e12 / 300e9)         # ~403
    assert math.isclose(ridge_point(H100, "fp8"), 1978.9e12 / 3.35e12)             # twice bf16


def test_decode_gemv_is_memory_bound_and_a_big_gemm_compute_bound():
    gemv = OpSpec("gemv", 2 * 4096 * 4096, 2 * 4096 * 4096, "bf16")                # 1 FLOP/byte
    gemm = OpSpec("gemm", 2 * 8192**3, 3 * 2 * 8192**2, "bf16")                    # 2731 FLOP/byte
    assert classify(gemv, H100) == "memory"
    assert classify(gemm, H100) == "compute"


def test_report_places_points_under_their_roofs():
    gemv = OpSpec("gemv", 2 * 4096 * 4096, 2 * 4096 * 4096, "bf16")
    time_s = gemv.nbytes / 3.0e12          # read at 3.0 TB/s: 0.90 of the 3.35 TB/s roof
    [point] = roofline_report([gemv], [time_s], H100)
    assert point.name == "gemv" and point.bound == "memory"
    assert math.isclose(point.achieved_flops, gemv.flops / time_s)
    assert math.isclose(point.roof_flops, 3.35e12)
    assert math.isclose(point.fraction, 3.0 / 3.35), f"fraction {point.fraction}, expected 0.896"


def test_a_point_above_its_roof_is_a_timing_bug_and_names_the_op():
    gemv = OpSpec("decode gemv", 2 * 4096 * 4096, 2 * 4096 * 4096, "bf16")
    too_fast = gemv.nbytes / 10e12         # 10 TB/s on a 3.35 TB/s part
    with pytest.raises(RooflineViolation, match="decode gemv"):
        roofline_report([gemv], [too_fast], H100)


def test_rates_in_the_wrong_unit_and_bad_inputs_are_refused():
    assert attainable_flops(2.0, 989.4e12, 3.35e12) == 6.7e12
    with pytest.raises(ValueError, match="3.35e12"):
        attainable_flops(1.0, 989.4e12, 3.35)          # TB/s typed without its 1e12
    for ai in (0.0, -1.0):
        with pytest.raises(ValueError):
            attainable_flops(ai, 989.4e12, 3.35e12)
    with pytest.raises(ValueError):
        attainable_flops(1.0, -1.0, 3.35e12)

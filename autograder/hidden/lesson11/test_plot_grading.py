"""Hidden grader, lesson 11: the roofline plot, checked by the data it drew.

Reference: the roofs written out here from the spec (bandwidth x intensity, each dtype's peak
from its ridge on) and the report's own points; the PNG must exist and be a PNG.
"""

import math

import pytest

import hardware_fixtures as hf
from course.plot import is_png
from exercises.lesson11.roofline import OpSpec, roofline_report
from exercises.lesson11.roofline_plot import (bandwidth_label, intensity_axis, plot_roofline,
                                              roof_label)

H100 = hf.load("h100_sxm")


def close(a, b):
    return math.isclose(a, b, rel_tol=1e-9)


@pytest.mark.points(3)
def test_plot_of_a_mixed_dtype_report(tmp_path):
    """Bugs: points drawn at their roof (or their fraction) instead of the achieved rate; the
    bandwidth roof stopping at the lowest ridge (the FP8 roof then floats unconnected) or
    running past the highest; one compute roof for every dtype; a roof at the wrong height."""
    ops = [OpSpec("gemv", 2 * 4096**2, 2 * 4096**2, "bf16"),
           OpSpec("bf16 gemm", 2 * 8192**3, 6 * 8192**2, "bf16"),
           OpSpec("fp8 gemm", 2 * 8192**3, 3 * 8192**2, "fp8")]
    times = [ops[0].nbytes / 3.0e12, ops[1].flops / 695e12, ops[2].flops / 1308e12]
    report = roofline_report(ops, times, H100)
    path = tmp_path / "r.png"
    data = plot_roofline(report, H100, path)
    assert is_png(path), "plot_roofline must save a PNG at the path given"
    assert data.loglog, "the roofline is drawn on log-log axes"
    assert sorted(l.label for l in data.lines) == sorted(
        [bandwidth_label(H100), roof_label(H100, "bf16"), roof_label(H100, "fp8")])
    bw = H100.memory_bandwidth_bytes_per_s
    diagonal = data.line(bandwidth_label(H100))
    assert all(close(y, bw * x) for x, y in zip(diagonal.x, diagonal.y)), \
        "the bandwidth roof must be y = bandwidth x intensity"
    top = H100.peak_flops("fp8") / bw
    assert close(max(diagonal.x), top), (
        f"the bandwidth roof must run up to the highest ridge drawn ({top:.1f} FLOP/byte, "
        f"FP8), it ends at {max(diagonal.x):.1f}")
    xs = intensity_axis(report, H100, ["bf16", "fp8"])
    for dtype in ("bf16", "fp8"):
        roof, peak = data.line(roof_label(H100, dtype)), H100.peak_flops(dtype)
        assert all(y == peak for y in roof.y), f"the {dtype} roof must be flat at {peak:.4g}"
        assert close(roof.x[0], peak / bw) and close(roof.x[-1], xs[-1]), (
            f"the {dtype} roof must run from its ridge ({peak / bw:.1f}) to the axis's end")
    assert len(data.points) == 3
    for p in report:
        drawn = data.point(p.name)
        assert (drawn.x, drawn.y) == (p.intensity, p.achieved_flops), (
            f"point {p.name!r} drawn at ({drawn.x:.4g}, {drawn.y:.4g}); expected (intensity, "
            f"achieved FLOP/s) = ({p.intensity:.4g}, {p.achieved_flops:.4g})")


@pytest.mark.points(1)
def test_plot_of_no_points_draws_the_roofs(tmp_path):
    """Bugs: an empty report refused or drawn without roofs; the dtypes argument ignored."""
    data = plot_roofline([], H100, tmp_path / "empty.png", dtypes=["bf16", "fp32"])
    assert is_png(tmp_path / "empty.png") and not data.points
    assert sorted(l.label for l in data.lines) == sorted(
        [bandwidth_label(H100), roof_label(H100, "bf16"), roof_label(H100, "fp32")])

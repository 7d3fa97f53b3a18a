"""Lesson 11, part 3: the roofline figure, checked by its data. Run: pytest exercises/lesson11
Open the PNG this test writes (its path is printed with pytest -s) to see your plot."""

import hardware_fixtures as hf
from course.plot import is_png
from exercises.lesson11.roofline import OpSpec, roofline_report
from exercises.lesson11.roofline_plot import bandwidth_label, plot_roofline, roof_label

H100 = hf.load("h100_sxm")


def test_plot_draws_each_roof_and_each_point(tmp_path):
    ops = [OpSpec("gemv", 2 * 4096 * 4096, 2 * 4096 * 4096, "bf16"),
           OpSpec("gemm", 2 * 8192**3, 3 * 2 * 8192**2, "bf16")]
    times = [ops[0].nbytes / 3.0e12, ops[1].flops / 695e12]
    report = roofline_report(ops, times, H100)
    path = tmp_path / "roofline.png"
    data = plot_roofline(report, H100, path)
    print(f"roofline plot written to {path}")
    assert is_png(path), f"{path} is not a PNG file"
    assert data.loglog, "a roofline is drawn on log-log axes"
    labels = [line.label for line in data.lines]
    assert bandwidth_label(H100) in labels and roof_label(H100, "bf16") in labels, labels
    bw = data.line(bandwidth_label(H100))
    assert all(abs(y - 3.35e12 * x) <= 1e-9 * y for x, y in zip(bw.x, bw.y)), \
        "the bandwidth roof must be y = 3.35e12 * x"
    assert set(data.line(roof_label(H100, "bf16")).y) == {989.4e12}
    gemv = data.point("gemv")
    assert (gemv.x, gemv.y) == (report[0].intensity, report[0].achieved_flops)

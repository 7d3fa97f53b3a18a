"""course.plot: the course's one plotting helper draws without a display, saves a PNG and
returns exactly the data it drew, which is what lesson tests check (never pixels)."""

from __future__ import annotations

import doctest
import subprocess
import sys
from pathlib import Path

import pytest

import course.plot as plot_module
from course.plot import Line, Marker, is_png, plot


def test_docstring_example_runs():
    failures, _ = doctest.testmod(plot_module)
    assert failures == 0


def test_returns_the_data_it_drew_and_writes_a_png(tmp_path):
    lines = [Line("diagonal", (0.1, 1, 10), (1, 10, 100)), Line("flat", (10, 100), (100, 100))]
    points = [Marker("a", 1.0, 5.0), Marker("b", 50, 80)]
    data = plot(tmp_path / "sub" / "fig.png", lines=lines, points=points, title="t",
                xlabel="x", ylabel="y")
    assert is_png(data.path) and data.path == tmp_path / "sub" / "fig.png"
    assert data.lines == tuple(lines) and data.points == tuple(points) and data.loglog
    assert data.line("flat").y == (100.0, 100.0) and data.point("b").x == 50.0
    with pytest.raises(KeyError, match="diagonal"):
        data.line("missing")
    assert (data.title, data.xlabel, data.ylabel) == ("t", "x", "y")


def test_a_file_that_is_not_a_png_is_not_a_png(tmp_path):
    (tmp_path / "fake.png").write_text("not an image")
    assert not is_png(tmp_path / "fake.png") and not is_png(tmp_path / "absent.png")


@pytest.mark.parametrize("kwargs,match", [
    ({"lines": [Line("l", (0, 1), (1, 2))]}, "positive"),           # 0 on a log axis
    ({"points": [Marker("p", 1.0, float("nan"))]}, "finite"),
    ({"points": [Marker("p", 1, 1), Marker("p", 2, 2)]}, "repeated"),
    ({}, "nothing to plot"),
])
def test_bad_plots_are_refused_before_drawing(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        plot(tmp_path / "x.png", **kwargs)
    assert not (tmp_path / "x.png").exists()


def test_refuses_another_format_and_ragged_lines(tmp_path):
    with pytest.raises(ValueError, match="png"):
        plot(tmp_path / "x.svg", points=[Marker("p", 1, 1)])
    with pytest.raises(ValueError, match="as many x as y"):
        Line("l", (1, 2, 3), (1, 2))


def test_linear_axes_take_zero(tmp_path):
    data = plot(tmp_path / "lin.png", lines=[Line("l", (0, 1), (0, 1))], loglog=False)
    assert not data.loglog and is_png(data.path)


def test_renders_without_a_display_and_leaves_pyplot_alone(tmp_path):
    """No DISPLAY, an interactive backend requested: plot() still writes the file, because it
    never goes through pyplot or the global backend."""
    code = ("import sys; from course.plot import plot, Marker, is_png; "
            f"plot({str(tmp_path / 'h.png')!r}, points=[Marker('p', 1, 1)]); "
            f"assert is_png({str(tmp_path / 'h.png')!r}); "
            "assert 'matplotlib.pyplot' not in sys.modules")
    root = Path(plot_module.__file__).resolve().parents[1]
    env = {"PATH": "", "MPLBACKEND": "TkAgg", "PYTHONPATH": str(root)}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]

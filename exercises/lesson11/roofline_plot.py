"""The roofline figure: log-log, each roof and each measured point labelled, saved as a PNG.

Drawn with the course's plotting helper, ``course.plot.plot``, which returns the data it drew
(a ``course.plot.PlotData``): the graders check that data, not the pixels.

Read: learning/lesson11.md#the-plot
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from course.plot import Line, Marker, PlotData, plot
from hardware_fixtures.spec import GPUSpec

from .roofline import Point

SAMPLES = 64  # points along each roof, evenly spaced in log(intensity)


def intensity_axis(report: Sequence[Point], spec: GPUSpec, dtypes: Sequence[str]) -> list[float]:
    """``SAMPLES`` intensities (FLOP/byte), log-spaced from 10x below the smallest intensity or
    ridge on the plot to 10x above the largest, so every point and every ridge is inside."""
    peak_bw = spec.memory_bandwidth_bytes_per_s
    marks = [p.intensity for p in report] + [spec.peak_flops(d) / peak_bw for d in dtypes]
    lo, hi = min(marks) / 10, max(marks) * 10
    return [lo * (hi / lo) ** (i / (SAMPLES - 1)) for i in range(SAMPLES)]


def roof_label(spec: GPUSpec, dtype: str) -> str:
    """``"bf16 peak 989.4 TFLOP/s"``: the label of a dtype's compute roof."""
    return f"{dtype} peak {spec.peak_flops(dtype) / 1e12:.1f} TFLOP/s"


def bandwidth_label(spec: GPUSpec) -> str:
    """``"DRAM 3.35 TB/s"``: the label of the bandwidth roof."""
    return f"DRAM {spec.memory_bandwidth_bytes_per_s / 1e12:.2f} TB/s"


def plot_roofline(report: Sequence[Point], spec: GPUSpec, path: str | Path,
                  dtypes: Sequence[str] | None = None) -> PlotData:
    """Draw the roofline of ``spec`` with the report's points and save it as a PNG at ``path``.

    Args:
        report: points from ``roofline_report`` (may be empty: then only the roofs).
        spec: the device.
        path: where the PNG goes (``*.png``).
        dtypes: the compute roofs to draw; default: the dtypes of the report's points, or
            ``["bf16"]`` for an empty report.
    Returns:
        The ``PlotData`` from ``course.plot.plot``, log-log, x in FLOP/byte, y in FLOP/s, with:

        - one line labelled ``bandwidth_label(spec)``: ``y = bandwidth * x`` at every x of
          ``intensity_axis`` not above the highest ridge drawn, then at that ridge itself, so
          it ends where the last compute roof starts;
        - per dtype, one line labelled ``roof_label(spec, dtype)``: ``y = peak`` of that dtype,
          from its ridge point, then at every x of ``intensity_axis`` above the ridge;
        - per point, a marker labelled with the op's name at ``(intensity, achieved_flops)``.

    Together the lines draw ``attainable_flops`` of every dtype. Title: the device's name.
    About 12 lines.

    Read: learning/lesson11.md#the-plot
    """
    if dtypes is None:
        dtypes = list(dict.fromkeys(p.dtype for p in report)) or ["bf16"]
    xs = intensity_axis(report, spec, dtypes)
    raise NotImplementedError('lesson11: plot_roofline - read learning/lesson11.md#the-plot')

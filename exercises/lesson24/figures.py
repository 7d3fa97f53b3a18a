"""The lesson's two figures, drawn through ``course.plot`` from a simulated sweep (given).

``knee_figure``: p99 TTFT against the arrival rate, with the knee your ``find_knee`` picks.
``goodput_figure``: goodput (your ``goodput``) against the TPOT SLO, with and without chunked
prefill. Both return ``course.plot.PlotData``: what was drawn, so a test reads the figure's data.

Read: learning/lesson24.md#the-figures
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from course.plot import Line, Marker, PlotData, plot

from .simulator import SimResult


def knee_figure(path: str | Path, rates: Sequence[float], results: Sequence[SimResult],
                knee_rate: float, label: str = "p99 TTFT") -> PlotData:
    """p99 TTFT (ms) of each run against its rate (requests/s), the knee marked on it."""
    p99_ms = [r.p99("ttft_s") * 1e3 for r in results]
    if knee_rate not in rates:
        raise ValueError(f"the knee {knee_rate} is not one of the rates {list(rates)}")
    y = p99_ms[list(rates).index(knee_rate)]
    return plot(path, lines=[Line(label, rates, p99_ms)],
                points=[Marker(f"knee: {knee_rate:g} requests/s", knee_rate, y)],
                title="Latency against load", xlabel="arrival rate (requests/s)",
                ylabel="p99 TTFT (ms)", loglog=False)


def goodput_figure(path: str | Path, tpot_slos_s: Sequence[float],
                   goodputs: dict[str, Sequence[float]]) -> PlotData:
    """Goodput (requests/s) against the TPOT SLO (ms), one line per policy."""
    x = [s * 1e3 for s in tpot_slos_s]
    return plot(path, lines=[Line(name, x, g) for name, g in goodputs.items()],
                title="Goodput at 90% SLO attainment", xlabel="TPOT SLO (ms)",
                ylabel="goodput (requests/s)", loglog=False)


def runs_of(results: Sequence[SimResult]) -> list[list[tuple[float, float | None]]]:
    """Each run's ``(ttft_s, tpot_s)`` pairs, the input ``goodput`` takes."""
    return [[(lat.ttft_s, lat.tpot_s) for lat in r.latencies.values()] for r in results]

"""The course's one plotting helper: lines and labelled points, saved as a PNG, no display.

Every lesson that draws a figure draws it through `plot`, which uses matplotlib's object API
(a `matplotlib.figure.Figure` rendered by the Agg canvas): no pyplot, no global backend, no
window, so it works on a server, in CI and in a grading sandbox. A plot is checked by its
data, not by its pixels: `plot` returns a `PlotData` holding exactly the lines and points it
drew, with their labels, and tests compare that with what the figure should show.

    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "demo.png"
    >>> data = plot(out, lines=[Line("y = x", (1, 10), (1, 10))],
    ...             points=[Marker("p", 2.0, 3.0)], xlabel="x", ylabel="y")
    >>> [line.label for line in data.lines], is_png(out)
    (['y = x'], True)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class Line:
    """A labelled polyline: points (x[i], y[i]) joined in order."""

    label: str
    x: tuple[float, ...]
    y: tuple[float, ...]

    def __post_init__(self):
        object.__setattr__(self, "x", tuple(float(v) for v in self.x))
        object.__setattr__(self, "y", tuple(float(v) for v in self.y))
        if len(self.x) != len(self.y) or len(self.x) < 2:
            raise ValueError(f"line {self.label!r}: needs as many x as y values, at least 2; "
                             f"got {len(self.x)} x and {len(self.y)} y")


@dataclass(frozen=True)
class Marker:
    """A labelled point, drawn as a dot with its label written beside it."""

    label: str
    x: float
    y: float

    def __post_init__(self):
        object.__setattr__(self, "x", float(self.x))
        object.__setattr__(self, "y", float(self.y))


@dataclass(frozen=True)
class PlotData:
    """What `plot` drew: the file, the axes' titles and scale, every line and point."""

    path: Path
    title: str
    xlabel: str
    ylabel: str
    loglog: bool
    lines: tuple[Line, ...]
    points: tuple[Marker, ...]

    def line(self, label: str) -> Line:
        """The line with this label; KeyError listing the labels drawn if there is none."""
        for line in self.lines:
            if line.label == label:
                return line
        raise KeyError(f"no line labelled {label!r}; drawn: {[l.label for l in self.lines]}")

    def point(self, label: str) -> Marker:
        """The point with this label; KeyError listing the labels drawn if there is none."""
        for point in self.points:
            if point.label == label:
                return point
        raise KeyError(f"no point labelled {label!r}; drawn: {[p.label for p in self.points]}")


def is_png(path: str | Path) -> bool:
    """True when the file exists and starts with the PNG signature."""
    path = Path(path)
    if not path.is_file():
        return False
    with path.open("rb") as fh:
        return fh.read(len(PNG_SIGNATURE)) == PNG_SIGNATURE


def plot(path: str | Path, *, lines: Sequence[Line] = (), points: Sequence[Marker] = (),
         title: str = "", xlabel: str = "", ylabel: str = "", loglog: bool = True) -> PlotData:
    """Draw `lines` and `points` on one pair of axes and save a PNG at `path`.

    Each line gets a legend entry with its label; each point is a dot with its label beside it
    (moved down, a line at a time, while it would cover another point's label). With `loglog` (the default) both axes are logarithmic, so every
    value must be positive and finite. Returns the `PlotData` drawn. Raises ValueError, before
    drawing anything, for a path that does not end in .png, an empty plot, repeated labels or a
    value a log axis cannot show.
    """
    path = Path(path)
    lines, points = tuple(lines), tuple(points)
    if path.suffix.lower() != ".png":
        raise ValueError(f"plot saves PNG files: name the file *.png, got {str(path)!r}")
    if not lines and not points:
        raise ValueError("nothing to plot: give at least one line or point")
    labels = [item.label for item in lines + points]
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise ValueError(f"every line and point needs its own label; repeated: {repeated}")
    for line in lines:
        _check_values(line.label, line.x + line.y, loglog)
    for point in points:
        _check_values(point.label, (point.x, point.y), loglog)

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 5.5), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if loglog:
        ax.set_xscale("log")
        ax.set_yscale("log")
    for line in lines:
        ax.plot(line.x, line.y, label=line.label, linewidth=2)
    for point in points:
        ax.plot([point.x], [point.y], "o", markersize=6, color="black")
    ax.autoscale_view()
    for point, dy in zip(points, _label_offsets(ax, points, fig.dpi)):
        ax.annotate(point.label, (point.x, point.y), xytext=(7, dy),
                    textcoords="offset points", fontsize=8)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, which="both", alpha=0.3)
    if lines:
        ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return PlotData(path=path, title=title, xlabel=xlabel, ylabel=ylabel, loglog=loglog,
                    lines=lines, points=points)


def _label_offsets(ax, points: Sequence[Marker], dpi: float) -> list[float]:
    """Vertical offsets (typographic points) that keep the points' labels from overlapping:
    each label starts just above its dot and moves down a line while it would cover a label
    already placed (labels are about 12 points tall; widths estimated from the text)."""
    line, to_pt = 12.0, 72.0 / dpi
    placed: list[tuple[float, float, float]] = []   # (x, y of the label's base, width) in points
    offsets = [0.0] * len(points)
    order = sorted(range(len(points)), key=lambda i: -points[i].y)
    for i in order:
        px, py = (v * to_pt for v in ax.transData.transform((points[i].x, points[i].y)))
        width, dy = 5.0 * len(points[i].label), 3.0
        while any(abs(py + dy - y) < line and px < x + w and x < px + width
                  for x, y, w in placed):
            dy -= line
        placed.append((px, py + dy, width))
        offsets[i] = dy
    return offsets


def _check_values(label: str, values: Sequence[float], loglog: bool) -> None:
    for v in values:
        if not math.isfinite(v) or (loglog and v <= 0):
            need = "positive and finite (log axes)" if loglog else "finite"
            raise ValueError(f"{label!r}: value {v!r} cannot be drawn; values must be {need}")

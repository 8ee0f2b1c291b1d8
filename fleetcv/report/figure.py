"""What every PNG of a run shares: the figure, its size, colours, ticks and the file.

Runs on the driver (the laptop), during or after a run; never on the engines.
Draws with matplotlib's object API on the Agg canvas, not pyplot: no global
state, no window, safe from a notebook or a thread. Figure sizes are fixed
(`DPI` x the figure size in inches), so a report page can lay them out and
tests can check them. The plot modules (`search_plots`, `curve_plots`,
`memory`) draw on what `new_figure` returns and write it with `save_png`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from fleetcv.rundir.results import value_text

#: Pixels per inch of every PNG.
DPI = 100
#: Width x height (inches) of the heatmap and curve plots.
FIGSIZE = (8.0, 5.0)
#: Characters of x tick labels that fit side by side in a plot's width.
XTICK_CHARS = 60

TEST_COLOR = "tab:blue"
TRAIN_COLOR = "tab:orange"


def new_figure(size: tuple[float, float]):
    """A matplotlib Figure of `size` inches on its own Agg canvas (no pyplot).

    Parameters
    ----------
    size : tuple of float
        Width and height in inches.

    Returns
    -------
    matplotlib.figure.Figure
    """
    # matplotlib is imported only once a plot is drawn: it is a heavy import
    # that `invoke report` and the run lifecycle would otherwise pay for nothing.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_png(fig, out_dir: str | os.PathLike, filename: str) -> Path:
    """Write `fig` as `out_dir/filename` (the directory created if missing).

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        From `new_figure`.
    out_dir : path
        Directory to write into.
    filename : str
        Name of the PNG.

    Returns
    -------
    Path
        The PNG written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / filename
    # No "Software" text chunk: the PNG then carries no URL and is byte-stable.
    fig.savefig(path, format="png", dpi=DPI, metadata={"Software": None})
    return path


def set_xticks(ax, positions, labels: list[str]) -> None:
    """Put `labels` at `positions` on the x axis, slanted when they would not fit.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        The axes.
    positions : iterable of float
        Where the ticks go.
    labels : list of str
        One label per position.
    """
    # Labels that would not fit side by side (many values, or bin ranges)
    # are slanted rather than left to overlap.
    slant = len(labels) > 6 or sum(map(len, labels)) > XTICK_CHARS
    ax.set_xticks(
        list(positions),
        labels,
        rotation=25 if slant else 0,
        ha="right" if slant else "center",
    )


def is_number(v) -> bool:
    """Whether `v` is an int or float (numpy's included), but not a bool."""
    return isinstance(v, int | float | np.number) and not isinstance(v, bool)


def value_label(v) -> str:
    """A parameter value as a tick or title label: floats to 3 significant digits."""
    if isinstance(v, float | np.floating):
        return f"{v:.3g}"
    if isinstance(v, dict):
        # An estimator chosen in the search: its class name is the label.
        return (
            value_text(v) if len(value_text(v)) <= 30 else value_text(v).split("(")[0]
        )
    return str(v)

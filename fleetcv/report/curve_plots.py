"""PNG plots of a curve run: learning and validation curves, mean +/- std bands.

Runs on the driver (the laptop), during or after a curve run; never on the
engines. Each plot takes a curve's results (`fleetcv.kinds.curves.
curve_results`), writes one PNG into a given directory and returns its path.
Both curves are drawn by one function (`_draw_curve`); they differ only in
their x values and title. `curve_labels` names a curve's rows the same way
for the plots and the report page.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from fleetcv.kinds.curves import LEARNING, VALIDATION, curve_labels
from fleetcv.report.figure import (
    FIGSIZE,
    TEST_COLOR,
    TRAIN_COLOR,
    is_number,
    new_figure,
    save_png,
    set_xticks,
    value_label,
)
from fleetcv.rundir.results import readable

LEARNING_PNG = "learning_curve.png"
VALIDATION_PNG = "validation_curve.png"
#: Numeric values of a validation curve spanning at least this ratio get a log axis.
LOG_AXIS_RATIO = 50
#: Characters of the fixed parameters shown under a curve's title.
PARAMS_TEXT_CHARS = 90


def _band(ax, x, mean, std, color: str, label: str) -> None:
    mean = np.asarray(mean, dtype=float)
    std = np.asarray(std, dtype=float)
    ax.fill_between(x, mean - std, mean + std, color=color, alpha=0.2, lw=0)
    ax.plot(x, mean, "o-", color=color, label=label)


def _params_text(params: dict, limit: int = PARAMS_TEXT_CHARS) -> str:
    text = ", ".join(
        f"{k}={value_label(readable(v))}" for k, v in sorted(params.items())
    )
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _draw_curve(
    curve: dict,
    x: np.ndarray,
    xlabel: str,
    title: Callable[[object], str],
    out_dir: str | os.PathLike,
    filename: str,
) -> Path:
    """Draw a curve's train and validation means, +/- std bands, at `x`; write the PNG.

    `title(ax)` finishes the x axis as the curve needs and returns the title.
    """
    fig = new_figure(FIGSIZE)
    ax = fig.subplots()
    for which, color, label in (
        ("train", TRAIN_COLOR, "train"),
        ("test", TEST_COLOR, "validation"),
    ):
        mean, std = curve[f"{which}_scores_mean"], curve[f"{which}_scores_std"]
        _band(ax, x, mean, std, color, label)
    text = title(ax)
    if curve.get("params"):
        text += "\n" + _params_text(curve["params"])
    ax.set_title(text, fontsize="medium")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(curve.get("scoring") or "score (the estimator's default)")
    ax.grid(True, alpha=0.4)
    ax.legend(loc="best")
    return save_png(fig, out_dir, filename)


def plot_learning_curve(
    curve: dict, out_dir: str | os.PathLike, filename: str = LEARNING_PNG
) -> Path:
    """Learning curve: mean train and validation score per training-set size, +/- std bands.

    Parameters
    ----------
    curve : dict
        A learning curve's results (`train_sizes_abs`, `train_scores_mean`,
        `train_scores_std`, `test_scores_mean`, `test_scores_std`, `params`,
        `scoring`), as `fleetcv.kinds.curves.curve_results` returns.
    out_dir : path
        Directory to write into.
    filename : str
        Name of the PNG.

    Returns
    -------
    Path
    """
    x = np.asarray(curve["train_sizes_abs"], dtype=float)
    n_folds = len(curve["test_scores"][0]) if curve.get("test_scores") else 0
    heading = curve_labels(curve)[0]

    def title(ax) -> str:
        return f"{heading} (mean +/- std over {n_folds} folds)"

    return _draw_curve(curve, x, "training examples", title, out_dir, filename)


def _log_scale(values: list) -> bool:
    arr = np.asarray(values, dtype=float)
    return bool((arr > 0).all() and arr.max() / arr.min() >= LOG_AXIS_RATIO)


def plot_validation_curve(
    curve: dict, out_dir: str | os.PathLike, filename: str = VALIDATION_PNG
) -> Path:
    """Validation curve: mean train and validation score per parameter value, +/- std bands.

    Numeric values spanning more than 50x get a log axis; other values
    (e.g. kernel names) are evenly spaced categories. The best value is
    marked by a dotted line and named in the title.

    Parameters
    ----------
    curve : dict
        A validation curve's results (`param_name`, `param_range`, the score
        means and stds, `params`, `scoring`), as
        `fleetcv.kinds.curves.curve_results` returns.
    out_dir : path
        Directory to write into.
    filename : str
        Name of the PNG.

    Returns
    -------
    Path
    """
    values = [readable(v) for v in curve["param_range"]]
    name = curve["param_name"]
    numeric = all(is_number(v) for v in values)
    x = (
        np.asarray(values, dtype=float)
        if numeric
        else np.arange(len(values), dtype=float)
    )
    means = np.asarray(curve["test_scores_mean"], dtype=float)

    def title(ax) -> str:
        if numeric and _log_scale(values):
            ax.set_xscale("log")
        if not numeric:
            set_xticks(ax, x, [value_label(v) for v in values])
        text = curve_labels(curve)[0]
        if np.isfinite(means).any():
            b = int(np.nanargmax(means))
            ax.axvline(x[b], color="gray", ls=":", lw=1)
            text += f"; best {name}={value_label(values[b])} ({means[b]:.5f})"
        return text

    return _draw_curve(curve, x, name, title, out_dir, filename)


#: The plot of each curve kind: a name for the log, and the function.
CURVE_PLOTS: dict[str, tuple[str, Callable[..., Path]]] = {
    LEARNING: ("learning curve", plot_learning_curve),
    VALIDATION: ("validation curve", plot_validation_curve),
}

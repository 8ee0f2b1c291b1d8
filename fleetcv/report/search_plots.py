"""PNG plots of a search's cv_results: per-parameter score boxplots and a score heatmap.

Runs on the driver (the laptop), during or after a search; never on the
engines. Every function takes results.json's dict of lists (scikit-learn's
`cv_results_` names), writes one PNG into a given directory and returns its
path; the figure itself comes from `fleetcv.report.figure`.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

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

#: Height (inches) of one parameter's row in the boxplot, plus a title band.
BOX_ROW_HEIGHT = 2.6
BOX_TITLE_HEIGHT = 0.6
#: Above this many distinct numeric values (a randomized search draws a new
#: value per candidate) a parameter is grouped into `N_BINS` quantile bins, so
#: boxes hold several splits and labels stay readable.
MAX_DISTINCT = 12
N_BINS = 6
#: Heatmap cells get their score written in them up to this many cells.
MAX_ANNOTATED_CELLS = 144
#: How far the train and validation boxes of one value stand from its tick.
BOX_OFFSET = 0.18

BOXPLOT_PNG = "params_boxplot.png"


def boxplot_figsize(n_params: int) -> tuple[float, float]:
    """The boxplot's size in inches for `n_params` rows."""
    return (FIGSIZE[0], BOX_TITLE_HEIGHT + BOX_ROW_HEIGHT * max(1, n_params))


def n_splits(cv_results: dict) -> int:
    """How many `split<k>_test_score` columns the results have."""
    k = 0
    while f"split{k}_test_score" in cv_results:
        k += 1
    return k


def param_names(cv_results: dict) -> list[str]:
    """The parameter names of the results (their `param_<name>` keys), sorted."""
    return sorted(k[len("param_") :] for k in cv_results if k.startswith("param_"))


def varying_params(cv_results: dict) -> list[str]:
    """Parameters taking more than one value, most distinct values first."""
    counts = {
        n: len({repr(v) for v in cv_results[f"param_{n}"] if v is not None})
        for n in param_names(cv_results)
    }
    return sorted((n for n, c in counts.items() if c > 1), key=lambda n: -counts[n])


def value_groups(values: list) -> tuple[list, list[str]]:
    """Map each candidate's value to a group index; return (index per value, labels).

    Numbers sort numerically; anything else keeps first-seen order. Too many
    distinct numbers are binned by quantile (on a log scale when all are
    positive), labelled by their range.

    Parameters
    ----------
    values : list
        One parameter's value per candidate (None where it has none).

    Returns
    -------
    index : list of int or None
        The group of each value (None for None).
    labels : list of str
        One label per group, in axis order.
    """
    keys = {}
    for v in values:
        if v is not None:
            keys.setdefault(repr(v), v)
    distinct = list(keys.values())
    numeric = bool(distinct) and all(is_number(v) for v in distinct)
    if numeric and len(distinct) > MAX_DISTINCT:
        return _binned_groups(values, distinct)
    if numeric:
        distinct.sort(key=float)
    order = {repr(v): i for i, v in enumerate(distinct)}
    index = [None if v is None else order[repr(v)] for v in values]
    return index, [value_label(v) for v in distinct]


def _binned_groups(values: list, distinct: list) -> tuple[list, list[str]]:
    arr = np.asarray(distinct, dtype=float)
    log = bool((arr > 0).all())
    scale = np.log10(arr) if log else arr
    edges = np.unique(np.quantile(scale, np.linspace(0, 1, N_BINS + 1)))
    labels = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        a, b = (10**lo, 10**hi) if log else (lo, hi)
        labels.append(f"{a:.3g}-{b:.3g}")
    index = []
    for v in values:
        if v is None:
            index.append(None)
            continue
        x = math.log10(v) if log else float(v)
        i = int(np.searchsorted(edges, x, side="right")) - 1
        index.append(min(max(i, 0), len(labels) - 1))
    return index, labels


# ------------------------------------------------------------------ boxplot


def _split_scores(cv_results: dict, which: str, i: int, n_folds: int) -> list[float]:
    out = []
    for k in range(n_folds):
        v = cv_results.get(f"split{k}_{which}_score", [None])[i]
        if v is not None and not math.isnan(v):
            out.append(float(v))
    return out


def _draw_boxes(ax, groups: list[list[float]], where, color: str, width: float) -> bool:
    """Draw one series' boxes (the non-empty groups); say whether any was drawn."""
    keep = [j for j, g in enumerate(groups) if g]
    if not keep:
        return False
    bp = ax.boxplot(
        [groups[j] for j in keep],
        positions=[where[j] for j in keep],
        widths=width,
        patch_artist=True,
        manage_ticks=False,
    )
    for box in bp["boxes"]:
        box.set(facecolor=color, alpha=0.55, edgecolor=color)
    for part in ("medians", "whiskers", "caps"):
        for line in bp[part]:
            line.set(color="black" if part == "medians" else color)
    for flier in bp["fliers"]:
        flier.set(markeredgecolor=color, markersize=4)
    return True


def _boxplot_row(ax, cv_results: dict, name: str, n_folds: int, train: bool) -> int:
    """One parameter's row of boxes; return how many series were drawn."""
    index, labels = value_groups(cv_results[f"param_{name}"])
    test_groups: list[list[float]] = [[] for _ in labels]
    train_groups: list[list[float]] = [[] for _ in labels]
    for i, g in enumerate(index):
        if g is None:
            continue
        test_groups[g] += _split_scores(cv_results, "test", i, n_folds)
        if train:
            train_groups[g] += _split_scores(cv_results, "train", i, n_folds)
    pos = np.arange(1, len(labels) + 1, dtype=float)
    offset = BOX_OFFSET if train else 0.0
    series = [(test_groups, pos + offset, TEST_COLOR)]
    if train:
        series.append((train_groups, pos - offset, TRAIN_COLOR))
    width = 0.3 if train else 0.5
    drawn = sum(_draw_boxes(ax, g, where, c, width) for g, where, c in series)
    set_xticks(ax, pos, labels)
    ax.set_xlim(0.4, len(labels) + 0.6)
    ax.set_xlabel(name)
    ax.set_ylabel("score")
    ax.grid(True, axis="y", alpha=0.4)
    return drawn


def _box_legend(fig, train: bool) -> None:
    # matplotlib: imported once a plot is drawn (see figure.new_figure).
    from matplotlib.patches import Patch

    # In the order the boxes stand: train on the left of each value.
    handles = [Patch(facecolor=TEST_COLOR, alpha=0.55, label="validation")]
    if train:
        handles.insert(0, Patch(facecolor=TRAIN_COLOR, alpha=0.55, label="train"))
    # Outside the axes: inside, it would hide some of the boxes it explains.
    fig.legend(handles=handles, loc="outside lower center", ncols=2, fontsize="small")


def boxplot_parameters(
    cv_results: dict,
    out_dir: str | os.PathLike,
    display_train: bool = True,
    filename: str = BOXPLOT_PNG,
) -> Path:
    """Per-parameter boxplots of the split scores, as the notebook's `boxplot_parameters`.

    One row per parameter; one box per value of that parameter, holding the
    validation score of every finished split of every candidate with that
    value (and, with `display_train`, the train scores next to it).

    Parameters
    ----------
    cv_results : dict
        results.json's dict of lists (`param_<name>`, `split<k>_test_score`,
        optionally `split<k>_train_score`).
    out_dir : path
        Directory to write into (created if missing).
    display_train : bool
        Also draw train-score boxes (when the results have them).
    filename : str
        Name of the PNG.

    Returns
    -------
    Path
        The PNG written.

    Raises
    ------
    ValueError
        When the results have no parameter or no finished split.
    """
    names = param_names(cv_results)
    n_folds = n_splits(cv_results)
    n_cand = len(cv_results.get("params", []))
    if not names or not n_folds or not n_cand:
        raise ValueError("boxplot_parameters: no parameters or no splits in cv_results")
    # Parameters that never change say nothing; keep them only if nothing varies.
    varying = [n for n in names if len({repr(v) for v in cv_results[f"param_{n}"]}) > 1]
    names = varying or names
    train = display_train and "split0_train_score" in cv_results
    fig = new_figure(boxplot_figsize(len(names)))
    axes = fig.subplots(len(names), 1, squeeze=False)[:, 0]
    drawn = sum(
        _boxplot_row(ax, cv_results, name, n_folds, train)
        for ax, name in zip(axes, names, strict=True)
    )
    if not drawn:
        raise ValueError("boxplot_parameters: no finished split to plot")
    _box_legend(fig, train)
    fig.suptitle("Score per parameter value (a box: all splits of all candidates)")
    return save_png(fig, out_dir, filename)


# ------------------------------------------------------------------ heatmap


def _heatmap_pair(
    cv_results: dict, param_x: str | None, param_y: str | None
) -> tuple[str, str]:
    """The two parameters of a heatmap: those given, the most varying otherwise."""
    names = param_names(cv_results)
    if param_x is None or param_y is None:
        ranked = [n for n in varying_params(cv_results) if n not in (param_x, param_y)]
        picked = [p for p in (param_x, param_y) if p is not None] + ranked
        if len(picked) < 2:
            raise ValueError("heatmap: needs two parameters that take several values")
        param_x, param_y = picked[0], picked[1]
    for p in (param_x, param_y):
        if p not in names:
            raise ValueError(f"heatmap: no parameter {p!r}; known: {', '.join(names)}")
    return param_x, param_y


def _score_grid(cv_results: dict, param_x: str, param_y: str):
    """The best mean test score per (y, x) cell (NaN where none), and the labels."""
    ix, xlabels = value_groups(cv_results[f"param_{param_x}"])
    iy, ylabels = value_groups(cv_results[f"param_{param_y}"])
    grid = np.full((len(ylabels), len(xlabels)), np.nan)
    for i, m in enumerate(cv_results["mean_test_score"]):
        if ix[i] is None or iy[i] is None or m is None or math.isnan(m):
            continue
        cell = grid[iy[i], ix[i]]
        grid[iy[i], ix[i]] = m if math.isnan(cell) else max(cell, m)
    if not np.isfinite(grid).any():
        raise ValueError("heatmap: no candidate has a mean test score yet")
    return grid, xlabels, ylabels


def _annotate_cells(ax, grid: np.ndarray) -> None:
    """Write each cell's score in it, dark on the light cells and light on the dark."""
    lo, hi = np.nanmin(grid), np.nanmax(grid)
    mid = (lo + hi) / 2
    for (r, c), v in np.ndenumerate(grid):
        if not math.isnan(v):
            ax.text(
                c,
                r,
                f"{v:.3f}",
                ha="center",
                va="center",
                fontsize="small",
                color="black" if v > mid else "white",
            )


def heatmap(
    cv_results: dict,
    out_dir: str | os.PathLike,
    param_x: str | None = None,
    param_y: str | None = None,
    filename: str | None = None,
) -> Path:
    """Heatmap of the mean test score over two parameters.

    Each cell is the best mean test score among the candidates with that
    pair of values (the other parameters, if any, at their best). Cells no
    candidate has (or none finished) are grey; the best cell is outlined.

    Parameters
    ----------
    cv_results : dict
        results.json's dict of lists.
    out_dir : path
        Directory to write into.
    param_x, param_y : str, optional
        The two parameters; default: the two with the most distinct values
        (x has more).
    filename : str, optional
        Default `heatmap_<a>_<b>.png`, the two names sorted.

    Returns
    -------
    Path

    Raises
    ------
    ValueError
        With fewer than two parameters, or an unknown one.
    """
    param_x, param_y = _heatmap_pair(cv_results, param_x, param_y)
    grid, xlabels, ylabels = _score_grid(cv_results, param_x, param_y)
    # matplotlib: imported once a plot is drawn (see figure.new_figure).
    import matplotlib as mpl
    from matplotlib.patches import Rectangle

    fig = new_figure(FIGSIZE)
    ax = fig.subplots()
    cmap = mpl.colormaps["viridis"].with_extremes(bad="#d0d0d0")
    im = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, aspect="auto", origin="lower")
    fig.colorbar(im, ax=ax, label="mean test score")
    set_xticks(ax, range(len(xlabels)), xlabels)
    ax.set_yticks(range(len(ylabels)), ylabels)
    ax.set_xlabel(param_x)
    ax.set_ylabel(param_y)
    if grid.size <= MAX_ANNOTATED_CELLS:
        _annotate_cells(ax, grid)
    r, c = np.unravel_index(np.nanargmax(grid), grid.shape)
    ax.add_patch(
        Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, edgecolor="red", lw=2.5)
    )
    ax.set_title(
        f"Mean test score; best {np.nanmax(grid):.5f} at "
        f"{param_x}={xlabels[c]}, {param_y}={ylabels[r]}"
    )
    # Named by the pair, not the orientation: one file per pair of parameters.
    pair = "_".join(sorted((param_x, param_y)))
    return save_png(fig, out_dir, filename or f"heatmap_{pair}.png")


def _set_together(cv_results: dict, a: str, b: str) -> bool:
    """Whether some candidate sets both parameters."""
    return any(
        x is not None and y is not None
        for x, y in zip(cv_results[f"param_{a}"], cv_results[f"param_{b}"], strict=True)
    )


def search_plots(cv_results: dict, out_dir: str | os.PathLike) -> list[tuple]:
    """The plots of a search, not drawn yet: `(what, draw)` pairs for `plot_run`.

    The parameter boxplots, and a heatmap per pair of varying parameters
    (the top pair only beyond three parameters).

    Parameters
    ----------
    cv_results : dict
        results.json's dict of lists.
    out_dir : path
        Where the PNGs go.

    Returns
    -------
    list of (str, callable)
        A name for the log, and a function that draws and returns the PNG.
    """
    jobs: list[tuple] = [
        ("parameter boxplots", lambda: boxplot_parameters(cv_results, out_dir))
    ]
    names = varying_params(cv_results)
    pairs = [
        (a, b)
        for i, a in enumerate(names)
        for b in names[i + 1 :]
        # Parameters of different grids (a choice of estimators) never meet.
        if _set_together(cv_results, a, b)
    ]
    pairs = pairs if len(names) <= 3 else pairs[:1]
    for x, y in pairs:
        jobs.append(
            (f"heatmap {y} x {x}", lambda x=x, y=y: heatmap(cv_results, out_dir, x, y))
        )
    return jobs

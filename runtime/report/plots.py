"""PNG plots of a run: parameter boxplots, score heatmap, learning/validation curves, memory.

Runs on the driver (the laptop), during or after a run; never on the engines.
Draws with matplotlib's object API on the Agg canvas, not pyplot: no global
state, no window, safe from a notebook or a thread. Every function takes plain
data (results.json's or a curve's dict, probe samples), writes one PNG into a
given directory and returns its path. Figure sizes are fixed (`DPI` x the
figure size in inches), so a report page can lay them out and tests can check
them. `plot_run` regenerates every plot that applies to a run directory.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

#: Pixels per inch of every PNG.
DPI = 100
#: Width x height (inches) of the heatmap and curve plots.
FIGSIZE = (8.0, 5.0)
#: Width x height (inches) of the memory plot, whatever the number of panels.
MEMORY_FIGSIZE = (8.0, 6.0)
#: Height (inches) of one parameter's row in the boxplot, plus a title band.
BOX_ROW_HEIGHT = 2.6
BOX_TITLE_HEIGHT = 0.6
#: Above this many distinct numeric values (a randomized search draws a new
#: value per candidate) a parameter is grouped into `N_BINS` quantile bins, so
#: boxes hold several splits and labels stay readable.
MAX_DISTINCT = 12
N_BINS = 6
#: Characters of x tick labels that fit side by side in a plot's width.
XTICK_CHARS = 60
#: Heatmap cells get their score written in them up to this many cells.
MAX_ANNOTATED_CELLS = 144
#: Probe sample fields plotted by `plot_memory`, in panel order.
MEMORY_KEYS = ("available", "sum_pss", "sum_rss", "rss")
MB = 1e6
#: A run directory's probe samples, one JSON sample per line (see plot_memory).
PROBES = "probes.jsonl"

BOXPLOT_PNG = "params_boxplot.png"
LEARNING_PNG = "learning_curve.png"
VALIDATION_PNG = "validation_curve.png"
MEMORY_PNG = "memory.png"

TEST_COLOR = "tab:blue"
TRAIN_COLOR = "tab:orange"


def _new_figure(size: tuple[float, float]):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig, out_dir: str | os.PathLike, filename: str) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / filename
    # No "Software" text chunk: the PNG then carries no URL and is byte-stable.
    fig.savefig(path, format="png", dpi=DPI, metadata={"Software": None})
    return path


def _xticks(ax, positions, labels: list[str]) -> None:
    # Labels that would not fit side by side (many values, or bin ranges)
    # are slanted rather than left to overlap.
    slant = len(labels) > 6 or sum(map(len, labels)) > XTICK_CHARS
    ax.set_xticks(
        list(positions),
        labels,
        rotation=25 if slant else 0,
        ha="right" if slant else "center",
    )


def boxplot_figsize(n_params: int) -> tuple[float, float]:
    """The boxplot's size in inches for `n_params` rows."""
    return (FIGSIZE[0], BOX_TITLE_HEIGHT + BOX_ROW_HEIGHT * max(1, n_params))


# ----------------------------------------------------------- cv_results


def _n_folds(cv_results: dict) -> int:
    k = 0
    while f"split{k}_test_score" in cv_results:
        k += 1
    return k


def _param_names(cv_results: dict) -> list[str]:
    return sorted(k[len("param_") :] for k in cv_results if k.startswith("param_"))


def _is_number(v) -> bool:
    return isinstance(v, int | float | np.number) and not isinstance(v, bool)


def _label(v) -> str:
    if isinstance(v, float | np.floating):
        return f"{v:.3g}"
    return str(v)


def _groups(values: list) -> tuple[list, list[str]]:
    """Map each candidate's value to a group index; return (index per value, labels).

    Numbers sort numerically; anything else keeps first-seen order. Too many
    distinct numbers are binned by quantile (on a log scale when all are
    positive), labelled by their range.
    """
    present = [v for v in values if v is not None]
    keys = {}
    for v in present:
        keys.setdefault(repr(v), v)
    distinct = list(keys.values())
    numeric = bool(distinct) and all(_is_number(v) for v in distinct)
    if numeric and len(distinct) > MAX_DISTINCT:
        arr = np.asarray(distinct, dtype=float)
        log = bool((arr > 0).all())
        scale = np.log10(arr) if log else arr
        edges = np.quantile(scale, np.linspace(0, 1, N_BINS + 1))
        edges = np.unique(edges)
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
    if numeric:
        distinct.sort(key=float)
    order = {repr(v): i for i, v in enumerate(distinct)}
    index = [None if v is None else order[repr(v)] for v in values]
    return index, [_label(v) for v in distinct]


def _split_scores(cv_results: dict, which: str, i: int, n_folds: int) -> list[float]:
    out = []
    for k in range(n_folds):
        v = cv_results.get(f"split{k}_{which}_score", [None])[i]
        if v is not None and not math.isnan(v):
            out.append(float(v))
    return out


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
    from matplotlib.patches import Patch

    names = _param_names(cv_results)
    n_folds = _n_folds(cv_results)
    n_cand = len(cv_results.get("params", []))
    if not names or not n_folds or not n_cand:
        raise ValueError("boxplot_parameters: no parameters or no splits in cv_results")
    # Parameters that never change say nothing; keep them only if nothing varies.
    varying = [n for n in names if len({repr(v) for v in cv_results[f"param_{n}"]}) > 1]
    names = varying or names
    train = display_train and "split0_train_score" in cv_results
    fig = _new_figure(boxplot_figsize(len(names)))
    axes = fig.subplots(len(names), 1, squeeze=False)[:, 0]
    drawn = 0
    for ax, name in zip(axes, names, strict=True):
        index, labels = _groups(cv_results[f"param_{name}"])
        test_groups: list[list[float]] = [[] for _ in labels]
        train_groups: list[list[float]] = [[] for _ in labels]
        for i, g in enumerate(index):
            if g is None:
                continue
            test_groups[g] += _split_scores(cv_results, "test", i, n_folds)
            if train:
                train_groups[g] += _split_scores(cv_results, "train", i, n_folds)
        pos = np.arange(1, len(labels) + 1, dtype=float)
        offset = 0.18 if train else 0.0
        series = [(test_groups, pos + offset, TEST_COLOR)]
        if train:
            series.append((train_groups, pos - offset, TRAIN_COLOR))
        for groups, where, color in series:
            keep = [j for j, g in enumerate(groups) if g]
            if not keep:
                continue
            drawn += 1
            bp = ax.boxplot(
                [groups[j] for j in keep],
                positions=[where[j] for j in keep],
                widths=0.3 if train else 0.5,
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
        _xticks(ax, pos, labels)
        ax.set_xlim(0.4, len(labels) + 0.6)
        ax.set_xlabel(name)
        ax.set_ylabel("score")
        ax.grid(True, axis="y", alpha=0.4)
    if not drawn:
        raise ValueError("boxplot_parameters: no finished split to plot")
    # In the order the boxes stand: train on the left of each value.
    handles = [Patch(facecolor=TEST_COLOR, alpha=0.55, label="validation")]
    if train:
        handles.insert(0, Patch(facecolor=TRAIN_COLOR, alpha=0.55, label="train"))
    # Outside the axes: inside, it would hide some of the boxes it explains.
    fig.legend(handles=handles, loc="outside lower center", ncols=2, fontsize="small")
    fig.suptitle("Score per parameter value (a box: all splits of all candidates)")
    return _save(fig, out_dir, filename)


def varying_params(cv_results: dict) -> list[str]:
    """Parameters taking more than one value, most distinct values first."""
    counts = {
        n: len({repr(v) for v in cv_results[f"param_{n}"] if v is not None})
        for n in _param_names(cv_results)
    }
    return sorted((n for n, c in counts.items() if c > 1), key=lambda n: -counts[n])


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
    names = _param_names(cv_results)
    if param_x is None or param_y is None:
        ranked = [n for n in varying_params(cv_results) if n not in (param_x, param_y)]
        picked = [p for p in (param_x, param_y) if p is not None] + ranked
        if len(picked) < 2:
            raise ValueError("heatmap: needs two parameters that take several values")
        param_x, param_y = picked[0], picked[1]
    for p in (param_x, param_y):
        if p not in names:
            raise ValueError(f"heatmap: no parameter {p!r}; known: {', '.join(names)}")
    ix, xlabels = _groups(cv_results[f"param_{param_x}"])
    iy, ylabels = _groups(cv_results[f"param_{param_y}"])
    grid = np.full((len(ylabels), len(xlabels)), np.nan)
    for i, m in enumerate(cv_results["mean_test_score"]):
        if ix[i] is None or iy[i] is None or m is None or math.isnan(m):
            continue
        cell = grid[iy[i], ix[i]]
        grid[iy[i], ix[i]] = m if math.isnan(cell) else max(cell, m)
    if not np.isfinite(grid).any():
        raise ValueError("heatmap: no candidate has a mean test score yet")
    import matplotlib as mpl
    from matplotlib.patches import Rectangle

    fig = _new_figure(FIGSIZE)
    ax = fig.subplots()
    cmap = mpl.colormaps["viridis"].with_extremes(bad="#d0d0d0")
    im = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, aspect="auto", origin="lower")
    fig.colorbar(im, ax=ax, label="mean test score")
    _xticks(ax, range(len(xlabels)), xlabels)
    ax.set_yticks(range(len(ylabels)), ylabels)
    ax.set_xlabel(param_x)
    ax.set_ylabel(param_y)
    if grid.size <= MAX_ANNOTATED_CELLS:
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
    return _save(fig, out_dir, filename or f"heatmap_{pair}.png")


# ------------------------------------------------------------------ curves


def _band(ax, x, mean, std, color: str, label: str) -> None:
    mean = np.asarray(mean, dtype=float)
    std = np.asarray(std, dtype=float)
    ax.fill_between(x, mean - std, mean + std, color=color, alpha=0.2, lw=0)
    ax.plot(x, mean, "o-", color=color, label=label)


def _score_label(curve: dict) -> str:
    return curve.get("scoring") or "score (the estimator's default)"


def _params_text(params: dict, limit: int = 90) -> str:
    text = ", ".join(f"{k}={_label(v)}" for k, v in sorted(params.items()))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _curve_axes(curve: dict, x: np.ndarray):
    """A figure with a curve's train and validation means, +/- std bands, at `x`."""
    fig = _new_figure(FIGSIZE)
    ax = fig.subplots()
    for which, color, label in (
        ("train", TRAIN_COLOR, "train"),
        ("test", TEST_COLOR, "validation"),
    ):
        _band(
            ax,
            x,
            curve[f"{which}_scores_mean"],
            curve[f"{which}_scores_std"],
            color,
            label,
        )
    return fig, ax


def plot_learning_curve(
    curve: dict, out_dir: str | os.PathLike, filename: str = LEARNING_PNG
) -> Path:
    """Learning curve: mean train and validation score per training-set size, +/- std bands.

    Parameters
    ----------
    curve : dict
        A learning curve's results (`train_sizes_abs`, `train_scores_mean`,
        `train_scores_std`, `test_scores_mean`, `test_scores_std`, `params`,
        `scoring`), as `runtime.curves.curve_results` returns.
    out_dir : path
        Directory to write into.
    filename : str
        Name of the PNG.

    Returns
    -------
    Path
    """
    x = np.asarray(curve["train_sizes_abs"], dtype=float)
    fig, ax = _curve_axes(curve, x)
    ax.set_xlabel("training examples")
    ax.set_ylabel(_score_label(curve))
    ax.grid(True, alpha=0.4)
    ax.legend(loc="best")
    n_folds = len(curve["test_scores"][0]) if curve.get("test_scores") else 0
    title = f"Learning curve (mean +/- std over {n_folds} folds)"
    if curve.get("params"):
        title += "\n" + _params_text(curve["params"])
    ax.set_title(title, fontsize="medium")
    return _save(fig, out_dir, filename)


def _log_scale(values: list) -> bool:
    arr = np.asarray(values, dtype=float)
    return bool((arr > 0).all() and arr.max() / arr.min() >= 50)


def plot_validation_curve(
    curve: dict, out_dir: str | os.PathLike, filename: str = VALIDATION_PNG
) -> Path:
    """Validation curve: mean train and validation score per parameter value, +/- std bands.

    Numeric values spanning more than 50x get a log axis; other values
    (e.g. kernel names) are evenly spaced categories.

    Parameters
    ----------
    curve : dict
        A validation curve's results (`param_name`, `param_range`, the score
        means and stds, `params`, `scoring`), as
        `runtime.curves.curve_results` returns.
    out_dir : path
        Directory to write into.
    filename : str
        Name of the PNG.

    Returns
    -------
    Path
    """
    values = curve["param_range"]
    numeric = all(_is_number(v) for v in values)
    x = (
        np.asarray(values, dtype=float)
        if numeric
        else np.arange(len(values), dtype=float)
    )
    fig, ax = _curve_axes(curve, x)
    if numeric and _log_scale(values):
        ax.set_xscale("log")
    if not numeric:
        _xticks(ax, x, [_label(v) for v in values])
    means = np.asarray(curve["test_scores_mean"], dtype=float)
    title = f"Validation curve of {curve['param_name']}"
    if np.isfinite(means).any():
        b = int(np.nanargmax(means))
        ax.axvline(x[b], color="gray", ls=":", lw=1)
        title += f"; best {curve['param_name']}={_label(values[b])} ({means[b]:.5f})"
    if curve.get("params"):
        title += "\n" + _params_text(curve["params"])
    ax.set_title(title, fontsize="medium")
    ax.set_xlabel(curve["param_name"])
    ax.set_ylabel(_score_label(curve))
    ax.grid(True, alpha=0.4)
    ax.legend(loc="best")
    return _save(fig, out_dir, filename)


# ------------------------------------------------------------------ memory


def probe_samples(probe: dict, t: float | None = None) -> list[dict]:
    """Turn one `runtime.probes.probe_cluster` result into per-host samples.

    Returns
    -------
    list of dict
        One `{t, host, available, total, sum_pss, sum_rss, sum_uss,
        engines}` per host, in `plot_memory`'s shape.
    """
    import time

    t = time.time() if t is None else t
    return [
        {
            "t": t,
            "host": host,
            "available": h["available"],
            "total": h["total"],
            "sum_pss": h["sum_pss"],
            "sum_rss": h["sum_rss"],
            "sum_uss": h["sum_uss"],
            "engines": h["engines"],
        }
        for host, h in sorted(probe["hosts"].items())
    ]


def samples_from_journal(records: Iterable[dict]) -> list[dict]:
    """Per-engine memory samples from a journal, for runs without probe samples.

    Each record carries the RSS of its engine when the task ended. A host
    total cannot be rebuilt from that honestly (engines report at different
    times, and come and go across a resume), so the samples stay per engine.

    Returns
    -------
    list of dict
        `{t, host, pid, rss}` samples in time order.
    """
    rows = sorted(
        (r for r in records if r.get("finished") and r.get("rss") and r.get("host")),
        key=lambda r: r["finished"],
    )
    return [
        {"t": r["finished"], "host": r["host"], "pid": r.get("pid"), "rss": r["rss"]}
        for r in rows
    ]


def read_probe_samples(path: str | os.PathLike) -> list[dict]:
    """Read a probes.jsonl file (one sample per line; torn lines skipped)."""
    from runtime.rundir.journal import read_journal

    return [s for s in read_journal(path) if "t" in s and "host" in s]


_MEMORY_TITLES = {
    "available": "available memory per host",
    "sum_pss": "sum of the engines' PSS per host (shared pages split between engines)",
    "sum_rss": "sum of the engines' RSS per host (shared pages counted once per engine)",
    "rss": "RSS of each engine after each task (journal; shared pages in every engine)",
}


def plot_memory(
    samples: list[dict], out_dir: str | os.PathLike, filename: str = MEMORY_PNG
) -> Path:
    """Memory over time per host (or per engine), one panel per quantity present.

    Parameters
    ----------
    samples : list of dict
        Each `{"t": seconds since the epoch, "host": name, "available":
        bytes, "sum_pss": bytes}`: `available` is the host's free memory
        (psutil's `available`), `sum_pss` and `sum_rss` are summed over the
        host's engines. Every quantity is optional; a panel is drawn for
        each one some sample has. A sample with a `pid` and an `rss` is one
        engine's: its line is drawn in its host's colour.
        `probe_samples` and `samples_from_journal` build this shape.
    out_dir : path
        Directory to write into.
    filename : str
        Name of the PNG.

    Returns
    -------
    Path

    Raises
    ------
    ValueError
        When no sample has a memory value.
    """
    keys = [k for k in MEMORY_KEYS if any(s.get(k) is not None for s in samples)]
    if not keys:
        raise ValueError(f"plot_memory: no sample has any of {', '.join(MEMORY_KEYS)}")
    import matplotlib as mpl

    t0 = min(s["t"] for s in samples)
    hosts = sorted({s["host"] for s in samples})
    palette = mpl.colormaps["tab10"].colors
    color = {h: palette[i % len(palette)] for i, h in enumerate(hosts)}
    fig = _new_figure(MEMORY_FIGSIZE)
    axes = fig.subplots(len(keys), 1, sharex=True, squeeze=False)[:, 0]
    for ax, key in zip(axes, keys, strict=True):
        lines: dict[tuple, list] = {}
        for s in samples:
            if s.get(key) is not None:
                lines.setdefault((s["host"], s.get("pid")), []).append(
                    (s["t"] - t0, s[key] / MB)
                )
        labelled = set()
        for (host, _pid), pts in sorted(lines.items(), key=lambda kv: str(kv[0])):
            xs, ys = zip(*sorted(pts), strict=True)
            # One legend entry per host, however many engines it has.
            label = host if host not in labelled else None
            labelled.add(host)
            ax.plot(xs, ys, "o-", ms=2.5, lw=1.2, color=color[host], label=label)
        ax.set_ylabel("MB")
        ax.set_title(_MEMORY_TITLES[key], fontsize="medium")
        ax.grid(True, alpha=0.4)
    axes[0].legend(loc="best", fontsize="small", ncols=min(4, len(hosts)))
    axes[-1].set_xlabel("seconds since the first sample")
    return _save(fig, out_dir, filename)


# -------------------------------------------------------------------- runs


def run_data(run_dir: str | os.PathLike) -> dict:
    """What a run directory holds, rebuilt from its journal (the source of truth).

    Returns
    -------
    dict
        `meta`, `records` (the journal), `kind` ("search",
        "learning_curve" or "validation_curve") and either `cv_results` or
        `curve`.
    """
    from runtime.dispatch import curves
    from runtime.dispatch.lifecycle import read_meta
    from runtime.rundir import journal as jn
    from runtime.rundir import results as rs

    path = Path(run_dir)
    meta = read_meta(path)
    records = jn.read_journal(path / jn.JOURNAL)
    kind = meta.get("kind") or "search"
    out = {"meta": meta, "records": records, "kind": kind}
    if kind in curves.KINDS:
        out["curve"] = curves.curve_results(
            curves.definition_of(meta), meta["n_folds"], records
        )
    else:
        out["cv_results"] = rs.build_cv_results(
            meta["candidates"],
            meta["n_folds"],
            records,
            meta.get("return_train_score", True),
        )
    return out


def plot_run(
    run_dir: str | os.PathLike,
    log: Callable[[str], None] | None = None,
    data: dict | None = None,
) -> list[Path]:
    """Write every plot that applies to a run directory, into it.

    A search gets the parameter boxplots and a heatmap per pair of varying
    parameters (the top pair only beyond three parameters); a curve run its
    curve; every run with samples the memory plot (probes.jsonl when the
    run has one, else the RSS the journal recorded). A plot that cannot be
    drawn (e.g. nothing finished yet) is reported through `log` and skipped,
    so one bad plot never costs the others.

    Parameters
    ----------
    run_dir : path
        A run directory (has meta.json).
    log : callable, optional
        Receives one line per skipped plot; default: print to stderr.
    data : dict, optional
        `run_data(run_dir)`, when the caller has it already.

    Returns
    -------
    list of Path
        The PNGs written.
    """
    from runtime.dispatch import curves

    log = log or (lambda m: print(m, file=sys.stderr))
    path = Path(run_dir)
    data = data or run_data(path)
    jobs: list[tuple[str, Callable[[], Path]]] = []
    if data["kind"] == curves.LEARNING:
        jobs.append(
            ("learning curve", lambda: plot_learning_curve(data["curve"], path))
        )
    elif data["kind"] == curves.VALIDATION:
        jobs.append(
            ("validation curve", lambda: plot_validation_curve(data["curve"], path))
        )
    else:
        res = data["cv_results"]
        jobs.append(("parameter boxplots", lambda: boxplot_parameters(res, path)))
        names = varying_params(res)
        pairs = (
            [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]
            if len(names) <= 3
            else [(names[0], names[1])]
        )
        for x, y in pairs:
            jobs.append(
                (f"heatmap {y} x {x}", lambda x=x, y=y: heatmap(res, path, x, y))
            )
    # Probe samples measure the host; the journal only each engine's RSS.
    probes_file = path / PROBES
    samples = (
        read_probe_samples(probes_file)
        if probes_file.is_file()
        else samples_from_journal(data["records"])
    )
    if samples:
        jobs.append(("memory", lambda: plot_memory(samples, path)))
    written = []
    for what, job in jobs:
        try:
            written.append(job())
        except Exception as exc:  # noqa: BLE001 - one plot failing must not cost the others or the run
            log(f"plot {what}: skipped ({type(exc).__name__}: {exc})")
    return written


def write_probe_samples(path: str | os.PathLike, samples: list[dict]) -> None:
    """Append samples to a probes.jsonl file (what a memory sampler should call)."""
    with open(path, "a", encoding="utf-8") as f:
        for s in samples:
            f.write(json.dumps(s) + "\n")

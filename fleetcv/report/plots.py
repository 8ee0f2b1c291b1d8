"""The plots of a run directory: what it holds (`run_data`) and every PNG (`plot_run`).

Runs on the driver (the laptop), during or after a run; never on the
engines. A run is read through `fleetcv.rundir` and its kind
(`fleetcv.kinds`), never the cluster. The plots themselves live by concept
(`search_plots`: boxplots and heatmaps, `curve_plots`: learning and
validation curves, `memory`: memory samples and their plot, `figure`: what
every PNG shares); this module re-exports their public names, so
`fleetcv.report.plots` is the one place callers import a plot from.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

from fleetcv.kinds import kind_of
from fleetcv.report.curve_plots import (
    CURVE_PLOTS,
    LEARNING_PNG,
    VALIDATION_PNG,
    curve_labels,
    plot_learning_curve,
    plot_validation_curve,
)
from fleetcv.report.figure import DPI, FIGSIZE
from fleetcv.report.iteration_plots import iteration_plots
from fleetcv.report.memory import (
    MEMORY_FIGSIZE,
    MEMORY_PNG,
    PROBES,
    plot_memory,
    probe_samples,
    read_probe_samples,
    run_samples,
    samples_from_journal,
    write_probe_samples,
)
from fleetcv.report.search_plots import (
    BOXPLOT_PNG,
    N_BINS,
    boxplot_figsize,
    boxplot_parameters,
    heatmap,
    search_plots,
    value_groups,
    varying_params,
)
from fleetcv.rundir import journal as jn
from fleetcv.rundir.results import metric_view, readable_results
from fleetcv.rundir.run import read_meta

#: The key of `run_data`'s results, by the kind's style.
RESULTS_KEY = {"search": "cv_results", "curve": "curve"}


def run_data(run_dir: str | os.PathLike) -> dict:
    """What a run directory holds, rebuilt from its journal (the source of truth).

    Parameters
    ----------
    run_dir : path
        A run directory (has meta.json).

    Returns
    -------
    dict
        `meta`, `records` (the journal), `kind` (the kind's name: "search",
        "learning_curve" or "validation_curve") and its results: `cv_results`
        for a search-style kind, `curve` for a curve (see `RESULTS_KEY`).

    Raises
    ------
    ConfigError
        When `run_dir` is not a run directory, or of a kind this fleetcv
        does not know.
    """
    path = Path(run_dir)
    meta = read_meta(path)
    records = jn.read_journal(path / jn.JOURNAL)
    kind = kind_of(meta)
    results = kind.results(meta, meta["n_folds"], records)
    return {
        "meta": meta,
        "records": records,
        "kind": kind.name,
        RESULTS_KEY[kind.style]: results,
    }


def run_results(data: dict) -> dict:
    """The results in `run_data`'s dict, whatever the kind's style."""
    return data[RESULTS_KEY[kind_of(data["meta"]).style]]


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
    log = log or (lambda m: print(m, file=sys.stderr))
    path = Path(run_dir)
    data = data or run_data(path)
    kind = kind_of(data["meta"])
    if kind.style == "search":
        ranking = data["meta"].get("ranking") or "score"
        view = metric_view(readable_results(data["cv_results"]), ranking)
        jobs = search_plots(view, path) + iteration_plots(view, path)
    else:
        what, plot = CURVE_PLOTS[kind.name]
        jobs = [(what, lambda: plot(data["curve"], path))]
    samples = run_samples(path, data["records"])
    if samples:
        jobs.append(("memory", lambda: plot_memory(samples, path)))
    written = []
    for what, job in jobs:
        try:
            written.append(job())
        except Exception as exc:  # noqa: BLE001 - one plot failing must not cost the others or the run
            log(f"plot {what}: skipped ({type(exc).__name__}: {exc})")
    return written


__all__ = [
    "BOXPLOT_PNG",
    "DPI",
    "FIGSIZE",
    "LEARNING_PNG",
    "MEMORY_FIGSIZE",
    "MEMORY_PNG",
    "N_BINS",
    "PROBES",
    "RESULTS_KEY",
    "VALIDATION_PNG",
    "boxplot_figsize",
    "boxplot_parameters",
    "curve_labels",
    "heatmap",
    "plot_learning_curve",
    "plot_memory",
    "plot_run",
    "plot_validation_curve",
    "probe_samples",
    "read_probe_samples",
    "run_data",
    "run_results",
    "samples_from_journal",
    "value_groups",
    "varying_params",
    "write_probe_samples",
]

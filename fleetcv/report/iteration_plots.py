"""The plots of searches that learn as they go: halving and ASHA rungs, Optuna trials.

Runs on the driver, from results.json alone: a halving or ASHA search's
`iter` and `n_resources` columns, an Optuna search's `trial` column.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from fleetcv.report.figure import FIGSIZE, TEST_COLOR, new_figure, save_png
from fleetcv.rundir.results import complete_rows


def _finished(cv_results: dict) -> list[int]:
    """Rows scored on every fold, with a finite mean test score."""
    means = cv_results["mean_test_score"]
    return [
        i
        for i in complete_rows(cv_results)
        if means[i] is not None and not math.isnan(means[i])
    ]


def plot_resources(cv_results: dict, out_dir: str | os.PathLike) -> Path:
    """Mean test score against resources, one colour per iteration (rung), best outlined.

    Raises
    ------
    ValueError
        When no row is scored on every fold yet.
    """
    rows = _finished(cv_results)
    if not rows:
        raise ValueError("no row is scored on every fold yet")
    import matplotlib as mpl

    res = np.array([cv_results["n_resources"][i] for i in rows], dtype=float)
    score = np.array([cv_results["mean_test_score"][i] for i in rows])
    its = np.array([cv_results["iter"][i] for i in rows])
    fig = new_figure(FIGSIZE)
    ax = fig.subplots()
    cmap = mpl.colormaps["viridis"]
    top = max(1, its.max())
    for it in sorted(set(its.tolist())):
        sel = its == it
        ax.scatter(
            res[sel], score[sel], color=cmap(it / top), label=f"iter {it}", alpha=0.8
        )
    best = int(np.argmax(np.where(its == its.max(), score, -np.inf)))
    ax.scatter(res[best], score[best], s=160, facecolors="none", edgecolors="red", lw=2)
    ax.set_xscale("log")
    ax.set_xlabel("resources (n_resources)")
    ax.set_ylabel("mean test score")
    ax.set_title(
        f"Score against resources; best of the last iteration {score[best]:.5f}"
    )
    ax.legend(loc="lower right", fontsize="small")
    return save_png(fig, out_dir, "iterations.png")


def plot_trials(cv_results: dict, out_dir: str | os.PathLike) -> Path:
    """Each finished trial's mean test score, and the best so far, in trial order.

    Raises
    ------
    ValueError
        When no trial is scored on every fold yet.
    """
    rows = sorted(_finished(cv_results), key=lambda i: cv_results["trial"][i])
    if not rows:
        raise ValueError("no trial is scored on every fold yet")
    trial = [cv_results["trial"][i] for i in rows]
    score = [cv_results["mean_test_score"][i] for i in rows]
    fig = new_figure(FIGSIZE)
    ax = fig.subplots()
    ax.scatter(trial, score, color=TEST_COLOR, alpha=0.7, label="trial")
    ax.step(
        trial,
        np.maximum.accumulate(score),
        where="post",
        color="black",
        label="best so far",
    )
    ax.set_xlabel("trial")
    ax.set_ylabel("mean test score")
    ax.set_title(f"Score against trial; best {max(score):.5f}")
    ax.legend(loc="lower right", fontsize="small")
    return save_png(fig, out_dir, "trials.png")


def iteration_plots(cv_results: dict, out_dir: str | os.PathLike) -> list[tuple]:
    """`(what, draw)` pairs for `plot_run`: the plots that apply to these results."""
    jobs = []
    if "n_resources" in cv_results and "iter" in cv_results:
        jobs.append(
            ("score against resources", lambda: plot_resources(cv_results, out_dir))
        )
    if "trial" in cv_results:
        jobs.append(("score against trial", lambda: plot_trials(cv_results, out_dir)))
    return jobs

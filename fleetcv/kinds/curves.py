"""The curve kinds: learning and validation curves, results as scikit-learn's.

Runs on the driver. A curve is a job whose rows are the points of the
curve: for a learning curve one row per training-set size (each task fits
on the first k rows of the memmapped training fold, a view, never a copy),
for a validation curve one row per value of the swept parameter. Every
(row, fold) is one call of `runtime.worker.evaluate`, so abort,
Ctrl-C and resume behave as for a search.

The numbers are scikit-learn's: `learning_curve(..., shuffle=False)` fits on
`train[:k]` of each split, which is exactly the first k rows of our training
fold (the fold file holds `X[train]` in `train`'s order), and
`validation_curve` fits on the whole training split. `results.json` holds
the same names (`train_sizes_abs`, `train_scores` as n_rows x n_folds, ...).
The curve flags (`--train-sizes`, `--range`, `--params`) are read into a
curve definition by `fleetcv.kinds.curve_flags`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from fleetcv.kinds.base import Kind
from fleetcv.rundir import results as rs
from fleetcv.spec.common import plain

LEARNING = "learning_curve"
VALIDATION = "validation_curve"
KINDS = (LEARNING, VALIDATION)
#: The candidate key a learning-curve row is known by in cv_results/journal.
TRAIN_SIZE_KEY = "train_size"


# ------------------------------------------------------------- definitions


def learning_definition(
    train_sizes_abs: list[int],
    params: dict | None = None,
    scoring: str | None = None,
    train_sizes: list | None = None,
) -> dict:
    """The plain-types description of a learning curve (stored in meta.json)."""
    return {
        "kind": LEARNING,
        "train_sizes": list(train_sizes or train_sizes_abs),
        "train_sizes_abs": [int(k) for k in train_sizes_abs],
        "params": dict(params or {}),
        "scoring": scoring,
    }


def validation_definition(
    param_name: str,
    param_range: list,
    params: dict | None = None,
    scoring: str | None = None,
) -> dict:
    """The plain-types description of a validation curve (stored in meta.json)."""
    fixed = {k: v for k, v in (params or {}).items() if k != param_name}
    return {
        "kind": VALIDATION,
        "param_name": param_name,
        "param_range": [plain(v) for v in param_range],
        "params": fixed,
        "scoring": scoring,
    }


def curve_candidates(definition: dict) -> list[dict]:
    """One candidate per row: `{"train_size": k}`, or the params with one value swept."""
    if definition["kind"] == LEARNING:
        return [{TRAIN_SIZE_KEY: k} for k in definition["train_sizes_abs"]]
    name = definition["param_name"]
    return [{**definition["params"], name: v} for v in definition["param_range"]]


def curve_results(definition: dict, n_folds: int, records) -> dict:
    """Fold journal records into scikit-learn-named curve results.

    Parameters
    ----------
    definition : dict
        From `learning_definition` or `validation_definition`.
    n_folds : int
        Number of CV splits.
    records : iterable of dict
        Journal records (see `runtime.record`).

    Returns
    -------
    dict
        `kind`, `params` (the fixed ones), `scoring`; `train_sizes_abs` or
        `param_name` + `param_range`; `train_scores`, `test_scores`,
        `fit_times`, `score_times` as n_rows x n_folds lists (None where a
        split has not finished); `<key>_mean` and `<key>_std` per row (numpy
        mean and population std, as scikit-learn's examples plot them);
        `n_failed_fits`, `n_finished_splits` per row.
    """
    n_rows = len(curve_candidates(definition))
    fields = {
        "train_scores": "train_score",
        "test_scores": "test_score",
        "fit_times": "fit_time",
        "score_times": "score_time",
    }
    table = rs.fold_table(records, n_rows, n_folds)
    mats = {key: table[field] for key, field in fields.items()}
    present, failed = table["present"], table["failed"]
    out: dict = {"kind": definition["kind"]}
    if definition["kind"] == LEARNING:
        out["train_sizes_abs"] = list(definition["train_sizes_abs"])
    else:
        out["param_name"] = definition["param_name"]
        out["param_range"] = list(definition["param_range"])
    out["params"] = dict(definition["params"])
    out["scoring"] = definition.get("scoring")
    for key in fields:
        arr = mats[key]
        out[key] = [
            [float(arr[c, k]) if present[c, k] else None for k in range(n_folds)]
            for c in range(n_rows)
        ]
        means, stds = [], []
        for c in range(n_rows):
            row = arr[c, present[c]]
            means.append(float(np.mean(row)) if row.size else math.nan)
            stds.append(float(np.std(row)) if row.size else math.nan)
        out[f"{key}_mean"] = means
        out[f"{key}_std"] = stds
    out["n_failed_fits"] = failed.tolist()
    out["n_finished_splits"] = present.sum(axis=1).tolist()
    return out


def format_curve_report(
    curve: dict,
    n_tasks: int,
    n_done: int,
    status: str = "running",
    extra: dict | None = None,
) -> str:
    """The curve as text: the search report's progress line, then one row per size/value.

    ::

        Finished: 100% (015/015)

        Learning curve, mean (+/-std) over 3 folds; params {'C': 10.0}
         train size  validation            train
                 53  0.85185 (+/-0.01234)  1.00000 (+/-0.00000)
    """
    head = rs.format_report({}, n_tasks, n_done, top_k=0, status=status, extra=extra)
    lines = head.rstrip("\n").split("\n")
    n_folds = len(curve["test_scores"][0]) if curve["test_scores"] else 0
    title, col, labels = curve_labels(curve, _short)
    fixed = f"; params {rs.params_text(curve['params'])}" if curve["params"] else ""
    lines += ["", f"{title}, mean (+/-std) over {n_folds} folds{fixed}"]
    width = max([len(col), *map(len, labels)])
    lines.append(f" {col:>{width}}  {'validation':<20}  train")
    failed = curve.get("n_failed_fits", [])
    for i, label in enumerate(labels):
        test = _pm(curve["test_scores_mean"][i], curve["test_scores_std"][i])
        train = _pm(curve["train_scores_mean"][i], curve["train_scores_std"][i])
        note = f"  ({failed[i]} failed fits)" if i < len(failed) and failed[i] else ""
        lines.append(f" {label:>{width}}  {test:<20}  {train}{note}")
    return "\n".join(lines)


def curve_labels(
    curve: dict, value_text: Callable[[object], str] = str
) -> tuple[str, str, list[str]]:
    """A curve's title, the heading of its row column, and one label per row.

    ::

        ("Learning curve", "train size", ["30", "100"])
        ("Validation curve of C", "C", ["0.1", "1"])

    Parameters
    ----------
    curve : dict
        A curve's results (`kind`, and `train_sizes_abs` or `param_name` and
        `param_range`).
    value_text : callable
        Formats one value of a validation curve's parameter.

    Returns
    -------
    title : str
    column : str
    labels : list of str
    """
    if curve["kind"] == LEARNING:
        return (
            "Learning curve",
            "train size",
            [str(k) for k in curve["train_sizes_abs"]],
        )
    name = curve["param_name"]
    return (
        f"Validation curve of {name}",
        name,
        [value_text(v) for v in curve["param_range"]],
    )


def _pm(mean: float, std: float) -> str:
    if mean is None or math.isnan(mean):
        return "-"
    return f"{mean:.5f} (+/-{std:.5f})"


def _short(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


# ------------------------------------------------------------------- kinds


def definition_of(job: dict) -> dict:
    """The curve definition of a curve job (meta.json's `curve`)."""
    return job["curve"]


def curve_job(definition: dict) -> dict:
    """The job description of a curve (what its meta.json holds)."""
    return {
        "kind": definition["kind"],
        "curve": dict(definition),
        "candidates": curve_candidates(definition),
        # Both of scikit-learn's curves always score the training rows.
        "return_train_score": True,
    }


def _learning_task(job: dict, c: int) -> dict:
    # The row's candidate is a training size, not parameters: the estimator
    # gets the fixed params and the worker slices the fold.
    return {
        "params": job["curve"]["params"],
        "train_size": job["candidates"][c][TRAIN_SIZE_KEY],
    }


def _validation_task(job: dict, c: int) -> dict:
    return {"params": job["candidates"][c]}


def _results(job: dict, n_folds: int, records) -> dict:
    return curve_results(definition_of(job), n_folds, records)


def _report(job, curve, n_tasks, n_done, status="running", extra=None, top_k=None):
    # Every row shows: a curve has no top-k.
    return format_curve_report(curve, n_tasks, n_done, status=status, extra=extra)


def _postfix(job: dict, curve: dict) -> list[str]:
    failed = sum(curve["n_failed_fits"])
    return [f"failed={failed}"] if failed else []


def _run_name(spec_name: str, job: dict) -> str:
    curve = job["curve"]
    if curve["kind"] == LEARNING:
        return f"{spec_name}-learning"
    return f"{spec_name}-validation-{curve['param_name']}"


def _curve_kind(name: str, command: str, rows: str, task_args) -> Kind:
    return Kind(
        name=name,
        command=command,
        noun="curve",
        rows=rows,
        style="curve",
        candidates=lambda job: job["candidates"],
        task_args=task_args,
        train_scores=lambda job: True,
        results=_results,
        summary=lambda job, curve: {},
        report=_report,
        postfix=_postfix,
        run_name=_run_name,
    )


LEARNING_CURVE = _curve_kind(LEARNING, "curves.learning", "sizes", _learning_task)
VALIDATION_CURVE = _curve_kind(
    VALIDATION, "curves.validation", "values", _validation_task
)

"""The curve kinds: learning and validation curves, results as scikit-learn's.

Runs on the driver. A curve is a job whose rows are the points of the
curve: for a learning curve one row per training-set size (each task fits
on the first k rows of the memmapped training fold, a view, never a copy),
for a validation curve one row per value of the swept parameter. Every
(row, fold) is one call of `runtime.engine.worker.evaluate`, so abort,
Ctrl-C and resume behave as for a search.

The numbers are scikit-learn's: `learning_curve(..., shuffle=False)` fits on
`train[:k]` of each split, which is exactly the first k rows of our training
fold (the fold file holds `X[train]` in `train`'s order), and
`validation_curve` fits on the whole training split. `results.json` holds
the same names (`train_sizes_abs`, `train_scores` as n_rows x n_folds, ...).
This module also parses the curve flags (`--train-sizes`, `--range`,
`--params`) into a curve definition.
"""

from __future__ import annotations

import ast
import json
import math
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from runtime.engine.folds import SplitSet
from runtime.kinds.base import Kind
from runtime.kinds.search import SEARCH
from runtime.rundir import journal as jn
from runtime.rundir import results as rs
from runtime.rundir.run import latest_run, read_meta
from runtime.spec import GRID_FUNCS, ConfigError, SearchSpec, grid_values
from runtime.spec.common import plain

LEARNING = "learning_curve"
VALIDATION = "validation_curve"
KINDS = (LEARNING, VALIDATION)
#: scikit-learn's default `train_sizes` (np.linspace(0.1, 1.0, 5)).
DEFAULT_TRAIN_SIZES = (0.1, 0.325, 0.55, 0.775, 1.0)
#: The candidate key a learning-curve row is known by in cv_results/journal.
TRAIN_SIZE_KEY = "train_size"


# ------------------------------------------------------------------ parsing


def translate_train_sizes(train_sizes, n_max_training_samples: int) -> list[int]:
    """Absolute training-set sizes, as scikit-learn's `learning_curve` computes them.

    Parameters
    ----------
    train_sizes : sequence of float or int
        Floats are fractions of `n_max_training_samples` in (0, 1]; ints are
        counts in [1, n_max_training_samples]. A mix counts as floats, as
        numpy's dtype promotion (and so scikit-learn) has it.
    n_max_training_samples : int
        The size of the first training split (scikit-learn's reference).

    Returns
    -------
    list of int
        Sorted, without duplicates.

    Raises
    ------
    ConfigError
        When a size is out of range.
    """
    arr = np.asarray(train_sizes)
    if arr.ndim != 1 or arr.size == 0 or arr.dtype.kind not in "iuf":
        raise ConfigError(
            f"--train-sizes: expected a list of numbers, got {train_sizes!r}. "
            "Fix: pass e.g. --train-sizes 0.1,0.55,1.0"
        )
    if arr.dtype.kind == "f":
        if arr.min() <= 0.0 or arr.max() > 1.0:
            raise ConfigError(
                f"--train-sizes: fractions must be within (0, 1], got {arr.tolist()}. "
                "Fix: pass fractions like 0.1,1.0 or whole counts like 50,100"
            )
        arr = np.clip((arr * n_max_training_samples).astype(int), 1, None)
        arr = np.minimum(arr, n_max_training_samples)
    elif arr.min() <= 0 or arr.max() > n_max_training_samples:
        raise ConfigError(
            f"--train-sizes: counts must be within [1, {n_max_training_samples}] "
            f"(the first training fold's size), got {arr.tolist()}. Fix: use smaller "
            "counts, or fractions like 0.1,1.0"
        )
    return [int(v) for v in np.unique(arr)]


def parse_train_sizes(text: str) -> list[float] | list[int]:
    """Parse `--train-sizes`: comma-separated fractions (0.1,1.0) or counts (50,100).

    Raises
    ------
    ConfigError
        When a value is not a number.
    """
    tokens = [t.strip() for t in str(text).split(",") if t.strip()]
    if not tokens:
        raise ConfigError(
            "--train-sizes: empty. Fix: pass e.g. --train-sizes 0.1,0.55,1.0"
        )
    values: list = []
    for t in tokens:
        try:
            v = ast.literal_eval(t)
        except (ValueError, SyntaxError):
            v = None
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise ConfigError(
                f"--train-sizes: {t!r} is not a number. Fix: pass e.g. "
                "--train-sizes 0.1,0.55,1.0 (fractions) or 50,100,200 (counts)"
            )
        values.append(v)
    # One float makes all of them fractions, as numpy (and so sklearn) reads them.
    if any(isinstance(v, float) for v in values):
        return [float(v) for v in values]
    return values


def parse_param_range(text: str) -> list:
    """Parse `--range`: a JSON list, or an expression like `logspace(-4, 0, 5)`.

    Raises
    ------
    ConfigError
        When the text is neither.
    """
    fix = "Fix: pass e.g. --range 'logspace(-4, 0, 5)' or --range '[0.1, 1, 10]'"
    try:
        values = grid_values(text)
    except (ValueError, SyntaxError, TypeError, ZeroDivisionError) as exc:
        raise ConfigError(f"--range: cannot read {text!r} ({exc}). {fix}") from exc
    if values is None:
        try:
            values = json.loads(text)
        except ValueError:
            values = None
        if not isinstance(values, list):
            raise ConfigError(
                f"--range: {text!r} is neither a JSON list nor one of "
                f"{', '.join(f'{f}(...)' for f in sorted(GRID_FUNCS))}. {fix}"
            )
    if not values:
        raise ConfigError(f"--range: {text!r} gives no values. {fix}")
    return values


def check_params(spec: SearchSpec, params: dict, flag: str = "--params") -> dict:
    """Check that every key of `params` is a parameter of the spec's estimator.

    Raises
    ------
    ConfigError
        Naming the first unknown key and the valid ones.
    """
    valid = set(spec.estimator.build().get_params(deep=True))
    for name in params:
        if name not in valid:
            shown = ", ".join(sorted(v for v in valid if v.count("__") <= 1))
            raise ConfigError(
                f"{flag}: the estimator of {spec.path} has no parameter {name!r}. "
                f"Fix: use one of {shown}"
            )
    return dict(params)


def resolve_params(
    text: str | None,
    spec: SearchSpec,
    from_run: str | os.PathLike | None = None,
    runs_root: str | os.PathLike = "runs",
    log: Callable[[str], None] = print,
) -> dict:
    """The fixed estimator parameters of a curve, from `--params`.

    Parameters
    ----------
    text : str or None
        None or "" (the spec's estimator as written), "best" (the best_params
        of a finished search run), or a JSON object.
    spec : SearchSpec
        The spec whose estimator the parameters go to.
    from_run : path, optional
        The search run for "best"; default: the newest finished run under
        `runs_root` started from the same spec (same spec digest).
    runs_root : path
        Where to look for that run.
    log : callable
        Told which run "best" came from.

    Returns
    -------
    dict

    Raises
    ------
    ConfigError
        On bad JSON, unknown parameters, or no finished search run.
    """
    if not text:
        return {}
    if text.strip() == "best":
        run = Path(from_run) if from_run else _latest_search_run(spec, runs_root)
        params = best_params_of(run)
        log(f"params: best of {run}: {params}")
        return check_params(spec, params, "--params best")
    try:
        params = json.loads(text)
    except ValueError as exc:
        raise ConfigError(
            f"--params: {text!r} is not JSON ({exc}). Fix: pass "
            "--params '{\"C\": 1.0}' or --params best --from-run RUN_DIR"
        ) from exc
    if not isinstance(params, dict):
        raise ConfigError(
            f"--params: expected a JSON object, got {text!r}. Fix: pass "
            "--params '{\"C\": 1.0}'"
        )
    return check_params(spec, params)


def best_params_of(run_dir: str | os.PathLike) -> dict:
    """best_params of a finished search run (its results.json, else its journal).

    Raises
    ------
    ConfigError
        When the directory is not a search run or has no best candidate.
    """
    path = Path(run_dir)
    meta = read_meta(path)
    if meta.get("kind") in KINDS:
        raise ConfigError(
            f"--from-run {path}: a {meta['kind'].replace('_', ' ')} run, not a "
            "search. Fix: pass a run made by `invoke search`"
        )
    best = None
    if (path / jn.RESULTS).is_file():
        try:
            best = json.loads((path / jn.RESULTS).read_text()).get("best_params")
        except ValueError:
            best = None
    if best is None:
        res = SEARCH.results(meta, meta["n_folds"], jn.read_journal(path / jn.JOURNAL))
        best = rs.best(res)[1]
    if best is None:
        raise ConfigError(
            f"--from-run {path}: no finished fit, so no best parameters. Fix: "
            f"finish it first (invoke search --resume {path})"
        )
    return dict(best)


def _latest_search_run(spec: SearchSpec, runs_root: str | os.PathLike) -> Path:
    digest = spec.digest()
    found = latest_run(
        runs_root,
        lambda meta: (
            meta.get("kind") not in KINDS
            and meta.get("spec_digest") == digest
            and meta.get("status") == "finished"
        ),
    )
    if found is None:
        raise ConfigError(
            f"--params best: no finished search of {spec.path} under {runs_root}/. "
            f"Fix: run `invoke search --spec {spec.path}` first, or pass --from-run RUN_DIR"
        )
    return found


def default_param_range(spec: SearchSpec, param_name: str) -> list:
    """The values the spec's grid gives `param_name`, the default `--range`.

    Raises
    ------
    ConfigError
        When the spec has no list of values for it (e.g. a distribution).
    """
    for grid in spec.params:
        values = grid.get(param_name)
        if isinstance(values, list):
            return list(values)
    raise ConfigError(
        f"--range: {spec.path} has no list of values for {param_name!r} to sweep. "
        "Fix: pass --range 'logspace(-4, 0, 5)' or --range '[0.1, 1, 10]'"
    )


def max_train_size(split: SplitSet) -> int:
    """The first training fold's size: what fractions of train sizes refer to."""
    return int(split.manifest["folds"][0]["n_train"])


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
        Journal records (see `runtime.engine.record`).

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
    fixed = f"; params {curve['params']!r}" if curve["params"] else ""
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


def _report(curve, n_tasks, n_done, status="running", extra=None, top_k=None):
    # Every row shows: a curve has no top-k.
    return format_curve_report(curve, n_tasks, n_done, status=status, extra=extra)


def _postfix(curve: dict) -> list[str]:
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
        rows=rows,
        style="curve",
        candidates=lambda job: job["candidates"],
        task_args=task_args,
        train_scores=lambda job: True,
        results=_results,
        summary=lambda curve: {},
        report=_report,
        postfix=_postfix,
        run_name=_run_name,
    )


LEARNING_CURVE = _curve_kind(LEARNING, "curves.learning", "sizes", _learning_task)
VALIDATION_CURVE = _curve_kind(
    VALIDATION, "curves.validation", "values", _validation_task
)


# -------------------------------------------------------------- from flags


def learning_job(
    spec: SearchSpec,
    train_sizes: str,
    params: str | None = None,
    from_run: str | os.PathLike | None = None,
    runs_root: str | os.PathLike = "runs",
    log: Callable[[str], None] = print,
) -> Callable[[SplitSet], dict]:
    """Validate a learning curve's flags; return the job as a function of the folds.

    Fractions of `--train-sizes` refer to the first training fold, so the
    absolute sizes are known only once the folds are.

    Raises
    ------
    ConfigError
        On bad `--params` or `--train-sizes`.
    """
    fixed = resolve_params(params, spec, from_run, runs_root, log=log)
    sizes = parse_train_sizes(train_sizes)

    def job(split: SplitSet) -> dict:
        sizes_abs = translate_train_sizes(sizes, max_train_size(split))
        return curve_job(learning_definition(sizes_abs, fixed, spec.scoring, sizes))

    return job


def validation_job(
    spec: SearchSpec,
    param: str | None,
    param_range: str | None = None,
    params: str | None = None,
    from_run: str | os.PathLike | None = None,
    runs_root: str | os.PathLike = "runs",
    log: Callable[[str], None] = print,
) -> dict:
    """Validate a validation curve's flags into its job description.

    Raises
    ------
    ConfigError
        On a missing or unknown `--param`, a bad `--range` or `--params`.
    """
    if not param:
        raise ConfigError("--param: which parameter to sweep? Fix: pass e.g. --param C")
    check_params(spec, {param: None}, "--param")
    values = (
        parse_param_range(param_range)
        if param_range
        else default_param_range(spec, param)
    )
    fixed = resolve_params(params, spec, from_run, runs_root, log=log)
    return curve_job(validation_definition(param, values, fixed, spec.scoring))

"""Learning and validation curves on the cluster, on `DistributedSearch`'s machinery.

Runs on the driver. A curve is a search whose "candidates" are rows of the
curve: for a learning curve one row per training-set size (each task fits on
the first k rows of the memmapped training fold, a view, never a copy), for a
validation curve one row per value of the swept parameter. Every (row, fold)
is still one call of `runtime.worker.evaluate` on an engine, journaled as it
arrives, so abort, Ctrl-C and resume behave as for a search.

The numbers are scikit-learn's: `learning_curve(..., shuffle=False)` fits on
`train[:k]` of each split, which is exactly the first k rows of our training
fold (the fold file holds `X[train]` in `train`'s order), and
`validation_curve` fits on the whole training split. `results.json` holds the
same names (`train_sizes_abs`, `train_scores` as n_rows x n_folds, ...).
"""

from __future__ import annotations

import ast
import json
import math
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from runtime.dispatch import lifecycle as driver
from runtime.dispatch.search import DistributedSearch
from runtime.engine.folds import SplitSet
from runtime.rundir import journal as jn
from runtime.rundir import results as rs
from runtime.spec import GRID_FUNCS, ConfigError, SearchSpec

LEARNING = "learning_curve"
VALIDATION = "validation_curve"
KINDS = (LEARNING, VALIDATION)
#: scikit-learn's default `train_sizes` (np.linspace(0.1, 1.0, 5)).
DEFAULT_TRAIN_SIZES = (0.1, 0.325, 0.55, 0.775, 1.0)
#: The candidate key a learning-curve row is known by in cv_results/journal.
TRAIN_SIZE_KEY = "train_size"
_EXPR = re.compile(r"^\s*([A-Za-z_]\w*)\s*\((.*)\)\s*$")


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
    m = _EXPR.match(str(text))
    if m and m.group(1) in GRID_FUNCS:
        try:
            args = ast.literal_eval(f"({m.group(2)},)") if m.group(2).strip() else ()
            values = getattr(np, m.group(1))(*args)
        except (ValueError, SyntaxError, TypeError) as exc:
            raise ConfigError(f"--range: cannot read {text!r} ({exc}). {fix}") from exc
        values = [v.item() if isinstance(v, np.generic) else v for v in values]
    else:
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
    meta = driver.read_meta(path)
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
        res = rs.build_cv_results(
            meta["candidates"],
            meta["n_folds"],
            jn.read_journal(path / jn.JOURNAL),
            meta.get("return_train_score", True),
        )
        best = rs.best(res)[1]
    if best is None:
        raise ConfigError(
            f"--from-run {path}: no finished fit, so no best parameters. Fix: "
            f"finish it first (invoke search --resume {path})"
        )
    return dict(best)


def _latest_search_run(spec: SearchSpec, runs_root: str | os.PathLike) -> Path:
    digest = spec.digest()
    metas = sorted(
        Path(runs_root).glob(f"*/{jn.META}"),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    for m in metas:
        try:
            meta = json.loads(m.read_text())
        except (OSError, ValueError):
            continue
        if (
            meta.get("kind") not in KINDS
            and meta.get("spec_digest") == digest
            and meta.get("status") == "finished"
        ):
            return m.parent
    raise ConfigError(
        f"--params best: no finished search of {spec.path} under {runs_root}/. "
        f"Fix: run `invoke search --spec {spec.path}` first, or pass --from-run RUN_DIR"
    )


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
        "param_range": [
            v.item() if isinstance(v, np.generic) else v for v in param_range
        ],
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
        Journal records (see `runtime.worker.evaluate`).

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
    mats = {key: np.full((n_rows, n_folds), np.nan) for key in fields}
    present = np.zeros((n_rows, n_folds), dtype=bool)
    failed = np.zeros(n_rows, dtype=int)
    for (c, k), r in rs.latest_records(records).items():
        if c >= n_rows or k >= n_folds:
            continue
        present[c, k] = True
        failed[c] += r.get("status") == "fit_failed"
        for key, field in fields.items():
            v = r.get(field)
            mats[key][c, k] = math.nan if v is None else float(v)
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
    if curve["kind"] == LEARNING:
        title = "Learning curve"
        col = "train size"
        labels = [str(k) for k in curve["train_sizes_abs"]]
    else:
        title = f"Validation curve of {curve['param_name']}"
        col = curve["param_name"]
        labels = [_short(v) for v in curve["param_range"]]
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


def _pm(mean: float, std: float) -> str:
    if mean is None or math.isnan(mean):
        return "-"
    return f"{mean:.5f} (+/-{std:.5f})"


def _short(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


# ------------------------------------------------------------------ classes


class _Curve(DistributedSearch):
    """A DistributedSearch whose candidates are the rows of a curve."""

    def __init__(
        self,
        view,
        estimator,
        definition: dict,
        *,
        error_score: float | str = math.nan,
        run_dir: str | Path | None = None,
        max_retries: int = 2,
    ):
        self.definition = definition
        super().__init__(
            view,
            estimator,
            candidates=curve_candidates(definition),
            scoring=definition.get("scoring"),
            error_score=error_score,
            # Both of scikit-learn's curves always score the training rows.
            return_train_score=True,
            run_dir=run_dir,
            max_retries=max_retries,
        )

    @property
    def curve_(self) -> dict:
        """The curve of what has finished so far (see `curve_results`)."""
        with self._lock:
            records = list(self._records)
        n_folds = self.split.n_folds if self.split else 0
        return curve_results(self.definition, n_folds, records)

    def report(self, top_k: int | None = None, results: dict | None = None) -> str:
        """Progress, then the curve's table.

        `top_k` and `results` (a search's cv_results_) are ignored: every
        row shows, and the table comes from `curve_`.
        """
        return format_curve_report(
            self.curve_,
            self.n_tasks,
            self.n_done,
            status=self.status if self.status != "new" else "running",
            extra=self.counters,
        )

    def finalize(self) -> dict:
        """Write results.json (the curve) and report.txt; return the curve results."""
        # The base class closes the journal and the collector and writes a
        # cv_results-shaped results.json; the curve's file then replaces it
        # (atomically), so the run directory ends with the curve's keys.
        super().finalize()
        out = dict(self.curve_)
        out.update(
            status=self.status,
            n_tasks=self.n_tasks,
            n_done=self.n_done,
            counters=dict(self.counters),
        )
        if self.run_dir is not None:
            jn.write_json(self.run_dir / jn.RESULTS, out)
        return out


class LearningCurve(_Curve):
    """Scores for growing training-set sizes x folds on a LoadBalancedView.

    Each task fits on the first `k` rows of its memmapped training fold (a
    view, no copy) and scores on the whole test fold, as scikit-learn's
    `learning_curve(shuffle=False)`.

    Parameters
    ----------
    view : ipyparallel.LoadBalancedView
        Where tasks go.
    estimator : sklearn estimator
        Cloned on the engines, with `params` set.
    train_sizes_abs : list of int
        Absolute sizes (see `translate_train_sizes`).
    params : dict, optional
        Fixed parameters set on every clone.
    scoring : str, optional
        sklearn scorer name; None uses the estimator's `score`.
    error_score : float or "raise"
        Score of a failed fit.
    run_dir : path, optional
        Where journal.jsonl, results.json and report.txt go.
    max_retries : int
        How often a task whose engine died is resubmitted.
    """

    def __init__(
        self,
        view,
        estimator,
        train_sizes_abs: list[int],
        params: dict | None = None,
        *,
        scoring: str | None = None,
        error_score: float | str = math.nan,
        run_dir: str | Path | None = None,
        max_retries: int = 2,
    ):
        super().__init__(
            view,
            estimator,
            learning_definition(train_sizes_abs, params, scoring),
            error_score=error_score,
            run_dir=run_dir,
            max_retries=max_retries,
        )

    def _common_kwargs(self) -> dict:
        # Train scores are half of a learning curve: always computed.
        return {**super()._common_kwargs(), "return_train_score": True}

    def _task_kwargs(self, c: int, k: int) -> dict:
        # The row's candidate is a training size, not parameters: the
        # estimator gets the fixed params and the worker slices the fold.
        return {
            "fold_ref": self._fold_ref(k),
            "params": self.definition["params"],
            "train_size": self.candidates[c][TRAIN_SIZE_KEY],
            "candidate": c,
            "fold": k,
        }


class ValidationCurve(_Curve):
    """Scores for each value of one parameter x folds, the others fixed.

    Parameters
    ----------
    view : ipyparallel.LoadBalancedView
        Where tasks go.
    estimator : sklearn estimator
        Cloned on the engines.
    param_name : str
        The parameter swept (e.g. "C" or "svc__gamma").
    param_range : list
        Its values, in plot order.
    params : dict, optional
        The other parameters, fixed (a value for `param_name` is ignored).
    scoring, error_score, run_dir, max_retries
        As for `LearningCurve`.
    """

    def __init__(
        self,
        view,
        estimator,
        param_name: str,
        param_range: list,
        params: dict | None = None,
        *,
        scoring: str | None = None,
        error_score: float | str = math.nan,
        run_dir: str | Path | None = None,
        max_retries: int = 2,
    ):
        super().__init__(
            view,
            estimator,
            validation_definition(param_name, param_range, params, scoring),
            error_score=error_score,
            run_dir=run_dir,
            max_retries=max_retries,
        )


def curve_from_definition(
    view,
    estimator,
    definition: dict,
    *,
    error_score: float | str = math.nan,
    run_dir: str | Path | None = None,
    max_retries: int = 2,
) -> LearningCurve | ValidationCurve:
    """Build the curve object a definition (e.g. from meta.json) describes."""
    kw = {"error_score": error_score, "run_dir": run_dir, "max_retries": max_retries}
    if definition["kind"] == LEARNING:
        curve = LearningCurve(
            view,
            estimator,
            definition["train_sizes_abs"],
            definition["params"],
            scoring=definition.get("scoring"),
            **kw,
        )
    else:
        curve = ValidationCurve(
            view,
            estimator,
            definition["param_name"],
            definition["param_range"],
            definition["params"],
            scoring=definition.get("scoring"),
            **kw,
        )
    # Keep what the user asked for (e.g. fractions), not only what it became.
    curve.definition = dict(definition)
    return curve


# --------------------------------------------------------------- run dirs


def definition_of(meta: dict) -> dict:
    """The curve definition stored in a curve run's meta.json."""
    return meta["curve"]


def new_curve_run(
    spec: SearchSpec,
    definition: dict,
    split: SplitSet,
    runs_root: str | os.PathLike,
    run_dir: str | os.PathLike | None,
    command: str,
) -> Path:
    """Create a curve's run directory with meta.json and a copy of the spec.

    meta.json has the search runs' keys (so `invoke report` and `resume`
    tooling read it) plus `kind` and `curve` (the definition).

    Raises
    ------
    ConfigError
        When `run_dir` exists and is not empty.
    """
    task = "learning" if definition["kind"] == LEARNING else "validation"
    suffix = task if task == "learning" else f"validation-{definition['param_name']}"
    return driver.create_run(
        spec,
        split,
        runs_root,
        run_dir,
        f"{spec.name}-{suffix}",
        f"invoke curves.{task}",
        command,
        kind=definition["kind"],
        curve=definition,
        candidates=curve_candidates(definition),
        return_train_score=True,
    )


def load_curve_resume(run_dir: str | os.PathLike) -> tuple[SearchSpec, dict]:
    """The spec and meta of a curve run to resume.

    Raises
    ------
    ConfigError
        When it is not a curve run, or its spec copy changed.
    """
    meta = driver.read_meta(run_dir)
    if meta.get("kind") not in KINDS:
        raise ConfigError(
            f"--resume {run_dir}: a search run, not a curve. Fix: resume it with "
            f"invoke search --resume {run_dir}"
        )
    return driver.load_resume(run_dir, curve=True)


def rebuild_results(run_dir: str | os.PathLike) -> dict:
    """Rebuild a curve run's results.json and report.txt from its journal.

    What `invoke report RUN_DIR` should call for a curve run (meta.json
    `kind` is learning_curve or validation_curve).
    """
    path = Path(run_dir)
    meta = driver.read_meta(path)
    records = jn.read_journal(path / jn.JOURNAL)
    curve = curve_results(definition_of(meta), meta["n_folds"], records)
    n_tasks = len(meta["candidates"]) * meta["n_folds"]
    n_done = sum(curve["n_finished_splits"])
    status = meta.get("status", "running")
    out = {**curve, "status": status, "n_tasks": n_tasks, "n_done": n_done}
    jn.write_json(path / jn.RESULTS, out)
    (path / jn.REPORT).write_text(
        format_curve_report(curve, n_tasks, n_done, status=status) + "\n"
    )
    return out


def run_curve(
    spec: SearchSpec,
    client,
    run_dir: Path,
    split: SplitSet,
    meta: dict,
    progress: bool = True,
    max_retries: int = 2,
    warm: bool = True,
    log: Callable[[str], None] = print,
) -> LearningCurve | ValidationCurve:
    """Run (or resume) the curve of `run_dir` on `client`'s engines.

    The curve's counterpart of `runtime.driver.run`: warms the page cache,
    submits what the journal lacks, waits with a progress bar, and turns
    Ctrl-C into an abort that leaves a resumable run.

    Returns
    -------
    LearningCurve or ValidationCurve
        Finished, or aborted.
    """
    driver.start_run(client, run_dir, split, meta, warm, log)
    curve = curve_from_definition(
        client.load_balanced_view(),
        spec.estimator.build(),
        definition_of(meta),
        error_score=spec.error_score,
        run_dir=run_dir,
        max_retries=max_retries,
    )
    already = curve.n_done
    curve.launch(split)
    rows = "sizes" if meta["kind"] == LEARNING else "values"
    log(
        f"run {run_dir}: {len(curve.candidates)} {rows} x {split.n_folds} folds = "
        f"{curve.n_tasks} fits on {len(client.ids)} engines"
        + (f" ({already} already in the journal)" if already else "")
    )
    try:
        curve.wait(progress=progress)
    except KeyboardInterrupt:
        print(
            "\ninterrupted: cancelling queued tasks, waiting for running ones...",
            file=sys.stderr,
        )
        curve.abort()
    finally:
        driver.set_status(run_dir, curve.status)
    return curve

"""The curve tasks' flags, validated into a curve job.

Runs on the driver. `--train-sizes` (fractions or counts, as scikit-learn's
`learning_curve` reads them), `--range` (a JSON list or a numpy grid
expression), `--params` (a JSON object, or `best` of a finished search run),
each refused with one message naming the flag, the value and the fix; then
`learning_job` and `validation_job` make the job description
(`fleetcv.kinds.curves.curve_job`) that the run lifecycle takes.
"""

from __future__ import annotations

import ast
import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from fleetcv.kinds.curves import (
    KINDS,
    curve_job,
    learning_definition,
    validation_definition,
)
from fleetcv.kinds.search import SEARCH, best_of
from fleetcv.rundir import journal as jn
from fleetcv.rundir.run import latest_run, read_meta
from fleetcv.spec import GRID_FUNCS, ConfigError, SearchSpec, grid_values
from runtime.folds import SplitSet

#: scikit-learn's default `train_sizes` (np.linspace(0.1, 1.0, 5)).
DEFAULT_TRAIN_SIZES = (0.1, 0.325, 0.55, 0.775, 1.0)


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
        best = best_of(meta, res)[1]
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

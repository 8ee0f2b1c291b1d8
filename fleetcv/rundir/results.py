"""Fold journal records into scikit-learn's `cv_results_` and the text report.

Runs on the driver, with or without a cluster (`invoke report RUN_DIR`
rebuilds everything from the journal). The arithmetic is scikit-learn's own
(`BaseSearchCV._format_results`): unweighted mean and population std over the
splits, ranks by `rankdata(-mean, method="min")` with NaN ranked last, so a
complete run equals GridSearchCV's numbers.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

from runtime.build import (
    TYPE_KEY,
    build,
    describe,
    import_path,
    is_estimator_description,
)
from runtime.record import FIT_FAILED, is_finished

#: Rows shown by default in the report, as in the notebook's top-5.
TOP_K = 5


def latest_records(records: Iterable[dict]) -> dict[tuple[int, int], dict]:
    """One finished record per (candidate, fold); later records win.

    Records with status "error" (the task never produced a score, e.g. the
    engine lost its fold file) do not count as finished.
    """
    out: dict[tuple[int, int], dict] = {}
    for r in records:
        if is_finished(r):
            out[(int(r["candidate"]), int(r["fold"]))] = r
    return out


def _mean_std(row: np.ndarray) -> tuple[float, float]:
    mean = np.average(row)
    std = np.sqrt(np.average((row - mean) ** 2))
    return float(mean), float(std)


def build_cv_results(
    candidates: list[dict],
    n_folds: int,
    records: Iterable[dict],
    return_train_score: bool = True,
    metrics: Sequence[str] = ("score",),
) -> dict:
    """Build a `cv_results_`-style dict of lists from journal records.

    Parameters
    ----------
    candidates : list of dict
        The parameter combinations, in candidate order.
    n_folds : int
        Number of CV splits.
    records : iterable of dict
        Journal records (see `runtime.record`).
    return_train_score : bool
        Include the train-score keys.
    metrics : sequence of str
        The metrics' names: ``("score",)`` for one metric (keys
        `mean_test_score`...), else scikit-learn's multi-metric names
        (`mean_test_<name>`, `rank_test_<name>`, `split<k>_test_<name>`...).

    Returns
    -------
    dict
        sklearn's keys (`params`, `param_<name>`, `split<k>_test_<m>`,
        `mean_test_<m>`, `std_test_<m>`, `rank_test_<m>`, train
        counterparts, fit/score time means and stds) as lists, plus
        fleetcv's `sem_test_<m>`, `sem_train_<m>`, `n_failed_fits`,
        `n_finished_splits`, `split<k>_host`, `split<k>_engine`. Splits not
        finished yet are None and left out of the means.
    """
    nc = len(candidates)
    table = fold_table(records, nc, n_folds, metrics)
    present, failed = table["present"], table["failed"]
    hosts, engines = table["host"], table["engine"]

    results: dict = {}

    complete = present.all(axis=1) & (n_folds > 0)
    partial = np.flatnonzero(~complete & present.any(axis=1))

    for key in ("fit_time", "score_time"):
        m, s, _ = _stats(table[key], present, complete, partial, n_folds)
        results[f"mean_{key}"] = m
        results[f"std_{key}"] = s
    names = sorted({k for c in candidates for k in c})
    for name in names:
        results[f"param_{name}"] = [c.get(name) for c in candidates]
    results["params"] = [dict(c) for c in candidates]
    sets = ["test"] + (["train"] if return_train_score else [])
    for which in sets:
        for metric in metrics:
            arr = table[f"{which}_{metric}"]
            for k in range(n_folds):
                results[f"split{k}_{which}_{metric}"] = [
                    float(arr[c, k]) if present[c, k] else None for c in range(nc)
                ]
            m, s, sem = _stats(arr, present, complete, partial, n_folds)
            results[f"mean_{which}_{metric}"] = m
            results[f"std_{which}_{metric}"] = s
            if which == "test":
                results[f"rank_test_{metric}"] = rank(m)
            results[f"sem_{which}_{metric}"] = sem
    results["n_failed_fits"] = failed.tolist()
    results["n_finished_splits"] = present.sum(axis=1).tolist()
    for k in range(n_folds):
        results[f"split{k}_host"] = [hosts[c][k] for c in range(nc)]
        results[f"split{k}_engine"] = [engines[c][k] for c in range(nc)]
    return results


#: Integer columns of the results: scikit-learn's halving ones (`iter`,
#: `n_resources`) and fleetcv's counts.
INT_COLUMNS = ("iter", "n_resources", "n_failed_fits", "n_finished_splits")


def sklearn_cv_results(results: dict) -> dict:
    """results.json's lists as scikit-learn's `cv_results_`, value for value and type for type.

    Parameters
    ----------
    results : dict
        A search's results (`build_cv_results`), parameter values described
        (`runtime.build.describe`).

    Returns
    -------
    dict
        `params` as the values the search was given (tuples, numpy scalars,
        estimators, ...), `param_<name>` as scikit-learn's masked arrays
        (with its dtypes), `rank_*` int32, `iter`/`n_resources` and fleetcv's
        counts int64, `split<k>_host`/`_engine` object arrays, every other
        column float64 (NaN for a split not scored yet).
    """
    params = [{k: build(v) for k, v in p.items()} for p in results["params"]]
    out: dict = {}
    for key, values in results.items():
        if key == "params":
            out[key] = params
        elif key.startswith("param_"):
            if not any(k.startswith("param_") for k in out):
                out.update(masked_params(params))
        elif key.startswith("rank_"):
            out[key] = np.asarray(values, dtype=np.int32)
        elif key in INT_COLUMNS:
            out[key] = np.asarray(values, dtype=np.int64)
        elif key.endswith(("_host", "_engine")):
            out[key] = np.asarray(values, dtype=object)
        else:
            out[key] = np.asarray(
                [np.nan if v is None else v for v in values], dtype=np.float64
            )
    return out


def masked_params(candidate_params: list[dict]) -> dict:
    """One `param_<name>` masked array per parameter, as scikit-learn's `_format_results`.

    Masked where a candidate lacks the parameter; the dtype is numpy's for the
    values (object for strings, for sequences and where numpy cannot make
    one array), in the order the names first appear.
    """
    columns: dict[str, dict[int, object]] = {}
    for i, params in enumerate(candidate_params):
        for name, value in params.items():
            columns.setdefault(f"param_{name}", {})[i] = value
    out = {}
    for key, column in columns.items():
        try:
            arr = np.array(list(column.values()))
        except ValueError:  # sequences of different lengths
            dtype = np.dtype(object)
        else:
            dtype = arr.dtype if arr.dtype.kind != "U" and arr.ndim == 1 else object
        ma = np.ma.MaskedArray(np.empty(len(candidate_params), dtype=dtype), mask=True)
        for i, value in column.items():
            ma[i] = value  # setting a value unmasks it
        out[key] = ma
    return out


#: The timing fields of a record that `fold_table` lays out as matrices.
TIME_FIELDS = ("fit_time", "score_time")


def record_score(record: dict, which: str, metric: str = "score") -> float | None:
    """A record's `which` ("test"/"train") score of `metric` ("score": the only one)."""
    if metric == "score":
        return record.get(f"{which}_score")
    return (record.get(f"{which}_scores") or {}).get(metric)


def fold_table(
    records: Iterable[dict],
    n_rows: int,
    n_folds: int,
    metrics: Sequence[str] = ("score",),
) -> dict:
    """The finished records as rows x folds matrices (a search's and a curve's results alike).

    Returns
    -------
    dict
        One float matrix per score (``test_<metric>``, ``train_<metric>``)
        and per `TIME_FIELDS` name (NaN where unfinished or None), `present`
        (bool matrix), `failed` (failed fits per row), `host` and `engine`
        (lists of lists).
    """
    shape = (n_rows, n_folds)
    scores = [(w, m) for w in ("test", "train") for m in metrics]
    out: dict = {f: np.full(shape, np.nan) for f in TIME_FIELDS}
    out.update({f"{w}_{m}": np.full(shape, np.nan) for w, m in scores})
    out["present"] = np.zeros(shape, dtype=bool)
    out["failed"] = np.zeros(n_rows, dtype=int)
    out["host"] = [[None] * n_folds for _ in range(n_rows)]
    out["engine"] = [[None] * n_folds for _ in range(n_rows)]
    for (c, k), r in latest_records(records).items():
        if c >= n_rows or k >= n_folds:
            continue
        out["present"][c, k] = True
        for f in TIME_FIELDS:
            out[f][c, k] = _num(r.get(f))
        for w, m in scores:
            out[f"{w}_{m}"][c, k] = _num(record_score(r, w, m))
        out["failed"][c] += r.get("status") == FIT_FAILED
        out["host"][c][k] = r.get("host")
        out["engine"][c][k] = r.get("engine")
    return out


def metric_view(results: dict, metric: str = "score") -> dict:
    """`results` with `metric`'s keys under the one-metric names (`mean_test_score`...).

    What the report, the plots and `best` read, so they serve multi-metric
    results through the metric that ranks candidates.
    """
    if metric == "score":
        return results
    out = dict(results)
    for key, value in results.items():
        for part in ("test", "train"):
            suffix = f"_{part}_{metric}"
            if key.endswith(suffix):
                out[key[: -len(suffix)] + f"_{part}_score"] = value
    return out


def n_splits(results: dict) -> int:
    """How many folds `results` has (its `split<k>_host` columns)."""
    return sum(1 for k in results if k.startswith("split") and k.endswith("_host"))


def complete_rows(results: dict) -> list[int]:
    """The indices of the candidates (rows) scored on every fold."""
    n = n_splits(results)
    return [
        i for i, done in enumerate(results.get("n_finished_splits", [])) if done == n
    ]


def n_complete(results: dict) -> int:
    """How many candidates are scored on every fold."""
    return len(complete_rows(results))


def metrics_of(results: dict) -> list[str]:
    """The metrics' names in `results` (``["score"]`` for one metric)."""
    return [k[len("mean_test_") :] for k in results if k.startswith("mean_test_")]


def _stats(
    arr: np.ndarray,
    present: np.ndarray,
    complete: np.ndarray,
    partial: np.ndarray,
    n_folds: int,
) -> tuple[list, list, list]:
    """Per-candidate mean, std and sem of `arr` (candidates x folds).

    Complete candidates get sklearn's own arithmetic
    (`BaseSearchCV._format_results`) all at once; partial ones the mean of
    their finished splits.
    """
    nc = arr.shape[0]
    means = np.full(nc, np.nan)
    stds = np.full(nc, np.nan)
    sems = np.full(nc, np.nan)
    if complete.any():
        block = arr[complete]
        m = np.average(block, axis=1)
        means[complete] = m
        stds[complete] = np.sqrt(np.average((block - m[:, np.newaxis]) ** 2, axis=1))
        if n_folds > 1:
            # Standard error of the mean (scipy.stats.sem, ddof=1), as
            # the notebook's report showed; undefined for one split.
            sems[complete] = np.std(block, axis=1, ddof=1) / math.sqrt(n_folds)
    for c in partial:  # unfinished candidates: their finished splits only
        row = arr[c, present[c]]
        means[c], stds[c] = _mean_std(row)
        if row.size > 1:
            sems[c] = np.std(row, ddof=1) / math.sqrt(row.size)
    return means.tolist(), stds.tolist(), sems.tolist()


def _num(v) -> float:
    return math.nan if v is None else float(v)


def rank(means: list[float]) -> list[int]:
    """Sklearn's ranking: 1 is best, ties share the lowest rank, NaN last."""
    from scipy.stats import rankdata

    arr = np.asarray(means, dtype=np.float64)
    if arr.size == 0:
        return []
    if np.isnan(arr).all():
        return [1] * arr.size
    arr = np.nan_to_num(arr, nan=np.nanmin(arr) - 1)
    return rankdata(-arr, method="min").astype(int).tolist()


def every_fit_failed(results: dict) -> bool:
    """Whether every (candidate, fold) scored so far is a failed fit (and there is one)."""
    done = sum(results.get("n_finished_splits") or [])
    return done > 0 and sum(results.get("n_failed_fits") or []) >= done


def best(
    results: dict, complete_only: bool = False, metric: str = "score"
) -> tuple[int | None, dict | None, float | None]:
    """(index, params, mean test score) of rank 1 by `metric`, as GridSearchCV's best_*.

    With `complete_only`, only candidates scored on every fold compete, so an
    incomplete run never names a winner from partial means.
    """
    if every_fit_failed(results):
        return None, None, None  # no best: scikit-learn raises
    results = metric_view(results, metric)
    ranks = results.get("rank_test_score") or []
    means = results.get("mean_test_score") or []
    ok = list(range(len(ranks)))
    if complete_only and ok:
        ok = complete_rows(results)
    finished = results.get("n_finished_splits") or [1] * len(ok)
    ok = [i for i in ok if finished[i]]
    # A NaN mean ranks last; when every mean is NaN (the fits worked, their
    # scores failed), scikit-learn's best is still rank 1, the first
    # candidate, whose refit then raises the estimator's own error.
    ok = [i for i in ok if not math.isnan(means[i])] or ok
    if not ok:
        return None, None, None
    i = min(ok, key=lambda j: (ranks[j], j))
    return i, results["params"][i], results["mean_test_score"][i]


def best_in_last_iteration(
    results: dict, column: str = "iter"
) -> tuple[int | None, dict | None, float | None]:
    """(index, params, mean test score) of a halving search's best, as scikit-learn picks it.

    `_select_best_index` of Halving*SearchCV: the highest mean test score of
    the last iteration (`iter`), the first of them when every one is NaN.
    Only rows scored on every fold compete, as in `best`: the last iteration
    is the last with such a row. Another `column` (e.g. ``n_resources``)
    ranks the rows of its highest value the same way.
    """
    its = results.get(column) or []
    if not its or every_fit_failed(results):
        return None, None, None
    complete = complete_rows(results)
    if not complete:
        return None, None, None
    # The last iteration with a complete row: a budget may have ended the
    # run before the planned one's rows ran.
    last = max(its[i] for i in complete)
    idx = [i for i in complete if its[i] == last]
    means = np.array([results["mean_test_score"][i] for i in idx], dtype=np.float64)
    pick = 0 if np.isnan(means).all() else int(np.nanargmax(means))
    i = idx[pick]
    return i, results["params"][i], results["mean_test_score"][i]


def format_report(
    results: dict,
    n_tasks: int,
    n_done: int,
    top_k: int = TOP_K,
    status: str = "running",
    extra: dict | None = None,
    metric: str = "score",
) -> str:
    """The report in the notebook's shape, plus fleetcv's counters.

    ::

        Progress: 41% (041/100)

        Rank 1: validation: 0.99022 (+/-0.00151) train: 0.99896 (+/-0.00038):
         {'C': 1.0, 'gamma': 0.001}

    With several metrics, candidates are ranked by `metric` (the refit one)
    and each row has one more line per other metric::

        Rank 1: validation: 0.91000 (+/-0.01000) train: ...:   (f1_macro)
          accuracy: validation: 0.93000 (+/-0.00800) train: ...
         {'C': 1.0}
    """
    others = [m for m in metrics_of(results) if m != metric]
    results = metric_view(results, metric)
    pct = int(100 * n_done / n_tasks) if n_tasks else 100
    width = max(3, len(str(n_tasks)))
    head = {
        "running": "Progress",
        "finished": "Finished",
        "aborted": "Aborted at",
        "incomplete": "Incomplete",
        "interrupted": "Interrupted at",
    }.get(status, status)
    lines = [f"{head}: {pct:02d}% ({n_done:0{width}d}/{n_tasks:0{width}d})"]
    extra = extra or {}
    counters = [f"{v} {k}" for k, v in extra.items() if v]
    failed = sum(results.get("n_failed_fits", []))
    if failed:
        counters.insert(0, f"{failed} failed fits")
    if counters:
        lines.append("(" + ", ".join(counters) + ")")
    lines.append("")
    order = sorted(
        (i for i, n in enumerate(results.get("n_finished_splits", [])) if n),
        key=lambda i: (results["rank_test_score"][i], i),
    )
    if others:
        lines.append(f"Ranked by {metric}; also {', '.join(others)}:")
    for pos, i in enumerate(order[:top_k], start=1):
        line = f"Rank {pos}: validation: {_pm(results, 'test', 'score', i)}"
        if "mean_train_score" in results:
            line += f" train: {_pm(results, 'train', 'score', i)}"
        lines.append(line + ":" + (f"   ({metric})" if others else ""))
        for m in others:
            line = f"  {m}: validation: {_pm(results, 'test', m, i)}"
            if f"mean_train_{m}" in results:
                line += f" train: {_pm(results, 'train', m, i)}"
            lines.append(line)
        lines.append(f" {params_text(results['params'][i])}")
    if failed:
        total = sum(results.get("n_finished_splits", []))
        lines.append("")
        lines.append(
            f"{failed} of the {total} fits failed and scored error_score; the "
            "tracebacks are in journal.jsonl (field `error`). Set error_score: "
            "raise in the spec to stop at the first one."
        )
    return "\n".join(lines)


def params_text(params: dict) -> str:
    """A candidate's params as the report prints them: estimators as ``Class(k=v)``."""
    return "{" + ", ".join(f"{k!r}: {value_text(v)}" for k, v in params.items()) + "}"


def value_text(v) -> str:
    """One parameter value as Python prints it; an estimator as scikit-learn does.

    A described value (`runtime.build.describe`) is read without
    running anything: a pickled one prints the `repr` kept beside it, an
    estimator its class name and the parameters that differ from the
    class's defaults (`Class(k=v)`, the defaults when its module imports here).
    """
    if isinstance(v, dict) and TYPE_KEY in v:
        return _typed_text(v)
    if is_estimator_description(v) and "class" in v:
        args = ", ".join(f"{k}={value_text(x)}" for k, x in _changed_params(v).items())
        return f"{v['class'].rpartition('.')[2]}({args})"
    if is_estimator_description(v):  # a pipeline
        steps = ", ".join(
            f"({s['name']!r}, {value_text({k: x for k, x in s.items() if k != 'name'})})"
            for s in v["pipeline"]
        )
        return f"Pipeline([{steps}])"
    if isinstance(v, list):
        return "[" + ", ".join(value_text(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k!r}: {value_text(x)}" for k, x in v.items()) + "}"
    return repr(v)


def _typed_text(v: dict) -> str:
    kind = v[TYPE_KEY]
    if kind in ("numpy", "ndarray"):
        return repr(build(v))  # numbers and strings only: nothing runs
    if kind == "tuple":
        items = [value_text(x) for x in v["items"]]
        return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"
    if kind == "list":
        return "[" + ", ".join(value_text(x) for x in v["items"]) + "]"
    if kind == "dict":
        pairs = (f"{value_text(k)}: {value_text(x)}" for k, x in v["items"])
        return "{" + ", ".join(pairs) + "}"
    if kind == "import":
        return v["path"]
    return v.get("repr") or f"<{kind}>"


def _changed_params(desc: dict) -> dict:
    """An estimator description's params that differ from its class's defaults.

    scikit-learn prints an estimator with those only; a class that does not
    import here keeps every param it was described with.
    """
    import inspect

    params = desc.get("params") or {}
    try:
        signature = inspect.signature(import_path(desc["class"]))
    except Exception:  # noqa: BLE001 - not importable here: print every param
        return params
    defaults = {
        p.name: p.default
        for p in signature.parameters.values()
        if p.default is not inspect.Parameter.empty
    }
    out = {}
    for k, x in params.items():
        if k in defaults:
            try:
                same = describe(defaults[k]) == x
            except TypeError:
                same = False
            if same:
                continue
        out[k] = x
    return out


def readable(value):
    """A described parameter value as plots and tables read it, running nothing.

    Numbers stay numbers (a numpy scalar its Python value), tuples and
    typed lists and mappings their items; an estimator stays its
    description; any other typed value becomes its text (`value_text`).
    """
    if isinstance(value, dict) and TYPE_KEY in value:
        kind = value[TYPE_KEY]
        if kind == "numpy":
            return value["value"]
        if kind in ("tuple", "list"):
            items = [readable(x) for x in value["items"]]
            return tuple(items) if kind == "tuple" else items
        return value_text(value)
    if isinstance(value, list):
        return [readable(x) for x in value]
    return value


def readable_results(results: dict) -> dict:
    """`results` with every parameter value `readable` (what the plots and report.html draw)."""
    out = dict(results)
    for key, values in results.items():
        if key == "params":
            out[key] = [{k: readable(v) for k, v in p.items()} for p in values]
        elif key.startswith("param_"):
            out[key] = [readable(v) for v in values]
    return out


def _pm(results: dict, which: str, metric: str, i: int) -> str:
    """``mean (+/-sem)`` of row i."""
    mean = results[f"mean_{which}_{metric}"][i]
    return f"{_fmt(mean)} (+/-{_fmt(results[f'sem_{which}_{metric}'][i])})"


def _fmt(v) -> str:
    return (
        "nan" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.5f}"
    )


def expected_times(records: Iterable[dict]) -> dict[int, float]:
    """Mean seconds per task of each candidate (fit + test and train scoring)."""
    sums: dict[int, list[float]] = {}
    for r in latest_records(records).values():
        t = (
            (r.get("fit_time") or 0.0)
            + (r.get("score_time") or 0.0)
            + (r.get("train_score_time") or 0.0)
        )
        sums.setdefault(int(r["candidate"]), []).append(t)
    return {c: float(np.mean(v)) for c, v in sums.items()}

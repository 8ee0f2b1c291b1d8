"""The halving kind: successive halving, as scikit-learn's Halving*SearchCV.

Runs on the driver. A halving search is a search whose rows come in
iterations: iteration 0 evaluates every candidate with `n_resources[0]`
(training rows, or an estimator parameter such as `n_estimators`), then the
best 1/factor of each iteration go on to the next with `factor` times the
resources. Every row of an iteration is a (candidate, fold) task of the one
task runner, submitted together; the next iteration's rows are added when
the last task of one arrives (`halving_rows`, the kind's planner).

The arithmetic is scikit-learn's own (`BaseSuccessiveHalving._run_search`,
`_top_k`, `_SubsampleMetaSplitter`, `_select_best_index`), in the same
order and with the same numpy calls, so the same random_state gives the
same candidates, subsamples, survivors, scores and `cv_results_`. The rows
are a pure function of the job and the journal: a resumed run, a report
made later, and the run itself agree on them, with no second file.

The `n_samples` resource subsamples each fold's training and test rows as
scikit-learn does: the first ``int(fraction * n)`` of a fixed permutation
of the fold's rows (`runtime.folds.subsample`). That is a shuffled
subset, not a prefix, so unlike a learning curve's sizes it is a copy of
those rows on the engine, not a view of the memmap.
"""

from __future__ import annotations

import math

import numpy as np

from fleetcv.kinds.base import PlanContext, SpecSection
from fleetcv.kinds.dynamic import row_args
from fleetcv.kinds.search import SEARCH, planned_search
from fleetcv.rundir import results as rs
from fleetcv.rundir.results import latest_records
from fleetcv.spec.strategies import parse_halving, resource_check

NAME = "halving"
#: The resource that subsamples the rows instead of setting a parameter.
N_SAMPLES = "n_samples"
#: Where the best candidate comes from (`fleetcv.kinds.search.best_of`):
#: the last iteration's, as scikit-learn's `_select_best_index`.
BEST_IN_LAST_ITERATION = "last_iteration"


def schedule(
    n_candidates: int,
    *,
    factor: float,
    min_resources: int | str,
    max_resources: int,
    smallest: int,
    aggressive_elimination: bool,
) -> dict:
    """The iterations of a halving search, as scikit-learn's `_run_search` computes them.

    Parameters
    ----------
    n_candidates : int
        Candidates of the first iteration.
    factor : float
        The proportion of candidates kept (1/factor) and the growth of the
        resources (x factor) from one iteration to the next.
    min_resources : int, "smallest" or "exhaust"
        As scikit-learn's.
    max_resources : int
        The resources of a full fit (rows of the data for n_samples).
    smallest : int
        What "smallest" means here (scikit-learn's `min_resources_` before
        _run_search: 2 x n_splits [x n_classes] for n_samples, else 1).
    aggressive_elimination : bool
        As scikit-learn's.

    Returns
    -------
    dict
        min_resources_, max_resources_, n_required_iterations,
        n_possible_iterations, n_iterations, n_resources (one per iteration).
    """
    min_r = smallest if min_resources in ("smallest", "exhaust") else min_resources
    n_required = 1 + math.floor(math.log(n_candidates, factor))
    if min_resources == "exhaust":
        min_r = max(min_r, max_resources // factor ** (n_required - 1))
    n_possible = 1 + math.floor(math.log(max_resources // min_r, factor))
    n_iterations = n_required if aggressive_elimination else min(n_possible, n_required)
    n_resources = []
    for itr in range(n_iterations):
        power = itr
        if aggressive_elimination:
            power = max(0, itr - n_required + n_possible)
        n_resources.append(min(int(factor**power * min_r), max_resources))
    return {
        "min_resources_": int(min_r),
        "max_resources_": int(max_resources),
        "n_required_iterations": n_required,
        "n_possible_iterations": n_possible,
        "n_iterations": n_iterations,
        "n_resources": n_resources,
    }


def halving_job(
    candidates: list[dict],
    settings: dict,
    return_train_score: bool = True,
    refit: bool = True,
) -> dict:
    """The job description of a halving search (what its meta.json holds).

    Parameters
    ----------
    candidates : list of dict
        The first iteration's candidates (a grid, or a sample of one).
    settings : dict
        factor, resource, aggressive_elimination, random_state (the
        subsample's seed), n_samples (rows of the data), flavour ("grid"
        or "random") and the `schedule` of the iterations.
    return_train_score, refit : bool
        As a search's (one metric: scikit-learn's halving has no other).
    """
    return {
        "kind": NAME,
        "candidates": [dict(c) for c in candidates],
        "return_train_score": bool(return_train_score),
        "metrics": ["score"],
        "ranking": "score",
        "refit": bool(refit),
        "best": BEST_IN_LAST_ITERATION,
        "halving": dict(settings),
    }


def keep_best(params: list[dict], means: np.ndarray, k: int) -> list[dict]:
    """scikit-learn's `_top_k`: the best k, worst first; a NaN mean is never kept before a number."""
    order = np.roll(np.argsort(means), np.count_nonzero(np.isnan(means)))
    return [params[i] for i in order[-k:]]


def _iteration_means(latest: dict, first: int, n: int, n_folds: int):
    """Mean test scores of rows first..first+n-1, or None while one lacks a fold."""
    scores = []
    for c in range(first, first + n):
        for k in range(n_folds):
            rec = latest.get((c, k))
            if rec is None:
                return None
            score = rec.get("test_score")
            scores.append(math.nan if score is None else score)
    # As scikit-learn's _format_results: a rows x splits float array, averaged.
    return np.average(np.array(scores, dtype=np.float64).reshape(n, n_folds), axis=1)


def resource_row(settings: dict, params: dict, itr: int, n_res: int, **tags) -> dict:
    """A row that fits `params` with `n_res` resources (a halving iteration, an ASHA rung).

    The n_samples resource is a subsample the worker draws (scikit-learn's
    fraction and seed); any other resource is set as the estimator's
    parameter. `tags` go beside ``iter`` and ``n_resources``.
    """
    row = {"tags": {"iter": itr, "n_resources": n_res, **tags}}
    resource = settings["resource"]
    if resource == N_SAMPLES:
        row["params"] = dict(params)
        row["subsample"] = {
            "fraction": n_res / settings["n_samples"],
            "random_state": settings["random_state"],
        }
    else:
        row["params"] = {**params, resource: n_res}
    return row


def halving_rows(job: dict, records, n_folds: int | None = None) -> list[dict]:
    """Every row the journal's records determine so far, in scikit-learn's order.

    A row is ``{"params", "tags": {"iter", "n_resources"}}`` (and
    ``subsample`` for the n_samples resource: what the worker draws). The rows of iteration
    i+1 exist once every (row, fold) of iteration i has its score.
    """
    h = job["halving"]
    n_folds = n_folds or h["n_splits"]
    latest = latest_records(records)
    factor = h["factor"]
    survivors = [dict(c) for c in job["candidates"]]
    rows: list[dict] = []
    for itr, n_res in enumerate(h["schedule"]["n_resources"]):
        first = len(rows)
        rows += [resource_row(h, p, itr, n_res) for p in survivors]
        means = _iteration_means(latest, first, len(survivors), n_folds)
        if means is None:
            break
        # The survivors keep their own parameters (not the resource's value).
        survivors = keep_best(survivors, means, math.ceil(len(survivors) / factor))
    return rows


def planner(job: dict, ctx: PlanContext):
    """The kind's planner: journal records -> every row known (`halving_rows`)."""
    return lambda records: halving_rows(job, records, ctx.n_folds)


def rows_results(job: dict, rows: list[dict], n_folds: int, records, tags) -> dict:
    """cv_results_ of planned rows (`resource_row`), with their `tags` as columns."""
    out = rs.build_cv_results(
        [r["params"] for r in rows],
        n_folds,
        records,
        job.get("return_train_score", True),
    )
    for column in tags:
        out[column] = [r["tags"][column] for r in rows]
    return out


def _results(job: dict, n_folds: int, records) -> dict:
    rows = halving_rows(job, records, n_folds)
    return rows_results(job, rows, n_folds, records, ("iter", "n_resources"))


def iteration_entry(
    results: dict, itr, n_res: int, idx: list[int] | None = None
) -> dict:
    """One iteration's (or rung's) line: its rows, those scored on every fold, their best.

    `idx` are its rows (default: those whose `iter` is `itr`).
    """
    if idx is None:
        idx = [i for i, t in enumerate(results.get("iter") or []) if t == itr]
    complete = set(rs.complete_rows(results))
    means = [results["mean_test_score"][i] for i in idx if i in complete]
    finite = [m for m in means if m is not None and not math.isnan(m)]
    return {
        "iter": itr,
        "n_resources": n_res,
        "n_candidates": len(idx),
        "n_finished": len(means),
        "best_score": max(finite) if finite else None,
    }


def iterations(job: dict, results: dict) -> list[dict]:
    """One entry per iteration with a score (`iteration_entry`), in order."""
    out = []
    its = results.get("iter") or []
    for itr, n_res in enumerate(job["halving"]["schedule"]["n_resources"]):
        idx = [i for i, t in enumerate(its) if t == itr]
        if not any(results["n_finished_splits"][i] for i in idx):
            break  # planned, nothing scored yet (or a budget ended the run)
        out.append(iteration_entry(results, itr, n_res))
    return out


def _summary(job: dict, results: dict) -> dict:
    out = SEARCH.summary(job, results)
    h = job["halving"]
    its = iterations(job, results)
    sched = h["schedule"]
    # scikit-learn's attributes of a fitted Halving*SearchCV.
    out.update(
        {
            "n_resources_": [it["n_resources"] for it in its],
            "n_candidates_": [it["n_candidates"] for it in its],
            "n_iterations_": sched["n_iterations"],
            "n_required_iterations_": sched["n_required_iterations"],
            "n_possible_iterations_": sched["n_possible_iterations"],
            "min_resources_": sched["min_resources_"],
            "max_resources_": sched["max_resources_"],
            "iterations": its,
        }
    )
    return out


def _report(job, results, n_tasks, n_done, status="running", extra=None, top_k=None):
    text = SEARCH.report(job, results, n_tasks, n_done, status, extra, top_k)
    return text + "\n\n" + format_iterations(job, iterations(job, results))


def format_iterations(job: dict, its: list[dict]) -> str:
    """The per-iteration table of a halving search's report."""
    h = job["halving"]
    head = (
        f"Successive halving (factor {h['factor']:g}, resource {h['resource']}): "
        f"{len(its)}/{h['schedule']['n_iterations']} iterations begun"
    )
    return format_iteration_table(head, its)


def format_iteration_table(head: str, its: list[dict]) -> str:
    """`head`, then one line per iteration (or rung): resources, rows, finished, best."""
    lines = [
        head,
        f"{'iter':>4} {'resources':>10} {'candidates':>10} {'finished':>8} {'best':>9}",
    ]
    for it in its:
        best = "" if it["best_score"] is None else f"{it['best_score']:.5f}"
        lines.append(
            f"{it['iter']:>4} {it['n_resources']:>10} {it['n_candidates']:>10} "
            f"{it['n_finished']:>8} {best:>9}"
        )
    return "\n".join(lines)


def _postfix(job: dict, results: dict) -> list[str]:
    its = iterations(job, results)
    parts = [f"iter={len(its) - 1}"] if its else []
    return parts + SEARCH.postfix(job, results)


def _n_tasks(job: dict, n_folds: int) -> int:
    """Rows x folds once every iteration has run (the progress bar's total)."""
    sched = job["halving"]["schedule"]
    n, total = len(job["candidates"]), 0
    for _ in sched["n_resources"]:
        total += n
        n = math.ceil(n / job["halving"]["factor"])
    return total * n_folds


def resources(spec, split, settings: dict) -> dict:
    """What a resource search's settings mean on these folds (scikit-learn's rules).

    Returns
    -------
    dict
        n_samples (rows of the data), n_splits, smallest (what
        min_resources "smallest" is: 2 x n_splits [x n_classes] for
        n_samples, else 1), max_resources and min_resources (before
        "exhaust" raises it).

    Raises
    ------
    ConfigError
        When min_resources is above max_resources, naming both.
    """
    from sklearn.base import is_classifier

    from fleetcv.spec.common import err
    from runtime.folds import DATA_NAME, load_fold

    section = spec.search
    n_samples = int(split.manifest["n_samples"])
    n_splits = split.n_folds
    if settings["resource"] == N_SAMPLES:
        smallest = n_splits * 2
        if is_classifier(spec.estimator.build()):
            _, y, _ = load_fold(split.path / DATA_NAME)
            smallest *= int(np.unique(np.asarray(y)).shape[0])
    else:
        smallest = 1
    max_r = (
        n_samples if settings["max_resources"] == "auto" else settings["max_resources"]
    )
    min_r = settings["min_resources"]
    min_first = smallest if min_r in ("smallest", "exhaust") else min_r
    if min_first > max_r:
        raise err(
            spec.path,
            f"{section}.min_resources",
            f"min_resources is {min_first} (from {min_r!r}), more than "
            f"max_resources {max_r}",
            "lower min_resources, or raise max_resources",
        )
    return {
        "n_samples": n_samples,
        "n_splits": n_splits,
        "smallest": smallest,
        "max_resources": max_r,
        "min_resources": min_first,
    }


def subsample_seed(spec) -> int:
    """The spec's random_state, or a seed drawn once and kept in meta.json.

    scikit-learn would draw other subsamples at every iteration without
    one; a run keeps one, so a resume agrees.
    """
    if spec.random_state is not None:
        return spec.random_state
    return int(np.random.SeedSequence().entropy % 2**32)


def first_candidates(spec, settings: dict, res: dict) -> list[dict]:
    """The candidates to start from: the grid, or n_candidates drawn (`exhaust`: as scikit-learn)."""
    n_cand = None
    if settings["flavour"] == "random":
        n_cand = settings["n_candidates"]
        if n_cand == "exhaust":
            # HalvingRandomSearchCV: enough candidates for the last
            # iteration to use as much of the resources as possible.
            n_cand = res["max_resources"] // res["min_resources"]
    return spec.candidates(n_iter=n_cand)


def job_of(spec, split) -> dict:
    """The job of a `search: halving` spec on its folds (resolves what needs the data).

    Raises
    ------
    ConfigError
        When the resources do not fit the data (see `resources`).
    """
    h = spec.settings
    res = resources(spec, split, h)
    candidates = first_candidates(spec, h, res)
    sched = schedule(
        len(candidates),
        factor=h["factor"],
        min_resources=h["min_resources"],
        max_resources=res["max_resources"],
        smallest=res["smallest"],
        aggressive_elimination=h["aggressive_elimination"],
    )
    settings = {
        **h,
        "n_samples": res["n_samples"],
        "n_splits": res["n_splits"],
        "random_state": subsample_seed(spec),
        "schedule": sched,
    }
    return halving_job(candidates, settings, spec.return_train_score, spec.refit)


HALVING = planned_search(
    name=NAME,
    search=NAME,
    spec=SpecSection(
        section=NAME,
        parse=lambda where, raw, est, rs: parse_halving(where, raw, est, NAME),
        flavour=lambda settings: settings["flavour"],
        check=resource_check(NAME),
        job_of=job_of,
        needs_split=True,
        budget="halving.n_candidates",
    ),
    rows="candidates",
    candidates=lambda job: halving_rows(job, []),
    results=_results,
    summary=_summary,
    report=_report,
    postfix=_postfix,
    planner=planner,
    row_args=row_args,
    expected_tasks=_n_tasks,
)

"""The hyperband kind: Hyperband (Li et al., JMLR 2018), brackets of successive halving.

Runs on the driver. Hyperband hedges successive halving's one choice, how
many candidates to start against how many resources each gets, by running
every choice at once: with ``R = max_resources // min_resources`` and
``eta = factor``, bracket ``s`` (``s_max = floor(log_eta R)`` down to 0)
starts ``n = ceil((s_max + 1) / (s + 1) * eta**s)`` candidates with
``max_resources * eta**-s`` resources each and keeps the best
``floor(n_i / eta)`` of each rung for the next, ``eta`` times the resources,
until its last rung fits with ``max_resources``. Bracket 0 is a plain random
search at full resources; as dask-ml's HyperbandSearchCV, the brackets run
side by side, not one after the other, so the fleet is busy from the start.

Resources are those of scikit-learn's successive halving (`halving.resource_row`):
training rows (`n_samples`) or an estimator parameter such as
n_estimators or max_iter, every rung a fit from scratch (dask-ml counts
partial_fit calls instead). The best is the best mean test score among the
rows fitted with `max_resources` (every bracket's last rung).

Rows come in rounds: round i is rung i of every bracket that has one, in
bracket order (s_max first), and a bracket's rung i is listed once its rung
i-1 has every fold's score and every earlier-listed rung of round i is
listed. The rows are thereby a pure function of the job and the journal, as
a halving search's: a resumed run, a report made later and the run itself
agree on every row's index, with no rows file. Adding this kind touched
this module and one line of the registry (`fleetcv.kinds`).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from fleetcv.kinds.base import PlanContext, SpecSection
from fleetcv.kinds.dynamic import row_args, row_mean
from fleetcv.kinds.halving import (
    format_iteration_table,
    iteration_entry,
    keep_best,
    resource_row,
    resources,
    rows_results,
    subsample_seed,
)
from fleetcv.kinds.search import SEARCH, planned_search
from fleetcv.rundir.results import latest_records
from fleetcv.spec.common import check_keys, err
from fleetcv.spec.strategies import (
    parse_factor,
    parse_min_max,
    parse_resource,
    resource_check,
)

NAME = "hyperband"
#: The keys of the `hyperband:` section.
KEYS = {"factor", "resource", "min_resources", "max_resources"}


def brackets(min_resources: int, max_resources: int, factor: float) -> list[dict]:
    """Hyperband's brackets, most aggressive first (Li et al., Algorithm 1).

    Parameters
    ----------
    min_resources, max_resources : int
        The fewest resources a fit gets, and a full fit's.
    factor : float
        ``eta``: the share kept (1/eta) and the growth of resources (x eta).

    Returns
    -------
    list of dict
        One per bracket ``s`` from s_max down to 0: ``s``, ``n_candidates``
        (per rung, starting with n) and ``n_resources`` (per rung, ending
        with max_resources).
    """
    ratio = max_resources // min_resources
    # floor(log_eta(R)) by multiplication: math.log(243, 3) is 4.999...
    s_max = 0
    while factor ** (s_max + 1) <= ratio:
        s_max += 1
    out = []
    for s in range(s_max, -1, -1):
        n = math.ceil((s_max + 1) / (s + 1) * factor**s)
        counts = [n]
        for _ in range(s):
            counts.append(max(1, math.floor(counts[-1] / factor)))
        res = [
            max(min_resources, int(max_resources * factor ** (i - s)))
            for i in range(s + 1)
        ]
        res[-1] = max_resources
        out.append({"s": s, "n_candidates": counts, "n_resources": res})
    return out


def parse(where: str, raw: Any, base, random_state) -> dict:
    """Validate the `hyperband:` section; its settings with defaults.

    factor 3; resource n_samples (or an estimator parameter, then
    max_resources is required); min_resources "smallest" (as scikit-learn's
    halving: 2 x n_splits [x n_classes] rows, or 1); max_resources "auto"
    (every row). The candidates are drawn from `params` as a randomized
    search's, as many as the brackets start.

    Raises
    ------
    ConfigError
        Naming the `hyperband.<key>`, the bad value and the fix.
    """
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise err(
            where,
            NAME,
            f"expected a mapping of settings, got {raw!r}",
            "write e.g. hyperband: {factor: 3, resource: n_estimators, max_resources: 243}",
        )
    check_keys(where, f"{NAME}.", raw, KEYS)
    resource = parse_resource(where, f"{NAME}.resource", raw, base)
    min_resources, max_resources = parse_min_max(where, NAME, raw, "random", resource)
    return {
        "flavour": "random",
        "factor": parse_factor(where, f"{NAME}.factor", raw.get("factor", 3)),
        "resource": resource,
        "min_resources": min_resources,
        "max_resources": max_resources,
    }


def job_of(spec, split) -> dict:
    """The job of a `search: hyperband` spec on its folds (what its meta.json holds).

    Raises
    ------
    ConfigError
        When the resources do not fit the data, or `params` (lists only)
        has fewer combinations than the brackets start.
    """
    h = spec.settings
    res = resources(spec, split, h)
    plan = brackets(res["min_resources"], res["max_resources"], h["factor"])
    total = sum(b["n_candidates"][0] for b in plan)
    with warnings.catch_warnings():
        # scikit-learn's "space smaller than n_iter" warning: the error below says more.
        warnings.simplefilter("ignore", UserWarning)
        candidates = spec.candidates(n_iter=total)
    if len(candidates) < total:
        raise err(
            spec.path,
            "params",
            f"Hyperband's {len(plan)} brackets start {total} candidates and the "
            f"parameter lists hold only {len(candidates)} combinations",
            "give a distribution (e.g. C: loguniform(1e-3, 1e3)), more values, "
            "or raise hyperband.min_resources (fewer brackets)",
        )
    first = 0
    for b in plan:
        b["first"] = first
        first += b["n_candidates"][0]
    settings = {
        **h,
        "min_resources": res["min_resources"],
        "max_resources": res["max_resources"],
        "n_samples": res["n_samples"],
        "n_splits": res["n_splits"],
        "random_state": subsample_seed(spec),
        "brackets": plan,
    }
    return {
        "kind": NAME,
        "candidates": candidates,
        "return_train_score": spec.return_train_score,
        "metrics": ["score"],
        "ranking": "score",
        "refit": bool(spec.refit),
        "best": {"highest": "n_resources"},
        NAME: settings,
    }


def hyperband_rows(job: dict, records, n_folds: int | None = None) -> list[dict]:
    """Every row the journal's records determine so far, round by round.

    A row is ``{"params", "tags": {"bracket", "iter", "n_resources"}}``
    (and ``subsample`` for the n_samples resource). See the module's
    docstring for when a rung is listed.
    """
    h = job[NAME]
    n_folds = n_folds or h["n_splits"]
    latest = latest_records(records)
    plan = h["brackets"]
    survivors = {
        b["s"]: job["candidates"][b["first"] : b["first"] + b["n_candidates"][0]]
        for b in plan
    }
    last_rung: dict[int, range] = {}
    rows: list[dict] = []
    for i in range(max(len(b["n_resources"]) for b in plan)):
        for b in (b for b in plan if i < len(b["n_resources"])):
            s = b["s"]
            if i > 0:
                means = [row_mean(latest, c, n_folds) for c in last_rung[s]]
                if any(m is None for m in means):
                    return rows
                survivors[s] = keep_best(
                    survivors[s],
                    np.array(means, dtype=np.float64),
                    b["n_candidates"][i],
                )
            last_rung[s] = range(len(rows), len(rows) + len(survivors[s]))
            rows += [
                resource_row(h, p, i, b["n_resources"][i], bracket=s)
                for p in survivors[s]
            ]
    return rows


def planner(job: dict, ctx: PlanContext):
    """The kind's planner: journal records -> every row known (`hyperband_rows`)."""
    return lambda records: hyperband_rows(job, records, ctx.n_folds)


def _results(job: dict, n_folds: int, records) -> dict:
    rows = hyperband_rows(job, records, n_folds)
    return rows_results(job, rows, n_folds, records, ("bracket", "iter", "n_resources"))


def rungs(job: dict, results: dict) -> list[dict]:
    """One entry per bracket and rung begun (`iteration_entry`, named b<bracket>r<rung>)."""
    out = []
    for b in job[NAME]["brackets"]:
        for i, n_res in enumerate(b["n_resources"]):
            idx = [
                j
                for j, (s, it) in enumerate(
                    zip(results["bracket"], results["iter"], strict=True)
                )
                if s == b["s"] and it == i
            ]
            if not idx:
                break
            entry = iteration_entry(results, f"b{b['s']}r{i}", n_res, idx)
            out.append({**entry, "bracket": b["s"], "rung": i})
    return out


def _summary(job: dict, results: dict) -> dict:
    out = SEARCH.summary(job, results)
    h = job[NAME]
    # dask-ml's HyperbandSearchCV.metadata_, in fleetcv's resources.
    out["metadata"] = {
        "n_models": len(job["candidates"]),
        "brackets": [
            {
                "bracket": b["s"],
                "n_models": b["n_candidates"][0],
                "n_candidates": b["n_candidates"],
                "n_resources": b["n_resources"],
            }
            for b in h["brackets"]
        ],
    }
    out["iterations"] = rungs(job, results)
    return out


def _report(job, results, n_tasks, n_done, status="running", extra=None, top_k=None):
    text = SEARCH.report(job, results, n_tasks, n_done, status, extra, top_k)
    h = job[NAME]
    head = (
        f"Hyperband (factor {h['factor']:g}, resource {h['resource']}, "
        f"{len(h['brackets'])} brackets), rungs as b<bracket>r<rung>:"
    )
    return text + "\n\n" + format_iteration_table(head, rungs(job, results))


def _postfix(job: dict, results: dict) -> list[str]:
    its = rungs(job, results)
    parts = [f"rung={its[-1]['iter']}"] if its else []
    return parts + SEARCH.postfix(job, results)


def _n_tasks(job: dict, n_folds: int) -> int:
    """Rows x folds once every bracket has run (the progress bar's total)."""
    return n_folds * sum(sum(b["n_candidates"]) for b in job[NAME]["brackets"])


HYPERBAND = planned_search(
    name=NAME,
    search=NAME,
    spec=SpecSection(
        section=NAME,
        parse=parse,
        flavour=lambda settings: "random",
        check=resource_check(NAME),
        job_of=job_of,
        needs_split=True,
        budget="hyperband.max_resources",
    ),
    rows="candidates",
    candidates=lambda job: hyperband_rows(job, []),
    results=_results,
    summary=_summary,
    report=_report,
    postfix=_postfix,
    planner=planner,
    row_args=row_args,
    expected_tasks=_n_tasks,
)

"""The asha kind: asynchronous successive halving (ASHA, Li et al. 2020).

Runs on the driver. Rungs as a halving search's iterations (rung k fits
with min_resources x factor^k, up to max_resources), but no rung waits for
its slowest fit: whenever an engine frees up, the planner promotes a
candidate that is in the top 1/factor of the rows finished so far on its
rung (highest rung first), or else starts the next candidate on rung 0, as
Ray Tune's and Optuna's ASHA pruners do. Once every candidate has started
and nothing runs, the best of the highest rung reached goes up until one
row reaches max_resources (a small pool would otherwise stop below it). Not equal to scikit-learn's
halving by design: which candidates go up depends on the order results
arrive in. Its rows are written to rows.jsonl before they run
(`fleetcv.kinds.dynamic`), so a resume finishes them and goes on.
"""

from __future__ import annotations

import math

import numpy as np

from fleetcv.kinds.base import PlanContext, SpecSection
from fleetcv.kinds.dynamic import RowLog, journal_results, row_args, row_mean
from fleetcv.kinds.halving import (
    BEST_IN_LAST_ITERATION,
    first_candidates,
    format_iteration_table,
    iteration_entry,
    resource_row,
    resources,
    subsample_seed,
)
from fleetcv.kinds.search import SEARCH, planned_search
from fleetcv.rundir.results import latest_records
from fleetcv.spec.strategies import parse_halving, resource_check

NAME = "asha"


def rungs(min_resources: int, max_resources: int, factor: float) -> list[int]:
    """The resources of each rung: min_resources x factor^k, up to max_resources."""
    n = 1 + math.floor(math.log(max_resources // min_resources, factor))
    return [min(int(factor**k * min_resources), max_resources) for k in range(n)]


def job_of(spec, split) -> dict:
    """The job of a `search: asha` spec on its folds (what its meta.json holds)."""
    a = spec.settings
    res = resources(spec, split, a)
    settings = {
        **a,
        "n_samples": res["n_samples"],
        "n_splits": res["n_splits"],
        "random_state": subsample_seed(spec),
        "rungs": rungs(res["min_resources"], res["max_resources"], a["factor"]),
    }
    return {
        "kind": NAME,
        "candidates": first_candidates(spec, a, res),
        "return_train_score": spec.return_train_score,
        "metrics": ["score"],
        "ranking": "score",
        "refit": bool(spec.refit),
        "best": BEST_IN_LAST_ITERATION,
        "asha": settings,
    }


class AshaPlanner:
    """Rows of an ASHA search: keeps `parallel` rows in flight (default one per engine)."""

    def __init__(self, job: dict, ctx: PlanContext):
        self.job = job
        self.settings = job["asha"]
        self.n_folds = ctx.n_folds
        self.parallel = self.settings.get("parallel") or ctx.n_engines
        self.log = RowLog(ctx.run_dir)
        self.rows: list[dict] | None = None

    def _row(self, candidate: int, rung: int) -> dict:
        params = self.job["candidates"][candidate]
        n_res = self.settings["rungs"][rung]
        return resource_row(self.settings, params, rung, n_res, candidate=candidate)

    def _next(self, means: list, in_flight: int) -> dict | None:
        """A promotion (highest rung first), else the next new candidate, else None.

        `means` are the rows' mean test scores (None while unfinished).
        """
        top = len(self.settings["rungs"]) - 1
        by_rung: dict[int, list[tuple[float, int]]] = {}
        promoted = set()
        for row, mean in zip(self.rows, means, strict=True):
            rung, cand = row["tags"]["iter"], row["tags"]["candidate"]
            if rung > 0:
                promoted.add((rung - 1, cand))
            if mean is not None:
                by_rung.setdefault(rung, []).append((mean, cand))
        for rung in range(top - 1, -1, -1):
            done = _ranked(by_rung.get(rung, []))
            k = math.floor(len(done) / self.settings["factor"])
            for cand in done[:k]:
                if (rung, cand) not in promoted:
                    return self._row(cand, rung + 1)
        started = {row["tags"]["candidate"] for row in self.rows}
        if len(started) < len(self.job["candidates"]):
            return self._row(len(started), 0)
        if in_flight or any(r["tags"]["iter"] == top for r in self.rows):
            return None
        return self._last_promotion(by_rung, promoted, top)

    def _last_promotion(self, by_rung: dict, promoted: set, top: int) -> dict | None:
        """With every candidate started and nothing in flight, one more to go up.

        Fewer than `factor` rows on a rung promote none by the 1/factor
        rule, so a small pool could end with no fit at max_resources; as
        synchronous halving's last iteration, the best of the highest rung
        reached goes up until one row is on the top rung.
        """
        for rung in range(top - 1, -1, -1):
            for cand in _ranked(by_rung.get(rung, [])):
                if (rung, cand) not in promoted:
                    return self._row(cand, rung + 1)
        return None

    def __call__(self, records) -> list[dict]:
        """Every row so far, with new ones while fewer than `parallel` are in flight."""
        if self.rows is None:
            self.rows = self.log.read()
        latest = latest_records(records)
        means = [row_mean(latest, c, self.n_folds) for c in range(len(self.rows))]
        in_flight = means.count(None)
        while in_flight < self.parallel:
            row = self._next(means, in_flight)
            if row is None:
                break
            self.log.append(row)
            self.rows.append(row)
            means.append(None)
            in_flight += 1
        return self.rows


def _ranked(scored: list[tuple[float, int]]) -> list[int]:
    """Candidates of a rung, best mean first; NaN (failed fits) last; ties by candidate."""
    return [
        cand
        for _, cand in sorted(
            scored, key=lambda mc: (-np.nan_to_num(mc[0], nan=-np.inf), mc[1])
        )
    ]


def _results(job: dict, n_folds: int, records) -> dict:
    return journal_results(job, n_folds, records, ("iter", "n_resources"))


def rung_table(job: dict, results: dict) -> list[dict]:
    """Per rung: its resources, rows begun and finished, and its best mean score."""
    rungs = job["asha"]["rungs"]
    return [iteration_entry(results, rung, n_res) for rung, n_res in enumerate(rungs)]


def _summary(job: dict, results: dict) -> dict:
    out = SEARCH.summary(job, results)
    out["iterations"] = rung_table(job, results)
    return out


def _report(job, results, n_tasks, n_done, status="running", extra=None, top_k=None):
    text = SEARCH.report(job, results, n_tasks, n_done, status, extra, top_k)
    a = job["asha"]
    head = f"ASHA (factor {a['factor']:g}, resource {a['resource']}), rungs:"
    return text + "\n\n" + format_iteration_table(head, rung_table(job, results))


def _expected(job: dict, n_folds: int) -> int:
    """At most: every candidate on rung 0, 1/factor of them on each rung above."""
    n, total = len(job["candidates"]), 0
    for _ in job["asha"]["rungs"]:
        total += n
        n = math.floor(n / job["asha"]["factor"])
    return total * n_folds


ASHA = planned_search(
    name=NAME,
    search=NAME,
    spec=SpecSection(
        section=NAME,
        parse=lambda where, raw, est, rs: parse_halving(where, raw, est, NAME),
        flavour=lambda settings: settings["flavour"],
        check=resource_check(NAME),
        job_of=job_of,
        needs_split=True,
        budget="asha.n_candidates",
    ),
    rows="rows",
    results=_results,
    summary=_summary,
    report=_report,
    postfix=SEARCH.postfix,
    planner=AshaPlanner,
    row_args=row_args,
    expected_tasks=_expected,
)

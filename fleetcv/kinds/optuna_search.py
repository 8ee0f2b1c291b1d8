"""The optuna kind: model-based search through Optuna's ask-and-tell interface.

Runs on the driver (Optuna is a laptop-side package; engines only fit and
score). A trial is a row: its parameters are asked of an Optuna study, its
folds are fleetcv tasks, and once every fold is scored its mean test score
is told back, as Optuna's documented parallel ask-and-tell does. As many
trials are in flight as there are engines (`parallel`), so the engines
stay busy while the sampler learns from what has finished.

The journal stays the source of truth: every trial's row is in rows.jsonl
before its tasks go, every score in the journal. A resumed run rebuilds the
study from them (finished trials added with their values, unfinished ones
asked again with their own parameters, `enqueue_trial`) and asks only the
trials still missing, or, when the spec names an Optuna storage, reopens
that study and tells its running trials their values.
"""

from __future__ import annotations

import math
import uuid

from fleetcv.kinds.base import PlanContext, SpecSection
from fleetcv.kinds.dynamic import RowLog, journal_results, row_args, row_mean
from fleetcv.kinds.search import SEARCH, planned_search
from fleetcv.rundir import results as rs
from fleetcv.rundir.results import latest_records
from fleetcv.spec.strategies import check_one_metric, optuna_space, parse_optuna

NAME = "optuna"


def optuna_job(
    settings: dict, return_train_score: bool = True, refit: bool = True
) -> dict:
    """The job description of an Optuna search (what its meta.json holds).

    Parameters
    ----------
    settings : dict
        n_trials, sampler (a class name of optuna.samplers), sampler_params,
        parallel (trials in flight; None: one per engine), storage (an
        Optuna storage URL or None), study_name, and `space`: each
        parameter's distribution as plain data (`distribution`).
    return_train_score, refit : bool
        As a search's.
    """
    return {
        "kind": NAME,
        "candidates": [],
        "return_train_score": bool(return_train_score),
        "metrics": ["score"],
        "ranking": "score",
        "refit": bool(refit),
        "optuna": dict(settings),
    }


def distribution(desc: dict):
    """An Optuna distribution from its plain description in the job.

    ``{"type": "float", "low", "high", "log"}``, ``{"type": "int", "low",
    "high"}`` (both ends included, as Optuna's) or ``{"type":
    "categorical", "choices"}``.
    """
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    if desc["type"] == "float":
        return FloatDistribution(desc["low"], desc["high"], log=desc.get("log", False))
    if desc["type"] == "int":
        return IntDistribution(desc["low"], desc["high"])
    return CategoricalDistribution(desc["choices"])


def make_sampler(settings: dict, n_rows: int = 0):
    """The spec's sampler: `optuna.samplers.<sampler>(**sampler_params)`.

    A resumed run (`n_rows` trials asked already) seeds it with seed +
    n_rows: the seed's own stream would draw the first trials' parameters
    again, as the run's first driver did.
    """
    import optuna

    params = dict(settings.get("sampler_params", {}))
    if n_rows and params.get("seed") is not None:
        params["seed"] = (params["seed"] + n_rows) % 2**32
    return getattr(optuna.samplers, settings["sampler"])(**params)


class OptunaPlanner:
    """Rows from an Optuna study: asks while fewer than `parallel` trials are in flight.

    Called (by the task runner, lock held) with the journal's records at
    launch and whenever a row has every fold scored; returns every row so
    far (see `fleetcv.kinds.base.Kind.planner`).
    """

    def __init__(self, job: dict, ctx: PlanContext):
        import optuna

        # One line per trial would interleave with the progress bar.
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.settings = job["optuna"]
        self.n_folds = ctx.n_folds
        self.parallel = self.settings.get("parallel") or ctx.n_engines
        self.log = RowLog(ctx.run_dir)
        self.space = {k: distribution(d) for k, d in self.settings["space"].items()}
        self.rows: list[dict] = []
        #: row index -> its trial's number in the study, while not told.
        self.open: dict[int, int] = {}
        self.study = None

    def _open_study(self, records) -> None:
        import optuna
        from optuna.trial import TrialState, create_trial

        storage = self.settings.get("storage")
        self.rows = self.log.read()
        self.study = optuna.create_study(
            direction="maximize",
            sampler=make_sampler(self.settings, len(self.rows)),
            storage=storage,
            study_name=self.settings.get("study_name"),
            load_if_exists=storage is not None,
        )
        latest = latest_records(records)
        stored = {t.number: t for t in self.study.get_trials(deepcopy=False)}
        for c, row in enumerate(self.rows):
            number = row["tags"]["trial"]
            kept = stored.get(number)
            if kept is not None and kept.params == row["params"]:
                if kept.state == TrialState.RUNNING:
                    self.open[c] = number  # told below once its folds are in
                continue
            value = self._value(latest, c)
            if value is not None:
                # Finished before the driver stopped: into the study as it was.
                self.study.add_trial(
                    create_trial(
                        params=row["params"],
                        distributions=self.space,
                        **self._outcome(value),
                    )
                )
            else:
                # Asked, not finished: its own parameters again, under a new
                # trial number (its row and tasks keep theirs).
                self.study.enqueue_trial(row["params"])
                self.open[c] = self.study.ask(self.space).number
        mine = set(self.open.values())
        for t in stored.values():
            if t.state == TrialState.RUNNING and t.number not in mine:
                # Asked of the storage by a driver killed before it wrote the
                # row: never run, and no driver will tell it.
                self.study.tell(t.number, state=TrialState.FAIL)

    def _value(self, latest: dict, c: int) -> float | None:
        """The row's mean test score once every fold has one: what Optuna is told."""
        return row_mean(latest, c, self.n_folds)

    @staticmethod
    def _outcome(value: float) -> dict:
        from optuna.trial import TrialState

        if math.isnan(value):
            return {"state": TrialState.FAIL}
        return {"value": value, "state": TrialState.COMPLETE}

    def __call__(self, records) -> list[dict]:
        """Tell the trials whose folds are all scored, ask new ones; every row so far."""
        if self.study is None:
            self._open_study(records)
        latest = latest_records(records)
        for c, number in list(self.open.items()):
            value = self._value(latest, c)
            if value is None:
                continue
            outcome = self._outcome(value)
            self.study.tell(number, outcome.get("value"), state=outcome["state"])
            del self.open[c]
        while (
            len(self.open) < self.parallel
            and len(self.rows) < self.settings["n_trials"]
        ):
            trial = self.study.ask(self.space)
            row = {
                "params": dict(trial.params),
                "tags": {"trial": len(self.rows)},
            }
            self.log.append(row)
            self.open[len(self.rows)] = trial.number
            self.rows.append(row)
        return self.rows


def _results(job: dict, n_folds: int, records) -> dict:
    return journal_results(job, n_folds, records, ("trial",))


def trials(results: dict) -> list[dict]:
    """Per finished trial, in trial order: its number, score and the best so far."""
    out, best = [], -math.inf
    complete = set(rs.complete_rows(results))
    for i, t in enumerate(results.get("trial") or []):
        if i not in complete:
            continue
        score = results["mean_test_score"][i]
        if score is not None and not math.isnan(score):
            best = max(best, score)
        out.append({"trial": t, "score": score, "best": best})
    return out


def _summary(job: dict, results: dict) -> dict:
    out = SEARCH.summary(job, results)
    out["n_trials"] = job["optuna"]["n_trials"]
    out["trials"] = trials(results)
    return out


def _report(job, results, n_tasks, n_done, status="running", extra=None, top_k=None):
    text = SEARCH.report(job, results, n_tasks, n_done, status, extra, top_k)
    done = trials(results)
    s = job["optuna"]
    line = (
        f"Optuna {s['sampler']}: {len(done)}/{s['n_trials']} trials finished, "
        f"{s.get('parallel') or 'one per engine'} in flight"
    )
    if done and math.isfinite(done[-1]["best"]):
        line += f"; best {done[-1]['best']:.5f}"
    return text + "\n\n" + line


def _postfix(job: dict, results: dict) -> list[str]:
    return [f"trials={len(trials(results))}"] + SEARCH.postfix(job, results)


def job_of(spec, split=None) -> dict:
    """The job of a `search: optuna` spec: its study, named for this run alone."""
    # One study per run: a storage may hold the studies of many runs.
    name = f"fleetcv-{spec.name}-{uuid.uuid4().hex[:8]}"
    return optuna_job(
        {**spec.settings, "study_name": name}, spec.return_train_score, spec.refit
    )


def _check(where: str, settings: dict, params, scoring, refit) -> dict:
    """One metric; the space of `params` as Optuna's distributions (plain data)."""
    check_one_metric(where, NAME, scoring, refit)
    return {**settings, "space": optuna_space(where, params)}


OPTUNA = planned_search(
    name=NAME,
    search=NAME,
    spec=SpecSection(
        section=NAME,
        parse=lambda where, raw, est, rs: parse_optuna(where, raw, rs),
        flavour=lambda settings: "random",
        check=_check,
        job_of=job_of,
        budget="optuna.n_trials",
    ),
    rows="trials",
    results=_results,
    summary=_summary,
    report=_report,
    postfix=_postfix,
    planner=OptunaPlanner,
    row_args=row_args,
    expected_tasks=lambda job, n_folds: job["optuna"]["n_trials"] * n_folds,
)

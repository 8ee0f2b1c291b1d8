"""`search: optuna` on real local engines, checked against Optuna's own sequential study."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import optuna
import pytest
from sklearn.datasets import load_digits
from sklearn.model_selection import KFold, cross_val_score
from sklearn.svm import SVC

from fleetcv import api
from fleetcv.errors import ConfigError
from fleetcv.spec import load_search_spec
from tests.conftest import (
    journal_lines,
    rendered,
    resume,
    rows_finished,
    slow_run_killed,
    write_spec,
)

pytestmark = pytest.mark.cluster

CV = {"kind": "kfold", "n_splits": 3, "random_state": 1}
SPACE = {
    "C": "loguniform(1e-1, 1e2)",
    "gamma": "loguniform(1e-4, 1e-1)",
    "kernel": ["rbf", "sigmoid"],
}


def _spec(n_trials: int, **optuna_settings) -> dict:
    return {
        "estimator": {"class": "sklearn.svm.SVC"},
        "search": "optuna",
        "optuna": {"n_trials": n_trials, **optuna_settings},
        "params": SPACE,
        "data": {"loader": "sklearn.datasets.load_digits"},
        "cv": CV,
    }


def _rows(run_dir) -> list[dict]:
    return [json.loads(x) for x in (run_dir / "rows.jsonl").read_text().splitlines()]


def test_one_trial_in_flight_gives_optunas_own_sequential_trials(
    tmp_path, cluster_hosts_file
):
    spec = _spec(
        10,
        sampler="TPESampler",
        sampler_params={"seed": 7, "n_startup_trials": 4},
        parallel=1,
    )
    path = write_spec(tmp_path, spec, "sequential")
    run_dir = tmp_path / "run"
    job = api.search(
        path, hosts_file=cluster_hosts_file, run_dir=run_dir, progress=False
    )
    assert job.status == "finished", job.report()
    ours = json.loads((run_dir / "results.json").read_text())

    X, y = load_digits(return_X_y=True)
    cv = KFold(3, shuffle=True, random_state=1)

    def objective(trial):
        params = {
            "C": trial.suggest_float("C", 1e-1, 1e2, log=True),
            "gamma": trial.suggest_float("gamma", 1e-4, 1e-1, log=True),
            "kernel": trial.suggest_categorical("kernel", ["rbf", "sigmoid"]),
        }
        return cross_val_score(SVC(**params), X, y, cv=cv).mean()

    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=7, n_startup_trials=4),
    )
    study.optimize(objective, n_trials=10)
    assert ours["trial"] == list(range(10))
    assert ours["params"] == [t.params for t in study.trials]
    np.testing.assert_allclose(
        ours["mean_test_score"], [t.value for t in study.trials], rtol=0, atol=1e-12
    )
    assert ours["best_params"] == study.best_params
    assert [t["trial"] for t in ours["trials"]] == list(range(10))
    assert "Optuna TPESampler: 10/10 trials finished, 1 in flight" in job.report()
    assert (rendered(run_dir) / "trials.png").stat().st_size > 0


def test_several_in_flight_finish_every_trial_once(tmp_path, cluster_hosts_file):
    path = write_spec(tmp_path, {**_spec(9), "random_state": 3}, "parallel")
    run_dir = tmp_path / "run"
    job = api.search(
        path, hosts_file=cluster_hosts_file, run_dir=run_dir, progress=False
    )
    assert job.status == "finished", job.report()
    rows = _rows(run_dir)
    assert [r["tags"]["trial"] for r in rows] == list(range(9))
    pairs = Counter((r["candidate"], r["fold"]) for r in journal_lines(run_dir))
    assert pairs == {(c, k): 1 for c in range(9) for k in range(3)}
    ours = json.loads((run_dir / "results.json").read_text())
    assert ours["params"] == [r["params"] for r in rows] and len(ours["trials"]) == 9
    # The refit model is the best trial's.
    assert (
        ours["best_params"]
        == rows[int(np.nanargmax(ours["mean_test_score"]))]["params"]
    )


def test_a_killed_driver_resumes_without_repeating_a_finished_trial(
    tmp_path, cluster_hosts_file
):
    spec = {**_spec(12), "random_state": 0}
    run_dir = slow_run_killed(tmp_path, spec, cluster_hosts_file, rows_finished(4))
    before = journal_lines(run_dir)
    done_before = {
        c for c, n in Counter(r["candidate"] for r in before).items() if n == 3
    }
    rows_before = _rows(run_dir)
    assert len(done_before) >= 4 and len(rows_before) < 12

    resume(run_dir, cluster_hosts_file)
    rows = _rows(run_dir)
    assert rows[: len(rows_before)] == rows_before
    assert len(rows) == 12
    after = journal_lines(run_dir)
    assert after[: len(before)] == before
    pairs = Counter((r["candidate"], r["fold"]) for r in after)
    assert pairs == {(c, k): 1 for c in range(12) for k in range(3)}
    ours = json.loads((run_dir / "results.json").read_text())
    assert ours["status"] == "finished" and len(ours["params"]) == 12
    assert len({json.dumps(p, sort_keys=True) for p in ours["params"]}) == 12


def test_a_storage_keeps_the_study_and_a_resume_reopens_it(
    tmp_path, cluster_hosts_file
):
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    spec = {**_spec(8, storage=url), "random_state": 1}
    run_dir = slow_run_killed(tmp_path, spec, cluster_hosts_file, rows_finished(3))
    resume(run_dir, cluster_hosts_file)
    meta = json.loads((run_dir / "meta.json").read_text())
    study = optuna.load_study(study_name=meta["optuna"]["study_name"], storage=url)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    ours = json.loads((run_dir / "results.json").read_text())
    # The stored study holds every trial of the run, told once, with its score.
    assert len(complete) == 8 == len(ours["params"])
    by_params = {json.dumps(t.params, sort_keys=True): t.value for t in complete}
    for p, m in zip(ours["params"], ours["mean_test_score"], strict=True):
        assert by_params[json.dumps(p, sort_keys=True)] == pytest.approx(m, abs=1e-12)
    assert not [t for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]


@pytest.mark.parametrize(
    ("section", "params", "match"),
    [
        (
            {"n_trials": 0},
            SPACE,
            r"optuna\.n_trials: expected a positive integer, got 0",
        ),
        (
            {"n_trials": 5, "sampler": "Magic"},
            SPACE,
            r"optuna\.sampler: 'Magic' is not a sampler of optuna\.samplers",
        ),
        (
            {"n_trials": 5, "sampler_params": {"nope": 1}},
            SPACE,
            r"optuna\.sampler_params: optuna\.samplers\.TPESampler\(\*\*\{'nope': 1\}\) raised TypeError",
        ),
        (
            {"n_trials": 5, "parallel": 0},
            SPACE,
            r"optuna\.parallel: expected a positive",
        ),
        (
            {"n_trials": 5, "storage": "db.sqlite"},
            SPACE,
            r"optuna\.storage: expected an Optuna storage URL",
        ),
        (
            {"n_trials": 5},
            {"C": [{"class": "sklearn.svm.SVC"}]},
            r"params\.C: Optuna chooses among numbers",
        ),
        (None, SPACE, r"optuna: missing: an Optuna search needs its number of trials"),
    ],
)
def test_bad_optuna_settings_are_named(tmp_path, section, params, match):
    spec = {**_spec(1), "params": params}
    if section is None:
        del spec["optuna"]
    else:
        spec["optuna"] = section
    with pytest.raises(ConfigError, match=match):
        load_search_spec(write_spec(tmp_path, spec, "bad"))


def test_a_trial_asked_by_a_killed_driver_before_its_row_is_failed_on_resume(tmp_path):
    from fleetcv.kinds.base import PlanContext
    from fleetcv.kinds.optuna_search import OptunaPlanner
    from fleetcv.spec.strategies import optuna_space

    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    space = optuna_space("spec", ({"C": [1, 2, 3]},))
    settings = {
        "n_trials": 2,
        "sampler": "RandomSampler",
        "sampler_params": {"seed": 0},
        "parallel": 1,
        "storage": url,
        "study_name": "s",
        "space": space,
    }
    # The first driver asked a trial of the storage, then died before rows.jsonl.
    optuna.create_study(study_name="s", storage=url, direction="maximize").ask()
    planner = OptunaPlanner(
        {"optuna": settings}, PlanContext(n_folds=3, run_dir=tmp_path)
    )
    rows = planner([])
    study = optuna.load_study(study_name="s", storage=url)
    states = [t.state for t in study.trials]
    assert states[0] == optuna.trial.TrialState.FAIL
    assert states[1:] == [optuna.trial.TrialState.RUNNING] and len(rows) == 1

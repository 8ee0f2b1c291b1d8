"""max_fits and time_budget end any search on real local engines; the report names the budget."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from fleetcv import api
from fleetcv.errors import ConfigError
from fleetcv.spec import load_search_spec
from tests.conftest import SLOW_SVC, journal_lines, write_spec

pytestmark = pytest.mark.cluster

GRID = {
    "estimator": {"class": "sklearn.svm.SVC"},
    "params": {"C": [0.1, 1, 10, 100]},
    "data": {"loader": "sklearn.datasets.load_iris"},
    "cv": {"kind": "kfold", "n_splits": 3, "random_state": 0},
}


def _run(tmp_path, hosts_file, spec, name):
    run_dir = tmp_path / name
    job = api.search(
        write_spec(tmp_path, spec, name),
        hosts_file=hosts_file,
        run_dir=run_dir,
        progress=False,
    )
    return job, run_dir, json.loads((run_dir / "results.json").read_text())


def test_max_fits_runs_whole_candidates_until_the_next_does_not_fit(
    tmp_path, cluster_hosts_file
):
    job, run_dir, res = _run(tmp_path, cluster_hosts_file, {**GRID, "max_fits": 7}, "g")
    assert job.status == "finished" and res["stopped_by"] == "max_fits"
    pairs = Counter((r["candidate"], r["fold"]) for r in journal_lines(run_dir))
    assert pairs == {(c, k): 1 for c in range(2) for k in range(3)}
    assert res["n_finished_splits"] == [3, 3, 0, 0] and res["best_index"] in (0, 1)
    assert (
        "Stopped by its budget: max_fits 7 fits (6 fits journaled)"
        in (run_dir / "report.txt").read_text()
    )


def test_max_fits_ends_a_halving_search_between_iterations(
    tmp_path, cluster_hosts_file
):
    spec = {
        **GRID,
        "search": "halving",
        "random_state": 0,
        "params": {"C": [0.1, 1, 10, 100, 1000], "gamma": [0.01, 0.1]},
        "halving": {"factor": 2, "min_resources": 30},
        "max_fits": 45,
    }
    job, _, res = _run(tmp_path, cluster_hosts_file, spec, "h")
    # 10 candidates x 3 folds, then 5 x 3: the third iteration (3 x 3) is over 45.
    assert res["n_candidates_"] == [10, 5] and res["stopped_by"] == "max_fits"
    assert sum(res["n_finished_splits"]) == 45 and job.status == "finished"


def test_time_budget_cancels_what_is_queued_and_keeps_what_finished(
    tmp_path, cluster_hosts_file
):
    (tmp_path / "slow.py").write_text(SLOW_SVC)
    spec = {
        **GRID,
        "code": ["slow.py"],
        "estimator": {"class": "slow.SlowSVC"},
        "params": {"C": [0.01 * 2**i for i in range(60)]},
        "time_budget": 2,
    }
    job, run_dir, res = _run(tmp_path, cluster_hosts_file, spec, "t")
    assert job.status == "finished" and res["stopped_by"] == "time_budget"
    done = sum(res["n_finished_splits"])
    assert 0 < done < 180
    assert len(journal_lines(run_dir)) == done
    assert (
        "Stopped by its budget: time_budget 2 s" in (run_dir / "report.txt").read_text()
    )


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        ({"max_fits": 0}, r"max_fits: expected a positive integer, got 0"),
        (
            {"time_budget": "1h"},
            r"time_budget: expected a number of seconds > 0, got '1h'",
        ),
    ],
)
def test_bad_budgets_are_named(tmp_path, extra, match):
    with pytest.raises(ConfigError, match=match):
        load_search_spec(write_spec(tmp_path, {**GRID, **extra}, "bad"))

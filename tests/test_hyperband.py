"""`search: hyperband` on real local engines, checked against a sequential Hyperband.

The reference below is Li et al.'s Algorithm 1 written out with
scikit-learn alone (ParameterSampler, cross_validate, and for the n_samples
resource scikit-learn's own halving subsampler), one bracket after the
other: fleetcv runs the brackets side by side on the engines, and must find
the same rows, scores, survivors and best.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.stats import loguniform, randint
from sklearn.base import clone
from sklearn.datasets import load_diabetes, load_digits
from sklearn.ensemble import GradientBoostingRegressor
from sklearn.model_selection import KFold, ParameterSampler, cross_validate
from sklearn.model_selection._search_successive_halving import _SubsampleMetaSplitter
from sklearn.svm import SVC

from fleetcv import api
from fleetcv.errors import ConfigError
from fleetcv.kinds.hyperband import brackets
from fleetcv.spec import load_search_spec
from tests.conftest import (
    journal_lines,
    resume,
    slow_run_killed,
    write_spec,
)

CV = {"kind": "kfold", "n_splits": 3, "random_state": 1}
SVC_SPACE = {"C": "loguniform(1e-1, 1e2)", "gamma": "loguniform(1e-4, 1e-1)"}
SVC_SPEC = {
    "estimator": {"class": "sklearn.svm.SVC"},
    "search": "hyperband",
    "hyperband": {"min_resources": 100},
    "random_state": 4,
    "params": SVC_SPACE,
    "data": {"loader": "sklearn.datasets.load_digits"},
    "cv": CV,
}
GBR_SPACE = {"learning_rate": "loguniform(1e-2, 1)", "max_depth": "randint(1, 5)"}
#: The same spaces as scipy's distributions, for the reference.
SVC_SCIPY = {"C": loguniform(1e-1, 1e2), "gamma": loguniform(1e-4, 1e-1)}
GBR_SCIPY = {"learning_rate": loguniform(1e-2, 1), "max_depth": randint(1, 5)}


def test_brackets_are_the_papers_table_1():
    """R = 81, eta = 3: Table 1 of Li et al. (JMLR 2018), (n_i, r_i) per bracket."""
    table = {
        4: [(81, 1), (27, 3), (9, 9), (3, 27), (1, 81)],
        3: [(34, 3), (11, 9), (3, 27), (1, 81)],
        2: [(15, 9), (5, 27), (1, 81)],
        1: [(8, 27), (2, 81)],
        0: [(5, 81)],
    }
    got = {
        b["s"]: list(zip(b["n_candidates"], b["n_resources"], strict=True))
        for b in brackets(1, 81, 3)
    }
    assert got == table
    # log_3(243) is 4.999... in floating point: still 6 brackets.
    assert [b["s"] for b in brackets(1, 243, 3)] == [5, 4, 3, 2, 1, 0]


def reference_hyperband(est, space, X, y, *, eta, r_min, r_max, resource, seed):
    """Hyperband, sequentially: {(bracket, rung): {params-tuple: mean test score}}, best.

    Written from the paper, not from fleetcv: s_max = floor(log_eta(R)),
    n = ceil((s_max+1)/(s+1) eta^s), rung i fits floor(n / eta^i) candidates
    with R_max eta^(i-s), the best floor(n_i/eta) go on.
    """
    ratio = r_max // r_min
    s_max = max(s for s in range(64) if eta**s <= ratio)
    ns = {s: math.ceil((s_max + 1) / (s + 1) * eta**s) for s in range(s_max, -1, -1)}
    drawn = list(ParameterSampler(space, n_iter=sum(ns.values()), random_state=seed))
    cv = KFold(3, shuffle=True, random_state=1)
    rungs, first, finals = {}, 0, []
    for s in range(s_max, -1, -1):
        keep = drawn[first : first + ns[s]]
        first += ns[s]
        for i in range(s + 1):
            r = max(r_min, int(r_max * eta ** (i - s))) if i < s else r_max
            scores = {}
            for p in keep:
                model = clone(est).set_params(**p)
                splitter = cv
                if resource == "n_samples":
                    sub = _SubsampleMetaSplitter(
                        base_cv=cv,
                        fraction=r / len(y),
                        subsample_test=True,
                        random_state=seed,
                    )
                    splitter = list(sub.split(X, y))
                else:
                    model.set_params(**{resource: r})
                res = cross_validate(model, X, y, cv=splitter, error_score="raise")
                scores[tuple(sorted(p.items()))] = float(np.mean(res["test_score"]))
            rungs[(s, i)] = scores
            ranked = sorted(keep, key=lambda p: -scores[tuple(sorted(p.items()))])
            keep = ranked[: max(1, math.floor(len(keep) / eta))]
        finals += [(m, p) for p, m in scores.items()]
    best = max(finals, key=lambda mp: mp[0])
    return rungs, dict(best[1]), best[0]


def _ours_by_rung(ours: dict, resource: str) -> dict:
    out: dict = {}
    for i, p in enumerate(ours["params"]):
        key = (ours["bracket"][i], ours["iter"][i])
        plain = {k: v for k, v in p.items() if k != resource}
        out.setdefault(key, {})[tuple(sorted(plain.items()))] = ours["mean_test_score"][
            i
        ]
    return out


def _assert_equal_rungs(ours, rungs, best_params, best_score, resource):
    got = _ours_by_rung(ours, resource)
    assert set(got) == set(rungs)
    for key, scores in rungs.items():
        assert set(got[key]) == set(scores), key
        for params, mean in scores.items():
            assert abs(got[key][params] - mean) <= 1e-12, (key, params)
    plain = {k: v for k, v in ours["best_params"].items() if k != resource}
    assert plain == best_params
    assert abs(ours["best_score"] - best_score) <= 1e-12


@pytest.mark.cluster
def test_hyperband_on_rows_equals_a_sequential_hyperband(tmp_path, cluster_hosts_file):
    path = write_spec(tmp_path, SVC_SPEC, "hb-rows")
    run_dir = tmp_path / "run-hb-rows"
    job = api.search(
        path, hosts_file=cluster_hosts_file, run_dir=run_dir, progress=False
    )
    assert job.status == "finished", job.report()
    ours = json.loads((run_dir / "results.json").read_text())
    X, y = load_digits(return_X_y=True)
    rungs, best_params, best_score = reference_hyperband(
        SVC(), SVC_SCIPY, X, y,
        eta=3, r_min=100, r_max=1797, resource="n_samples", seed=4,
    )  # fmt: skip
    _assert_equal_rungs(ours, rungs, best_params, best_score, "n_samples")
    # Three brackets (ratio 17: s_max 2): 9 -> 3 -> 1, 5 -> 1, and 3.
    assert sorted((s, i, len(v)) for (s, i), v in rungs.items()) == [
        (0, 0, 3), (1, 0, 5), (1, 1, 1), (2, 0, 9), (2, 1, 3), (2, 2, 1),
    ]  # fmt: skip
    assert [b["n_models"] for b in ours["metadata"]["brackets"]] == [9, 5, 3]
    text = job.report()
    assert "Hyperband (factor 3, resource n_samples, 3 brackets)" in text
    assert "b2r2" in text
    # The refit model is the best's, on every row.
    assert (run_dir / "best_estimator.joblib").exists()


@pytest.mark.cluster
def test_hyperband_on_n_estimators_equals_a_sequential_hyperband(
    tmp_path, cluster_hosts_file
):
    spec = {
        "estimator": {
            "class": "sklearn.ensemble.GradientBoostingRegressor",
            "params": {"random_state": 0},
        },
        "search": "hyperband",
        "hyperband": {"resource": "n_estimators", "max_resources": 27},
        "random_state": 7,
        "params": GBR_SPACE,
        "data": {"loader": "sklearn.datasets.load_diabetes"},
        "cv": CV,
    }
    path = write_spec(tmp_path, spec, "hb-trees")
    run_dir = tmp_path / "run-hb-trees"
    job = api.search(
        path, hosts_file=cluster_hosts_file, run_dir=run_dir, progress=False
    )
    assert job.status == "finished", job.report()
    ours = json.loads((run_dir / "results.json").read_text())
    X, y = load_diabetes(return_X_y=True)
    rungs, best_params, best_score = reference_hyperband(
        GradientBoostingRegressor(random_state=0), GBR_SCIPY, X, y,
        eta=3, r_min=1, r_max=27, resource="n_estimators", seed=7,
    )  # fmt: skip
    _assert_equal_rungs(ours, rungs, best_params, best_score, "n_estimators")
    assert len(ours["metadata"]["brackets"]) == 4  # 27 = 3^3: s = 3..0
    # Each row was fitted with its rung's n_estimators.
    by_rung = {
        (s, i): n
        for b in ours["metadata"]["brackets"]
        for s in [b["bracket"]]
        for i, n in enumerate(b["n_resources"])
    }
    for i, p in enumerate(ours["params"]):
        assert p["n_estimators"] == by_rung[(ours["bracket"][i], ours["iter"][i])]


@pytest.mark.cluster
def test_hyperband_killed_mid_run_resumes_to_the_same_results(
    tmp_path, cluster_hosts_file
):
    """The driver SIGKILLed once bracket 2's second rung runs; the resumed run
    equals an uninterrupted one, every (row, fold) once."""

    def second_rung_begun(records):
        return any(r.get("row", {}).get("iter") == 1 for r in records)

    run_dir = slow_run_killed(tmp_path, SVC_SPEC, cluster_hosts_file, second_rung_begun)
    before = journal_lines(run_dir)
    assert any(r["row"]["iter"] == 1 for r in before)
    resume(run_dir, cluster_hosts_file)
    ours = json.loads((run_dir / "results.json").read_text())
    assert ours["status"] == "finished"
    records = journal_lines(run_dir)
    pairs = [(r["candidate"], r["fold"]) for r in records]
    assert len(pairs) == len(set(pairs)) == 3 * len(ours["params"])
    X, y = load_digits(return_X_y=True)
    rungs, best_params, best_score = reference_hyperband(
        SVC(), SVC_SCIPY, X, y,
        eta=3, r_min=100, r_max=1797, resource="n_samples", seed=4,
    )  # fmt: skip
    _assert_equal_rungs(ours, rungs, best_params, best_score, "n_samples")


def _spec(tmp_path, **changes) -> str:
    spec = {**SVC_SPEC, **changes}
    return str(
        write_spec(tmp_path, {k: v for k, v in spec.items() if v is not None}, "s")
    )


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        (
            {"hyperband": {"resource": "C"}},
            r"hyperband\.max_resources: auto means all the rows, which resource C is not",
        ),
        ({"hyperband": {"eta": 3}}, r"hyperband\.eta"),
        (
            {"hyperband": {"factor": 1}},
            r"hyperband\.factor: expected a number greater than 1",
        ),
        ({"n_iter": 5}, r"n_iter: a hyperband search draws hyperband\.max_resources"),
        (
            {"search": "grid"},
            r"hyperband: settings of a hyperband search in a search: grid spec",
        ),
        (
            {"hyperband": {"resource": "C", "max_resources": 10}},
            r"params\.C: C is the halving resource",
        ),
        ({"scoring": ["accuracy", "f1_macro"]}, r"scoring: a hyperband search keeps"),
    ],
)
def test_bad_hyperband_specs_are_refused(tmp_path, changes, match):
    with pytest.raises(ConfigError, match=match):
        load_search_spec(_spec(tmp_path, **changes))


@pytest.mark.cluster
def test_a_grid_too_small_for_the_brackets_is_refused(tmp_path, cluster_hosts_file):
    path = _spec(tmp_path, params={"C": [1, 10], "gamma": [0.001, 0.01]})
    with pytest.raises(ConfigError, match=r"params: Hyperband's 3 brackets start 17"):
        api.search(
            path, hosts_file=cluster_hosts_file, run_dir=tmp_path / "r", progress=False
        )
    assert not (tmp_path / "r" / "results.json").exists()

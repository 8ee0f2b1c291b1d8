"""Learning and validation curves: parsing (unit) and real engines checked against scikit-learn."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
import yaml
from invoke import Context, Exit
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.datasets import load_digits
from sklearn.model_selection import (
    ShuffleSplit,
    learning_curve,
    validation_curve,
)
from sklearn.model_selection._validation import _translate_train_sizes
from sklearn.svm import SVC

import tasks
from fleetcv.dispatch import cluster as cl
from fleetcv.dispatch import curves as curve_jobs
from fleetcv.kinds import curve_flags, curves
from fleetcv.rundir import journal as jn
from fleetcv.spec import ConfigError, load_data, load_search_spec
from runtime.folds import persist_splits
from runtime.worker import evaluate
from tests.conftest import rendered

#: Curves compare to scikit-learn to this absolute tolerance.
ATOL = 1e-12
SIZES = [0.1, 0.325, 0.55, 0.775, 1.0]


def _spec_file(tmp_path, **over) -> str:
    spec = {
        "name": "digits4",
        "estimator": {"class": "sklearn.svm.SVC"},
        "params": {"C": [0.1, 1.0, 10.0], "gamma": [0.001]},
        "data": {
            "loader": "sklearn.datasets.load_digits",
            "loader_params": {"n_class": 4},
        },
        "cv": {"n_splits": 3, "test_size": 0.25, "random_state": 0},
        **over,
    }
    path = tmp_path / "digits4.yml"
    path.write_text(yaml.safe_dump(spec))
    return str(path)


def _finished_search(runs_root, spec, best: dict):
    """A finished search run of `spec` as `invoke search` leaves it (the parts curves read)."""
    d = runs_root / "digits4-20260101-000000"
    d.mkdir(parents=True)
    jn.write_json(
        d / jn.META,
        {
            "spec_digest": spec.digest(),
            "status": "finished",
            "candidates": spec.candidates(),
            "n_folds": 3,
        },
    )
    jn.write_json(d / jn.RESULTS, {"best_params": best, "status": "finished"})
    return d


# ---------------------------------------------------------------- unit level


@pytest.mark.parametrize(
    "sizes,n_max",
    [
        (SIZES, 403),
        ([0.5, 1.0], 10),
        ([0.01, 0.02, 1.0], 50),  # both round to 1 sample: deduplicated
        ([5, 10], 10),
        ([1, 3, 3, 7], 7),
    ],
)
def test_train_sizes_translate_as_sklearn_does(sizes, n_max):
    with warnings.catch_warnings():
        # sklearn warns when it drops duplicates; the result is what counts.
        warnings.simplefilter("ignore", RuntimeWarning)
        theirs = _translate_train_sizes(np.asarray(sizes), n_max).tolist()
    assert curve_flags.translate_train_sizes(sizes, n_max) == theirs


def test_train_sizes_out_of_range_are_refused():
    with pytest.raises(
        ConfigError, match=r"--train-sizes: fractions must be within \(0, 1\]"
    ):
        curve_flags.translate_train_sizes([0.5, 1.5], 100)
    with pytest.raises(
        ConfigError, match=r"--train-sizes: counts must be within \[1, 100\]"
    ):
        curve_flags.translate_train_sizes([50, 200], 100)


def test_parse_train_sizes_reads_fractions_and_counts():
    assert curve_flags.parse_train_sizes("0.1, 0.5,1") == [0.1, 0.5, 1.0]
    assert curve_flags.parse_train_sizes("50,100") == [50, 100]
    with pytest.raises(ConfigError, match=r"--train-sizes: 'ten' is not a number"):
        curve_flags.parse_train_sizes("0.1,ten")
    with pytest.raises(ConfigError, match="--train-sizes: empty"):
        curve_flags.parse_train_sizes(" , ")


def test_parse_param_range_reads_json_and_numpy_expressions():
    assert (
        curve_flags.parse_param_range("logspace(-2, 1, 4)")
        == np.logspace(-2, 1, 4).tolist()
    )
    assert curve_flags.parse_param_range('["rbf", "linear"]') == ["rbf", "linear"]
    assert curve_flags.parse_param_range("[0.1, 1, 10]") == [0.1, 1, 10]
    with pytest.raises(
        ConfigError, match=r"--range: 'exp\(3\)' is neither a JSON list"
    ):
        curve_flags.parse_param_range("exp(3)")
    with pytest.raises(ConfigError, match=r"--range: '\[\]' gives no values"):
        curve_flags.parse_param_range("[]")


def test_params_come_from_json_or_the_best_of_a_finished_search(tmp_path):
    spec = load_search_spec(_spec_file(tmp_path))
    assert curve_flags.resolve_params(None, spec) == {}
    assert curve_flags.resolve_params('{"C": 3.0}', spec) == {"C": 3.0}
    with pytest.raises(
        ConfigError, match=r"--params: the estimator of .* has no parameter 'Cee'"
    ):
        curve_flags.resolve_params('{"Cee": 3.0}', spec)
    with pytest.raises(ConfigError, match="--params: expected a JSON object"):
        curve_flags.resolve_params("[1]", spec)
    runs = tmp_path / "runs"
    with pytest.raises(
        ConfigError,
        match="--params best: no finished search of .* Fix: run `invoke search",
    ):
        curve_flags.resolve_params("best", spec, runs_root=runs, log=lambda m: None)
    run = _finished_search(runs, spec, {"C": 10.0, "gamma": 0.001})
    seen = []
    assert curve_flags.resolve_params(
        "best", spec, runs_root=runs, log=seen.append
    ) == {
        "C": 10.0,
        "gamma": 0.001,
    }
    assert str(run) in seen[0]
    assert curve_flags.resolve_params("best", spec, from_run=run, log=seen.append) == {
        "C": 10.0,
        "gamma": 0.001,
    }


def test_validation_range_defaults_to_the_spec_grid(tmp_path):
    spec = load_search_spec(_spec_file(tmp_path))
    assert curve_flags.default_param_range(spec, "C") == [0.1, 1.0, 10.0]
    with pytest.raises(
        ConfigError, match="--range: .* has no list of values for 'tol'"
    ):
        curve_flags.default_param_range(spec, "tol")


def test_curve_results_leave_unfinished_splits_out():
    d = curves.learning_definition([10, 20], {"C": 1.0})
    recs = [
        {
            "candidate": 0,
            "fold": 0,
            "status": "ok",
            "test_score": 0.5,
            "train_score": 1.0,
            "fit_time": 1.0,
            "score_time": 0.1,
        },
        {
            "candidate": 0,
            "fold": 1,
            "status": "ok",
            "test_score": 0.7,
            "train_score": 0.9,
            "fit_time": 3.0,
            "score_time": 0.1,
        },
        {"candidate": 1, "fold": 0, "status": "error", "error": "lost"},
    ]
    out = curves.curve_results(d, 2, recs)
    assert out["train_sizes_abs"] == [10, 20] and out["params"] == {"C": 1.0}
    assert out["test_scores"] == [[0.5, 0.7], [None, None]]
    assert out["test_scores_mean"][0] == pytest.approx(0.6)
    assert out["test_scores_std"][0] == pytest.approx(0.1)
    assert math.isnan(out["test_scores_mean"][1])
    assert out["n_finished_splits"] == [2, 0]
    text = curves.format_curve_report(out, 4, 2)
    assert text.startswith("Progress: 50% (002/004)")
    assert "        10  0.60000 (+/-0.10000)  0.95000 (+/-0.05000)" in text


class _RecordingEstimator(BaseEstimator, ClassifierMixin):
    """Notes what `fit` was given: the property learning curves rely on."""

    seen: list = []

    def fit(self, X, y):
        _RecordingEstimator.seen.append(
            (len(X), isinstance(X, np.memmap), X.flags.owndata)
        )
        self.classes_ = np.unique(y)
        return self

    def score(self, X, y):
        return 0.5


def test_worker_fits_on_the_first_k_rows_of_the_memmapped_fold_without_a_copy(
    tmp_path,
):
    X, y = load_digits(return_X_y=True)
    cv = ShuffleSplit(n_splits=1, test_size=0.25, random_state=0)
    split = persist_splits(X[:200], y[:200], cv, {"t": "view"}, tmp_path)
    _RecordingEstimator.seen.clear()
    rec = evaluate(
        fold_ref=str(split.fold_path(0)),
        estimator=_RecordingEstimator(),
        params={},
        train_size=37,
    )
    assert rec["n_train"] == 37 and rec["status"] == "ok"
    # A slice of the read-only memmap: a view sharing the page cache.
    assert _RecordingEstimator.seen == [(37, True, False)]


def test_validation_task_without_param_exits_2():
    with pytest.raises(Exit, match="--param: which parameter to sweep") as e:
        tasks.curves_validation(Context())
    assert e.value.code == 2


# ------------------------------------------------------------ local cluster


@pytest.fixture(scope="module")
def digits_split(local_cluster):
    """600 digits, 3 shuffled folds persisted in the cluster's workdir."""
    cfg, _ = local_cluster
    X, y = load_digits(return_X_y=True)
    X, y = X[:600], y[:600]
    cv = ShuffleSplit(n_splits=3, test_size=0.25, random_state=0)
    split = persist_splits(X, y, cv, {"test": "curves"}, cfg.local_host.workdir_path)
    return X, y, cv, split


@pytest.mark.cluster
def test_learning_curve_equals_sklearn(local_cluster, digits_split, tmp_path):
    _, client = local_cluster
    X, y, cv, split = digits_split
    est = SVC(gamma=0.001)
    sizes_abs = curve_flags.translate_train_sizes(
        SIZES, curve_flags.max_train_size(split)
    )
    lc = curve_jobs.LearningCurve(
        client.load_balanced_view(), est, sizes_abs, {"C": 10.0}, run_dir=tmp_path
    )
    lc.launch(split).wait()
    sizes, train, test, fit_times, _ = learning_curve(
        SVC(gamma=0.001, C=10.0),
        X,
        y,
        cv=cv,
        train_sizes=SIZES,
        shuffle=False,
        return_times=True,
    )
    ours = json.loads((tmp_path / jn.RESULTS).read_text())
    assert ours["kind"] == "learning_curve" and ours["status"] == "finished"
    assert ours["train_sizes_abs"] == sizes.tolist() == sizes_abs
    np.testing.assert_allclose(ours["train_scores"], train, rtol=0, atol=ATOL)
    np.testing.assert_allclose(ours["test_scores"], test, rtol=0, atol=ATOL)
    np.testing.assert_allclose(
        ours["test_scores_mean"], test.mean(axis=1), rtol=0, atol=ATOL
    )
    np.testing.assert_allclose(
        ours["train_scores_std"], train.std(axis=1), rtol=0, atol=ATOL
    )
    assert np.shape(ours["fit_times"]) == fit_times.shape
    # One journal record per (size, fold), each fitted on exactly k rows.
    recs = jn.read_journal(tmp_path / jn.JOURNAL)
    assert len(recs) == len(sizes_abs) * 3
    assert all(r["n_train"] == sizes_abs[r["candidate"]] for r in recs)
    assert all(r["params"] == {"C": 10.0} for r in recs)
    report = (tmp_path / jn.REPORT).read_text()
    assert report.startswith("Finished: 100% (015/015)")
    assert f" {sizes_abs[-1]}  {ours['test_scores_mean'][-1]:.5f}" in report


@pytest.mark.cluster
def test_validation_curve_equals_sklearn(local_cluster, digits_split, tmp_path):
    _, client = local_cluster
    X, y, cv, split = digits_split
    c_range = np.logspace(-2, 1, 4).tolist()
    vc = curve_jobs.ValidationCurve(
        client.load_balanced_view(),
        SVC(),
        "C",
        c_range,
        {"gamma": 0.001, "C": 99.0},  # a fixed C is overridden by the sweep
        run_dir=tmp_path,
    )
    vc.launch(split).wait()
    train, test = validation_curve(
        SVC(gamma=0.001), X, y, param_name="C", param_range=c_range, cv=cv
    )
    ours = json.loads((tmp_path / jn.RESULTS).read_text())
    assert ours["kind"] == "validation_curve"
    assert ours["param_name"] == "C" and ours["param_range"] == c_range
    assert ours["params"] == {"gamma": 0.001}
    np.testing.assert_allclose(ours["train_scores"], train, rtol=0, atol=ATOL)
    np.testing.assert_allclose(ours["test_scores"], test, rtol=0, atol=ATOL)
    assert {r["params"]["C"] for r in jn.read_journal(tmp_path / jn.JOURNAL)} == set(
        c_range
    )


@pytest.mark.cluster
def test_learning_curve_resumes_from_its_journal(local_cluster, digits_split, tmp_path):
    _, client = local_cluster
    _, _, _, split = digits_split
    view = client.load_balanced_view()
    sizes_abs = curve_flags.translate_train_sizes(
        [0.2, 0.6, 1.0], curve_flags.max_train_size(split)
    )
    first = curve_jobs.LearningCurve(
        view, SVC(gamma=0.001), sizes_abs, run_dir=tmp_path
    )
    first.launch(split).wait()
    full = first.curve_
    # A driver killed after 4 of the 9 fits: only those reached the journal.
    lines = (tmp_path / jn.JOURNAL).read_text().splitlines(keepends=True)
    (tmp_path / jn.JOURNAL).write_text("".join(lines[:4]) + '{"candidate": 2, "fo')
    again = curve_jobs.LearningCurve(
        view, SVC(gamma=0.001), sizes_abs, run_dir=tmp_path
    )
    assert again.n_done == 4
    again.launch(split).wait()
    assert again.n_done == 9 and again.status == "finished"
    assert len(jn.read_journal(tmp_path / jn.JOURNAL)) == 9
    assert again.curve_["test_scores"] == full["test_scores"]


def _hosts_file(cfg, tmp_path) -> str:
    """A hosts file naming the session cluster, so tasks find it running."""
    local = cfg.local_host
    data = {
        "controller": {
            "ip": cfg.controller.ip,
            "ports": list(cfg.controller.ports),
            "state_dir": cfg.controller.state_dir,
        },
        "hosts": [
            {
                "name": local.name,
                "local": True,
                "engines": local.engines,
                "workdir": local.workdir,
            }
        ],
    }
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


@pytest.mark.cluster
def test_curve_tasks_run_on_a_running_cluster_and_write_plots_and_report(
    local_cluster, tmp_path, capsys
):
    cfg, _ = local_cluster
    hosts = _hosts_file(cfg, tmp_path)
    spec_file = _spec_file(tmp_path)
    spec = load_search_spec(spec_file)
    runs = tmp_path / "runs"
    _finished_search(runs, spec, {"C": 10.0, "gamma": 0.001})

    tasks.curves_learning(
        Context(),
        spec=spec_file,
        train_sizes="0.2,0.6,1.0",
        params="best",
        run_dir=str(runs / "lc"),
        runs_root=str(runs),
        no_progress=True,
        hosts_file=hosts,
    )
    X, y = load_data(spec)
    sizes, train, test = learning_curve(
        SVC(C=10.0, gamma=0.001),
        X,
        y,
        cv=spec.cv.splitter(),
        train_sizes=[0.2, 0.6, 1.0],
        shuffle=False,
    )
    lc = json.loads((runs / "lc" / jn.RESULTS).read_text())
    assert lc["train_sizes_abs"] == sizes.tolist() and lc["params"] == {
        "C": 10.0,
        "gamma": 0.001,
    }
    np.testing.assert_allclose(lc["test_scores"], test, rtol=0, atol=ATOL)
    np.testing.assert_allclose(lc["train_scores"], train, rtol=0, atol=ATOL)
    meta = json.loads((runs / "lc" / jn.META).read_text())
    assert meta["kind"] == "learning_curve" and meta["curve"]["train_sizes"] == [
        0.2,
        0.6,
        1.0,
    ]
    rendered(runs / "lc")
    for name in ("learning_curve.png", "memory.png", "report.html", "spec.yml"):
        assert (runs / "lc" / name).is_file(), name

    # Validation: the range defaults to the spec's grid for C.
    tasks.curves_validation(
        Context(),
        param="C",
        spec=spec_file,
        params='{"gamma": 0.001}',
        run_dir=str(runs / "vc"),
        no_progress=True,
        hosts_file=hosts,
    )
    train, test = validation_curve(
        SVC(gamma=0.001),
        X,
        y,
        param_name="C",
        param_range=[0.1, 1.0, 10.0],
        cv=spec.cv.splitter(),
    )
    vc = json.loads((runs / "vc" / jn.RESULTS).read_text())
    assert vc["param_range"] == [0.1, 1.0, 10.0]
    np.testing.assert_allclose(vc["test_scores"], test, rtol=0, atol=ATOL)
    assert (rendered(runs / "vc") / "validation_curve.png").is_file()
    html = (runs / "vc" / "report.html").read_text()
    assert "Validation curve of C" in html and "data:image/png;base64," in html

    # A cluster the tasks did not start is left running.
    assert cl.is_running(cfg)
    out = capsys.readouterr().out
    assert "Finished: 100% (009/009)" in out and "wrote " in out

    # Resume of a finished curve: nothing to do, same numbers.
    tasks.curves_learning(
        Context(), resume=str(runs / "vc"), no_progress=True, hosts_file=hosts
    )
    assert (
        json.loads((runs / "vc" / jn.RESULTS).read_text())["test_scores"]
        == vc["test_scores"]
    )
    assert len(jn.read_journal(runs / "vc" / jn.JOURNAL)) == 9

    with pytest.raises(
        Exit, match="--run-dir: .* already exists and is not empty"
    ) as e:
        tasks.curves_learning(
            Context(), spec=spec_file, run_dir=str(runs / "lc"), hosts_file=hosts
        )
    assert e.value.code == 2

"""A real user's problem end to end on real local engines, checked against scikit-learn.

Data frames with strings, categoricals and NaN through a ColumnTransformer,
HistGradientBoosting on NaN, group and time-ordered CV, sample weights,
several metrics with a custom scorer, a choice of estimators with per-choice
grids, sparse TF-IDF features and raw text. Each search runs through the
same lifecycle as `invoke search` (fleetcv.api) on the session's cluster,
and is compared with GridSearchCV on the same inputs: every shared key of
`cv_results_` to 1e-12, ranks, best params, and the predictions of the
refit model.
"""

from __future__ import annotations

import json
import os

import joblib
import numpy as np
import pytest
import yaml
from sklearn.model_selection import GridSearchCV

from fleetcv import api
from fleetcv.dispatch.refit import BEST_ESTIMATOR
from fleetcv.rundir import journal as jn
from fleetcv.spec import load_dataset, load_search_spec
from tests.datasets import CHURN_CSV
from tests.reference import (
    CAT,
    CHURN_DATA,
    LOGREG,
    NUM,
    PREP,
    STRATIFIED,
    assert_equals_reference,
    reference,
)

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def hosts_file(cluster_hosts_file):
    """A hosts file naming the session's running cluster (so runs reuse it)."""
    return cluster_hosts_file


def run_spec(tmp_path, hosts_file, spec: dict, name="spec"):
    """Write `spec`, run it as `invoke search` does; (spec, job, run_dir)."""
    path = tmp_path / f"{name}.yml"
    path.write_text(yaml.safe_dump({"name": name, **spec}, sort_keys=False))
    run_dir = tmp_path / f"run-{name}"
    job = api.search(path, hosts_file=hosts_file, run_dir=run_dir, progress=False)
    assert job.status == "finished", job.report()
    return load_search_spec(path), job, run_dir


def test_frame_with_strings_categories_and_nan_through_a_column_transformer(
    tmp_path, hosts_file
):
    spec, job, run_dir = run_spec(
        tmp_path,
        hosts_file,
        {
            "estimator": {"pipeline": [PREP, LOGREG]},
            "params": {
                "clf__C": [0.1, 1.0],
                "prep__num__impute__strategy": ["mean", "median"],
            },
            "data": CHURN_DATA,
            "cv": STRATIFIED,
            "scoring": "accuracy",
        },
    )
    data = load_dataset(spec)
    # What reached the estimator: the table itself, names, dtypes and NaN kept.
    assert set(NUM + CAT) <= set(data.X.columns)
    assert str(data.X["plan"].dtype) == "category" and data.X.isna().to_numpy().any()
    manifest = json.loads((job.split.path / "manifest.json").read_text())
    assert (
        manifest["X_kind"] == "frame"
        and 0 < manifest["shared_bytes"] < manifest["nbytes"]
    )
    assert_equals_reference(spec, run_dir, reference(spec), data.X)


def test_hist_gradient_boosting_takes_nan_without_an_imputer(tmp_path, hosts_file):
    spec, _, run_dir = run_spec(
        tmp_path,
        hosts_file,
        {
            "estimator": {
                "class": "sklearn.ensemble.HistGradientBoostingClassifier",
                "params": {"max_iter": 20, "random_state": 0},
            },
            "params": {"learning_rate": [0.1, 0.3]},
            "data": {"loader": "tests.datasets.churn_numeric_frame"},
            "cv": {"kind": "kfold", "n_splits": 3},
        },
    )
    data = load_dataset(spec)
    assert data.X.isna().to_numpy().sum() > 100
    assert_equals_reference(spec, run_dir, reference(spec), data.X)


def test_group_kfold_on_a_group_column_and_sample_weight(tmp_path, hosts_file):
    spec, job, run_dir = run_spec(
        tmp_path,
        hosts_file,
        {
            "estimator": {"pipeline": [PREP, LOGREG]},
            "params": {"clf__C": [0.1, 1.0]},
            "data": {**CHURN_DATA, "groups": "account"},
            "fit_params": {"clf__sample_weight": {"column": "weight"}},
            "cv": {
                "class": "sklearn.model_selection.GroupKFold",
                "params": {"n_splits": 3},
            },
        },
    )
    data = load_dataset(spec)
    # The group and weight columns are labels, not features.
    assert "account" not in data.X.columns and "weight" not in data.X.columns
    accounts = data.groups
    for train, test in spec.cv.splitter().split(data.X, data.y, accounts):
        assert not set(accounts[train]) & set(accounts[test])
    grid = reference(spec)
    assert_equals_reference(spec, run_dir, grid, data.X)
    # The weights changed the fits: without them the scores differ.
    unweighted = GridSearchCV(
        spec.estimator.build(), {"clf__C": [0.1, 1.0]}, cv=spec.cv.splitter()
    ).fit(data.X, data.y, groups=accounts)
    assert not np.allclose(
        unweighted.cv_results_["mean_test_score"], grid.cv_results_["mean_test_score"]
    )


def test_several_metrics_refit_on_the_second_and_custom_scorers(tmp_path, hosts_file):
    from sklearn.metrics import fbeta_score, make_scorer

    from tests.datasets import cost_scorer

    scoring = {
        "accuracy": "accuracy",
        "f1_macro": "f1_macro",
        "neg_log_loss": "neg_log_loss",
        "cost": "tests.datasets.cost_scorer",
        "f2": {"metric": "sklearn.metrics.fbeta_score", "params": {"beta": 2}},
    }
    spec, job, run_dir = run_spec(
        tmp_path,
        hosts_file,
        {
            "estimator": {"pipeline": [PREP, LOGREG]},
            "params": {"clf__C": [0.01, 0.1, 1.0]},
            "data": CHURN_DATA,
            "cv": STRATIFIED,
            "scoring": scoring,
            "refit": "f1_macro",
        },
    )
    sk_scoring = {
        "accuracy": "accuracy",
        "f1_macro": "f1_macro",
        "neg_log_loss": "neg_log_loss",
        "cost": cost_scorer,
        "f2": make_scorer(fbeta_score, beta=2),
    }
    grid = reference(spec, scoring=sk_scoring, refit="f1_macro")
    ours = assert_equals_reference(spec, run_dir, grid, load_dataset(spec).X)
    for name in scoring:
        assert f"mean_test_{name}" in ours and f"rank_test_{name}" in ours
    assert "mean_test_score" not in ours  # scikit-learn's multi-metric names only
    report = (run_dir / jn.REPORT).read_text()
    assert "Ranked by f1_macro; also accuracy, neg_log_loss, cost, f2:" in report
    assert (
        job.best_index_ == grid.best_index_
        and job.best_params_["clf__C"] == grid.best_params_["clf__C"]
    )


def test_a_choice_of_estimators_with_their_own_grids(tmp_path, hosts_file):
    spec, job, run_dir = run_spec(
        tmp_path,
        hosts_file,
        {
            "estimator": {"pipeline": [PREP, LOGREG]},
            "params": [
                {
                    "clf": [
                        {
                            "class": "sklearn.linear_model.LogisticRegression",
                            "params": {"max_iter": 1000},
                        }
                    ],
                    "clf__C": [0.1, 1.0],
                },
                {
                    "clf": [
                        {
                            "class": "sklearn.ensemble.RandomForestClassifier",
                            "params": {"n_estimators": 20, "random_state": 0},
                        }
                    ],
                    "clf__max_depth": [3, 6],
                },
            ],
            "data": CHURN_DATA,
            "cv": STRATIFIED,
        },
    )
    ours = assert_equals_reference(spec, run_dir, reference(spec), load_dataset(spec).X)
    # The journal and results name an estimator value readably.
    assert ours["param_clf"][0] == {
        "class": "sklearn.linear_model.LogisticRegression",
        "params": {"max_iter": 1000},
    }
    assert (
        "'clf': RandomForestClassifier(n_estimators=20, random_state=0)"
        in job.report(top_k=4)
    )


def test_sparse_tfidf_features_from_an_npz_file(tmp_path, hosts_file):
    import scipy.sparse
    from sklearn.feature_extraction.text import TfidfVectorizer

    from tests.datasets import texts

    docs, y = texts()
    X = TfidfVectorizer().fit_transform(docs).tocsr()
    scipy.sparse.save_npz(tmp_path / "X.npz", X)
    np.save(tmp_path / "y.npy", y)
    spec, job, run_dir = run_spec(
        tmp_path,
        hosts_file,
        {
            "estimator": {
                "class": "sklearn.svm.SVC",
                "params": {"kernel": "linear"},
            },
            "params": {"C": [0.1, 1.0, 10.0]},
            "data": {"path": "X.npz", "target_path": "y.npy"},
            "cv": {"kind": "kfold", "n_splits": 3, "random_state": 0},
        },
    )
    data = load_dataset(spec)
    assert scipy.sparse.issparse(data.X) and data.X.nnz == X.nnz
    manifest = json.loads((job.split.path / "manifest.json").read_text())
    assert (
        manifest["X_kind"] == "sparse"
        and manifest["shared_bytes"] == manifest["nbytes"]
    )
    fold = joblib.load(job.split.fold_path(0), mmap_mode="r")
    assert scipy.sparse.issparse(fold[0]) and isinstance(fold[0].data, np.memmap)
    assert_equals_reference(spec, run_dir, reference(spec), X)


def test_raw_text_through_a_tfidf_pipeline(tmp_path, hosts_file):
    from tests.datasets import texts

    spec, _, run_dir = run_spec(
        tmp_path,
        hosts_file,
        {
            "estimator": {
                "pipeline": [
                    {
                        "name": "tfidf",
                        "class": "sklearn.feature_extraction.text.TfidfVectorizer",
                    },
                    {"name": "clf", "class": "sklearn.linear_model.LogisticRegression"},
                ]
            },
            # YAML has no tuples: a list stands for one where sklearn wants it.
            "params": {"tfidf__ngram_range": [[1, 1], [1, 2]], "clf__C": [0.1, 10.0]},
            "data": {"loader": "tests.datasets.texts"},
            "cv": {
                "kind": "kfold",
                "n_splits": 3,
                "random_state": 1,
                "stratified": True,
            },
            "scoring": "roc_auc",
        },
    )
    docs, _ = texts()
    grid = {"tfidf__ngram_range": [(1, 1), (1, 2)], "clf__C": [0.1, 10.0]}
    assert_equals_reference(spec, run_dir, reference(spec, grid=grid), docs)


def test_sparse_input_into_a_dense_only_step_is_refused_before_anything_starts(
    tmp_path,
):
    import scipy.sparse

    from fleetcv.errors import ConfigError

    scipy.sparse.save_npz(
        tmp_path / "X.npz",
        scipy.sparse.random(40, 5, density=0.3, format="csr", random_state=0),
    )
    np.save(tmp_path / "y.npy", np.arange(40) % 2)
    path = tmp_path / "s.yml"
    path.write_text(
        yaml.safe_dump(
            {
                "estimator": {
                    "pipeline": [
                        {
                            "name": "scale",
                            "class": "sklearn.preprocessing.StandardScaler",
                        },
                        {"name": "svc", "class": "sklearn.svm.SVC"},
                    ]
                },
                "params": {"svc__C": [1.0]},
                "data": {"path": "X.npz", "target_path": "y.npy"},
            }
        )
    )
    with pytest.raises(
        ConfigError,
        match=r"s\.yml: estimator: X is a sparse matrix and step 'scale' \(StandardScaler\) "
        r"requires dense input \(scikit-learn would fail every fit\)\. Fix: use a step that takes sparse input",
    ):
        load_dataset(load_search_spec(path))


def _held_memory(client, fold_path: str, touch: str) -> list[dict]:
    """Per engine: memory growth while it holds the fold mapped and has read `touch`."""
    dview = client[:]
    dview.execute(
        "import joblib, psutil\n"
        "_m0 = psutil.Process().memory_full_info()\n"
        f"_fold = joblib.load({fold_path!r}, mmap_mode='r')\n"
        f"_touch = {touch}\n",
        block=True,
    )
    # Both engines hold the mapping now; measure while they do.
    dview.execute(
        "_m2 = psutil.Process().memory_full_info()\n"
        "_held = dict(uss=_m2.uss - _m0.uss, rss=_m2.rss - _m0.rss)\n",
        block=True,
    )
    try:
        return dview.pull("_held", block=True)
    finally:
        dview.execute("del _fold, _touch", block=True)


def test_engines_share_a_sparse_fold_and_a_frame_fold(local_cluster):
    import pandas as pd
    import scipy.sparse
    from sklearn.model_selection import ShuffleSplit

    from runtime.folds import persist_splits

    cfg, client = local_cluster
    cv = ShuffleSplit(1, test_size=0.25, random_state=0)
    rng = np.random.RandomState(0)
    # About 24 MB of arrays in the training fold: far above per-process noise.
    X = scipy.sparse.random(200_000, 1000, density=0.013, format="csr", random_state=0)
    y = rng.randint(0, 2, X.shape[0])
    sparse = persist_splits(X, y, cv, {"t": "mem-sparse"}, cfg.local_host.workdir_path)
    mapped = 0.75 * (X.data.nbytes + X.indices.nbytes)
    held = _held_memory(
        client,
        str(sparse.fold_path(0)),
        "float(_fold[0].data.sum()) + int(_fold[0].indices.sum())",
    )
    for h in held:
        assert h["rss"] >= 0.9 * mapped, h  # each engine has read all of it ...
        assert h["uss"] < 0.1 * mapped, h  # ... and none of it is its own

    frame = pd.DataFrame(rng.rand(80_000, 100), columns=[f"f{i}" for i in range(100)])
    frame["city"] = rng.choice(["paris", "lyon", "nice"], len(frame))
    dense = persist_splits(
        frame, y[: len(frame)], cv, {"t": "mem-frame"}, cfg.local_host.workdir_path
    )
    manifest = dense.manifest
    # The numbers are mapped; the strings are each engine's own (and say so).
    assert (
        manifest["shared_bytes"]
        >= frame.select_dtypes("number").memory_usage(index=False).sum()
    )
    assert manifest["nbytes"] > manifest["shared_bytes"]
    numeric = 0.75 * 80_000 * 100 * 8
    held = _held_memory(
        client,
        str(dense.fold_path(0)),
        "sum(float(_fold[0][c].to_numpy().sum()) for c in _fold[0].columns if c != 'city')",
    )
    for h in held:
        assert h["rss"] >= 0.9 * numeric, h
        assert h["uss"] < 0.1 * numeric, h


def test_the_churn_example_killed_resumed_reused_and_predicted(tmp_path, hosts_file):
    """`invoke search` on the shipped example, its driver SIGKILLed, resumed, reused, predicted."""
    import signal
    import subprocess
    import time

    from tests.conftest import REPO, run_invoke, user_env

    raw = yaml.safe_load(open(os.path.join(REPO, "searches", "churn.yml")))
    raw["params"][0]["clf__C"] = "logspace(-3, 2, 8)"  # long enough to kill mid-run
    raw["data"]["path"] = CHURN_CSV
    spec_file = tmp_path / "churn.yml"
    spec_file.write_text(yaml.safe_dump(raw, sort_keys=False))
    run_dir = tmp_path / "runs" / "killed"
    common = ["--hosts-file", hosts_file, "--no-progress"]
    proc = subprocess.Popen(
        [
            "invoke",
            "search",
            "--spec",
            str(spec_file),
            "--run-dir",
            str(run_dir),
            *common,
        ],
        cwd=REPO,
        env=user_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    journal = run_dir / jn.JOURNAL
    try:
        deadline = time.monotonic() + 120
        while not (journal.exists() and journal.read_bytes().count(b"\n") >= 8):
            assert proc.poll() is None and time.monotonic() < deadline, (
                "no journal lines"
            )
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    before = len(jn.read_journal(journal))
    n_tasks = (8 * 2 + 4) * 4
    assert 8 <= before < n_tasks and not (run_dir / BEST_ESTIMATOR).exists()

    out = run_invoke("search", "--resume", str(run_dir), *common)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"({before} already in the journal)" in out.stdout
    records = jn.read_journal(journal)
    pairs = [(r["candidate"], r["fold"]) for r in records if r["status"] == "ok"]
    assert len(set(pairs)) == n_tasks
    spec = load_search_spec(spec_file)
    grid = reference(spec, scoring=spec.scoring, refit=spec.refit)
    data = load_dataset(spec)
    ours = assert_equals_reference(spec, run_dir, grid, data.X)
    assert "Ranked by roc_auc; also accuracy, f1, neg_log_loss:" in out.stdout
    assert "  neg_log_loss: validation: " in out.stdout

    # A second resume has nothing to do, and the model is not fitted again.
    refitted = json.loads((run_dir / jn.META).read_text())["refitted"]
    out = run_invoke("search", "--resume", str(run_dir), *common)
    assert out.returncode == 0 and "refit:" not in out.stdout, out.stdout
    assert json.loads((run_dir / jn.META).read_text())["refitted"] == refitted

    # --reuse: a new run of the same spec takes every fit from the first.
    again = tmp_path / "runs" / "again"
    out = run_invoke(
        "search", "--spec", str(spec_file), "--run-dir", str(again), "--reuse", *common
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"reuse: {n_tasks} fits taken from earlier runs" in out.stdout
    reused = json.loads((again / jn.RESULTS).read_text())
    for key in grid.cv_results_:
        if not key.endswith("_time") and key.startswith(
            ("mean_test", "rank_test", "split")
        ):
            assert reused[key] == ours[key], key

    out = run_invoke(
        "predict",
        str(run_dir),
        "--data",
        CHURN_CSV,
        "--proba",
        "--out",
        str(tmp_path / "p.csv"),
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"wrote {len(data.y)} predictions to {tmp_path / 'p.csv'}" in out.stdout
    import pandas as pd

    pred = pd.read_csv(tmp_path / "p.csv")
    np.testing.assert_array_equal(
        pred["prediction"], grid.best_estimator_.predict(data.X)
    )
    np.testing.assert_allclose(
        pred[["proba_0", "proba_1"]].to_numpy(),
        grid.best_estimator_.predict_proba(data.X),
        rtol=0,
        atol=1e-12,
    )


def test_a_refit_callable_picks_the_best_index_as_in_scikit_learn(tmp_path, hosts_file):
    from tests.datasets import simplest_of_top_three

    spec, job, run_dir = run_spec(
        tmp_path,
        hosts_file,
        {
            "estimator": {"pipeline": [PREP, LOGREG]},
            "params": {"clf__C": [0.003, 0.01, 0.03, 0.1, 1.0]},
            "data": CHURN_DATA,
            "cv": STRATIFIED,
            "refit": "tests.datasets.simplest_of_top_three",
        },
    )
    grid = reference(spec, refit=simplest_of_top_three)
    assert not hasattr(grid, "best_score_")  # scikit-learn sets none with a callable
    ours = assert_equals_reference(spec, run_dir, grid, load_dataset(spec).X)
    assert ours["best_score"] is None and job.best_index_ == grid.best_index_


def test_refit_false_leaves_no_model_and_predict_says_why(tmp_path, hosts_file):
    from tests.conftest import run_invoke

    _, job, run_dir = run_spec(
        tmp_path,
        hosts_file,
        {
            "estimator": {"pipeline": [PREP, LOGREG]},
            "params": {"clf__C": [0.1, 1.0]},
            "data": CHURN_DATA,
            "cv": STRATIFIED,
            "refit": False,
        },
    )
    results = json.loads((run_dir / jn.RESULTS).read_text())
    assert results["best_index"] == job.best_index_ is not None
    assert not (run_dir / BEST_ESTIMATOR).exists() and "refit_time" not in results
    out = run_invoke("predict", str(run_dir), "--data", CHURN_CSV)
    assert out.returncode == 2
    assert (
        f"error: {run_dir}: no fitted best estimator (best_estimator.joblib): its spec has "
        "refit: false. Fix: run the search again with refit: true" in out.stderr
    ), out.stderr


def test_a_learning_curve_on_a_frame_with_weights_and_several_metrics(
    tmp_path, hosts_file
):
    """Prefixes of a frame fold (and of its sample weights), scored by the ranking metric."""
    from sklearn.model_selection import learning_curve

    path = tmp_path / "curve.yml"
    path.write_text(
        yaml.safe_dump(
            {
                "name": "curve",
                "estimator": {"pipeline": [PREP, LOGREG]},
                "params": {"clf__C": [1.0]},
                "data": CHURN_DATA,
                "fit_params": {"clf__sample_weight": {"column": "weight"}},
                "cv": STRATIFIED,
                "scoring": {"acc": "accuracy", "auc": "roc_auc"},
                "refit": "auc",
            },
            sort_keys=False,
        )
    )
    job = api.learning_curve(
        path,
        "0.3,0.6,1.0",
        '{"clf__C": 0.1}',
        hosts_file=hosts_file,
        runs_root=tmp_path / "runs",
        progress=False,
    )
    assert job.status == "finished", job.report()
    spec = load_search_spec(path)
    data = load_dataset(spec)
    est = spec.estimator.build().set_params(clf__C=0.1)
    sizes, train, test = learning_curve(
        est,
        data.X,
        data.y,
        cv=spec.cv.splitter(),
        train_sizes=job.definition["train_sizes_abs"],
        scoring="roc_auc",  # the ranking metric of the spec's two
        shuffle=False,
        params=data.fit_params,
    )
    ours = job.curve_
    assert ours["train_sizes_abs"] == sizes.tolist()
    np.testing.assert_allclose(ours["test_scores"], test, rtol=0, atol=1e-12)
    np.testing.assert_allclose(ours["train_scores"], train, rtol=0, atol=1e-12)

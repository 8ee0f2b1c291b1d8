"""Unit tests (no processes) of a real user's spec: frames, groups, fit params, scoring, refit.

Every bad input of these keys gets one message naming the file, the key, the
value and the fix, before anything starts.
"""

from __future__ import annotations

import copy
import sys

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.model_selection import ParameterGrid

from fleetcv.spec import ConfigError, load_dataset, load_search_spec
from runtime.build import build
from tests.conftest import REFERENCE_SPEC
from tests.datasets import CHURN_CSV

BASE = yaml.safe_load(open(REFERENCE_SPEC))
LOGREG = {
    "class": "sklearn.linear_model.LogisticRegression",
    "params": {"max_iter": 1000},
}
CHURN = {
    "estimator": {"class": "sklearn.ensemble.HistGradientBoostingClassifier"},
    "params": {"learning_rate": [0.1]},
    "data": {"path": CHURN_CSV, "target": "churned", "dtype": {"plan": "category"}},
    "cv": {"kind": "kfold", "n_splits": 3},
}


def write(tmp_path, changes, base=BASE, name="spec.yml"):
    spec = copy.deepcopy(base)
    spec.update(changes)
    p = tmp_path / name
    p.write_text(yaml.safe_dump(spec, sort_keys=False))
    return p


BAD_SPECS = [
    (
        {"scoring": "accuracyy"},
        r"scoring: unknown scoring 'accuracyy'\. Fix: use a name from sklearn\.metrics\.get_scorer_names\(\)",
    ),
    (
        {"scoring": "sklearn.metrics.no_such_scorer"},
        r"scoring: cannot import 'sklearn\.metrics\.no_such_scorer'",
    ),
    (
        {"scoring": "sklearn.metrics.f1_score"},
        r"scoring: sklearn\.metrics\.f1_score is not a scorer \(a callable scorer\(estimator, X, y\)\)\. "
        r"Fix: for a metric function \(y_true, y_pred\) write \{metric: sklearn\.metrics\.f1_score\}",
    ),
    (
        {"scoring": {"acc": "accuracy", "f2": {"metric": "sklearn.metrics.nope"}}},
        r"scoring\.f2\.metric: cannot import 'sklearn\.metrics\.nope'",
    ),
    (
        {
            "scoring": {
                "acc": "accuracy",
                "f2": {"metric": "sklearn.metrics.fbeta_score", "beta": 2},
            }
        },
        r"scoring\.f2\.beta: unknown key\. Fix: use one of greater_is_better, metric, params, response_method",
    ),
    (
        {"scoring": ["accuracy", "sklearn.metrics.f1_score"]},
        r"scoring\[1\]: a list holds scorer names, got 'sklearn\.metrics\.f1_score'",
    ),
    (
        {"scoring": ["accuracy", "f1_macro"]},
        r"refit: true is ambiguous with several metrics \(accuracy, f1_macro\)\. "
        r"Fix: name the metric that ranks candidates, e\.g\. refit: accuracy, or refit: false",
    ),
    (
        {"scoring": ["accuracy", "f1_macro"], "refit": "roc_auc"},
        r"refit: 'roc_auc' is not one of the metrics in scoring \(accuracy, f1_macro\)\. "
        r"Fix: write refit: accuracy \(or another of them\), or add roc_auc to scoring",
    ),
    (
        {"refit": "yes please"},
        r"refit: expected true, false, a metric of scoring or an import path",
    ),
    ({"refit": "mypkg.pick_best"}, r"refit: cannot import 'mypkg\.pick_best'"),
    (
        {
            "estimator": {
                "pipeline": [
                    {"name": "scale", "class": "sklearn.preprocessing.StandardScaler"},
                    {"name": "clf", **LOGREG},
                ]
            },
            "params": [
                {"clf": [LOGREG], "clf__C": [1.0]},
                {
                    "clf": [{"class": "sklearn.ensemble.RandomForestClassifier"}],
                    "clf__C": [1.0],
                },
            ],
        },
        r"params\[1\]\.clf__C: the estimator has no parameter 'clf__C' when clf is "
        r"sklearn\.ensemble\.RandomForestClassifier\. Fix: use one of",
    ),
    (
        {"params": {"C": [1.0], "kernel": [{"class": "sklearn.svm.NoSuchKernel"}]}},
        r"params\.kernel\[0\]\.class: cannot import 'sklearn\.svm\.NoSuchKernel'",
    ),
    (
        {"data": {"loader": "sklearn.datasets.load_digits", "target": "y"}},
        r"data\.target: goes with data\.path, not with a loader",
    ),
    (
        {"data": {"path": "x.npy", "dtype": {"a": "category"}}},
        r"data\.dtype: expected a mapping of column -> dtype for a \.csv/\.parquet table",
    ),
    (
        {
            "data": {
                "loader": "sklearn.datasets.load_digits",
                "groups": {"path": "g.txt"},
            }
        },
        r"data\.groups\.path: unsupported file type '\.txt' \(g\.txt\)\. Fix: use a \.npy/\.csv file",
    ),
    (
        {"fit_params": {"sample_weight": {"column": "w", "path": "w.npy"}}},
        r"fit_params\.sample_weight: give exactly one of column or path",
    ),
    (
        {"cv": {**BASE["cv"], "random_state": 2**40}},
        r"cv\.random_state: 1099511627776 is not a seed \(0 to 2\*\*32 - 1\)\. "
        r"Fix: write e\.g\. random_state: 42",
    ),
    (
        {"cv": {**BASE["cv"], "random_state": -1}},
        r"cv\.random_state: -1 is not a seed",
    ),
    (
        {"search": "random", "n_iter": 2, "random_state": -5},
        r"spec\.yml: random_state: -5 is not a seed",
    ),
    (
        {"params": {"C": [float("nan"), 1.0]}},
        r"params\.C\[0\]: nan is not a usable parameter value\. Fix: give finite numbers",
    ),
    (
        {"params": {"C": [1.0, float("inf")]}},
        r"params\.C\[1\]: inf is not a usable parameter value",
    ),
    (
        {"name": "../../elsewhere"},
        r"name: expected a name of letters, digits, '\.', '_', '-' \(it names the run "
        r"directory under runs/\), got '\.\./\.\./elsewhere'",
    ),
    ({"name": "a/b"}, r"name: expected a name of letters, digits"),
    (
        {"task_timeout": 0},
        r"task_timeout: expected a number of seconds > 0, got 0\. Fix: write e\.g\. "
        r"task_timeout: 600",
    ),
    (
        {"task_timeout": "1h"},
        r"task_timeout: expected a number of seconds > 0, got '1h'",
    ),
]


@pytest.mark.parametrize(
    "changes,pattern", BAD_SPECS, ids=[p[:40] for _, p in BAD_SPECS]
)
def test_bad_spec_is_refused_with_a_clear_message(tmp_path, changes, pattern):
    p = write(tmp_path, changes)
    with pytest.raises(ConfigError, match=pattern) as info:
        load_search_spec(p)
    assert str(p) in str(info.value) and "Fix:" in str(info.value)


BAD_DATA = [
    (
        {
            "cv": {"class": "sklearn.model_selection.GroupKFold"},
            "data": {"loader": "tests.datasets.texts"},
        },
        r"data\.loader: sklearn\.model_selection\.GroupKFold splits by groups, and "
        r"tests\.datasets\.texts returned none\. Fix: return \(X, y, groups\)",
    ),
    (
        {"data": {**CHURN["data"], "groups": "acount"}},
        r"data\.groups: no column named 'acount' in the data\. Fix: use one of \['account'",
    ),
    (
        {"fit_params": {"sample_weight": {"column": "wieght"}}},
        r"fit_params\.sample_weight: no column named 'wieght' in the data",
    ),
    (
        {"data": {**CHURN["data"], "groups": {"path": "short.npy"}}},
        r"data\.groups: has 10 values for 1380 rows of X\. Fix: give one value per row of the data",
    ),
    (
        {"fit_params": {"sample_weight": {"path": "short.npy"}}},
        r"fit_params\.sample_weight: has 10 values for 1380 rows of X",
    ),
    (
        {"data": {**CHURN["data"], "target": "churn"}},
        r"data\.target: no column named 'churn' in .*churn\.csv",
    ),
    (
        {"data": {**CHURN["data"], "dtype": {"plann": "category"}}},
        r"data\.dtype\.plann: no column named 'plann'",
    ),
    (
        {"data": {"loader": "sklearn.datasets.load_digits", "groups": "account"}},
        r"data\.groups: column 'account' asked for, but X is not a table with named columns",
    ),
    (
        {"estimator": {"class": "sklearn.svm.SVC"}, "params": {"C": [1.0]}},
        r"estimator: X holds 241 NaN values and SVC does not accept NaN",
    ),
    (
        {
            "cv": {"class": "sklearn.model_selection.LeaveOneGroupOut"},
            "data": {**CHURN["data"], "groups": {"path": "one.npy"}},
        },
        r"data\.groups: LeaveOneGroupOut cannot split this data \(The groups parameter contains fewer than 2 unique groups",
    ),
    (
        {
            "estimator": {"class": "sklearn.ensemble.HistGradientBoostingRegressor"},
            "params": {"learning_rate": [0.1]},
            "data": {**CHURN["data"], "target": "weight"},
            "cv": {"kind": "kfold", "n_splits": 3, "stratified": True},
        },
        r"cv\.stratified: the target is continuous \(\d+ distinct values\): stratified "
        r"folds need classes\. Fix: drop stratified: true",
    ),
]


@pytest.mark.parametrize("changes,pattern", BAD_DATA, ids=[p[:40] for _, p in BAD_DATA])
def test_bad_data_is_refused_with_a_clear_message(tmp_path, changes, pattern):
    np.save(tmp_path / "short.npy", np.arange(10))
    np.save(tmp_path / "one.npy", np.zeros(1380))
    p = write(tmp_path, changes, base=CHURN)
    with pytest.raises(ConfigError, match=pattern) as info:
        load_dataset(load_search_spec(p))
    assert "Fix:" in str(info.value)


def test_parquet_without_pyarrow_is_one_clear_error(tmp_path, monkeypatch):
    frame = pd.read_csv(CHURN_CSV)
    frame.to_parquet(tmp_path / "churn.parquet")
    p = write(
        tmp_path, {"data": {"path": "churn.parquet", "target": "churned"}}, base=CHURN
    )
    spec = load_search_spec(p)
    assert load_dataset(spec).X.shape == (1380, 9)  # with pyarrow, it reads
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # as if not installed
    with pytest.raises(
        ConfigError,
        match=r"data\.path: .*churn\.parquet is a parquet file and pyarrow is not installed\. "
        r"Fix: pip install pyarrow \(or save the table as \.csv\)",
    ):
        load_dataset(spec)


def test_a_frame_keeps_names_dtypes_and_nan_and_loses_label_columns(tmp_path):
    p = write(
        tmp_path,
        {
            "data": {**CHURN["data"], "groups": "account"},
            "fit_params": {"sample_weight": {"column": "weight"}, "verbose": 0},
        },
        base=CHURN,
    )
    data = load_dataset(load_search_spec(p))
    frame = pd.read_csv(CHURN_CSV, dtype={"plan": "category"})
    expected = frame.drop(columns=["account", "weight", "churned"])
    pd.testing.assert_frame_equal(data.X, expected)
    assert (
        str(data.X["plan"].dtype) == "category" and data.X["payment"].isna().sum() == 53
    )
    np.testing.assert_array_equal(data.groups, frame["account"].to_numpy())
    np.testing.assert_array_equal(
        data.fit_params["sample_weight"], frame["weight"].to_numpy()
    )
    assert data.fit_params["verbose"] == 0 and data.y.dtype.kind == "i"


def test_estimator_choices_give_parameter_grids_order_and_build_on_engines(tmp_path):
    rf = {
        "class": "sklearn.ensemble.RandomForestClassifier",
        "params": {"n_estimators": 5},
    }
    p = write(
        tmp_path,
        {
            "estimator": {
                "pipeline": [
                    {"name": "scale", "class": "sklearn.preprocessing.StandardScaler"},
                    {"name": "clf", **LOGREG},
                ]
            },
            "params": [
                {"clf": [LOGREG], "clf__C": [0.1, 1.0]},
                {"clf": [rf], "clf__max_depth": [2, 4]},
            ],
        },
    )
    spec = load_search_spec(p)
    cands = spec.candidates()
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    grid = ParameterGrid(
        [
            {"clf": [LogisticRegression(max_iter=1000)], "clf__C": [0.1, 1.0]},
            {"clf": [RandomForestClassifier(n_estimators=5)], "clf__max_depth": [2, 4]},
        ]
    )
    assert len(cands) == len(grid) == 4
    for ours, theirs in zip(cands, grid, strict=True):
        assert ours.keys() == theirs.keys()
        assert repr(build(ours["clf"])) == repr(theirs["clf"])
    # Candidates are plain data: they go to the journal and meta.json as JSON.
    assert cands[2]["clf"] == rf
    est = spec.estimator.build().set_params(
        **{k: build(v) for k, v in cands[3].items()}
    )
    assert (
        isinstance(est.named_steps["clf"], RandomForestClassifier)
        and est.named_steps["clf"].max_depth == 4
    )


def test_pipelines_of_any_depth_expose_every_parameter(tmp_path):
    churn = yaml.safe_load(open(CHURN_CSV.replace("data/churn.csv", "churn.yml")))
    p = write(
        tmp_path,
        {
            "params": {
                "prep__num__impute__strategy": ["mean"],
                "prep__cat__onehot__min_frequency": [5],
            }
        },
        base={**churn, "data": {**CHURN["data"], "groups": "account"}},
    )
    spec = load_search_spec(p)
    est = spec.estimator.build()
    assert est.named_steps["prep"].transformers[0][0] == "num"
    assert isinstance(est.named_steps["prep"].transformers[0], tuple)
    assert (
        spec.metrics == ["roc_auc", "accuracy", "f1", "neg_log_loss"]
        and spec.ranking == "roc_auc"
    )


def test_feature_union_and_nested_estimators_build_as_scikit_learn_writes_them(
    tmp_path,
):
    from sklearn.decomposition import PCA
    from sklearn.ensemble import BaggingClassifier
    from sklearn.feature_selection import SelectKBest
    from sklearn.pipeline import FeatureUnion, Pipeline
    from sklearn.tree import DecisionTreeClassifier

    p = write(
        tmp_path,
        {
            "estimator": {
                "pipeline": [
                    {
                        "name": "features",
                        "class": "sklearn.pipeline.FeatureUnion",
                        "params": {
                            "transformer_list": [
                                [
                                    "pca",
                                    {
                                        "class": "sklearn.decomposition.PCA",
                                        "params": {"n_components": 5},
                                    },
                                ],
                                [
                                    "best",
                                    {
                                        "class": "sklearn.feature_selection.SelectKBest",
                                        "params": {"k": 3},
                                    },
                                ],
                            ]
                        },
                    },
                    {
                        "name": "clf",
                        "class": "sklearn.ensemble.BaggingClassifier",
                        "params": {
                            "estimator": {
                                "class": "sklearn.tree.DecisionTreeClassifier",
                                "params": {"max_depth": 2},
                            }
                        },
                    },
                ]
            },
            "params": {
                "features__pca__n_components": [2, 4],
                "clf__estimator__max_depth": [1, 3],
            },
        },
    )
    spec = load_search_spec(p)
    expected = Pipeline(
        [
            (
                "features",
                FeatureUnion(
                    [("pca", PCA(n_components=5)), ("best", SelectKBest(k=3))]
                ),
            ),
            ("clf", BaggingClassifier(estimator=DecisionTreeClassifier(max_depth=2))),
        ]
    )
    assert repr(spec.estimator.build()) == repr(expected)
    assert len(spec.candidates()) == 4


def _loader_spec(tmp_path, loader, **changes):
    return load_search_spec(
        write(
            tmp_path,
            {"data": {"loader": f"tests.datasets.{loader}"}, **changes},
            base=CHURN,
        )
    )


def test_a_loader_may_return_groups_for_a_group_splitter(tmp_path):
    spec = _loader_spec(
        tmp_path,
        "churn_with_groups",
        cv={"class": "sklearn.model_selection.GroupKFold", "params": {"n_splits": 3}},
    )
    data = load_dataset(spec)
    assert data.groups is not None and len(data.groups) == len(data.y) == 1380


def test_coo_becomes_csr_and_a_series_of_texts_is_text(tmp_path):
    import scipy.sparse

    data = load_dataset(
        _loader_spec(
            tmp_path,
            "coo_and_text_series",
            estimator={"class": "sklearn.svm.SVC"},
            params={"C": [1.0]},
        )
    )
    assert scipy.sparse.issparse(data.X) and data.X.format == "csr"
    spec = _loader_spec(
        tmp_path,
        "text_series",
        estimator={
            "pipeline": [
                {
                    "name": "tfidf",
                    "class": "sklearn.feature_extraction.text.TfidfVectorizer",
                },
                {"name": "clf", **LOGREG},
            ]
        },
        params={"clf__C": [1.0]},
    )
    data = load_dataset(spec)
    assert data.X.dtype == object and data.X.ndim == 1 and isinstance(data.X[0], str)


@pytest.mark.parametrize(
    "loader,pattern",
    [
        (
            "string_target_with_gaps",
            r"data\.loader: y holds 1 missing \(NaN, None or infinite\) values\. Fix: drop the rows",
        ),
        (
            "duplicate_columns",
            r"data\.loader: X has duplicate column names \['a'\]\. Fix: give every column its own name",
        ),
    ],
)
def test_a_bad_loader_result_is_one_clear_error(tmp_path, loader, pattern):
    with pytest.raises(ConfigError, match=pattern):
        load_dataset(_loader_spec(tmp_path, loader))


def test_nan_is_refused_only_when_every_estimator_choice_refuses_it(tmp_path):
    hgb = {
        "class": "sklearn.ensemble.HistGradientBoostingClassifier",
        "params": {"max_iter": 5},
    }
    pipeline = {"pipeline": [{"name": "clf", **LOGREG}]}
    data = {"loader": "tests.datasets.churn_numeric_frame"}
    ok = write(
        tmp_path,
        {"estimator": pipeline, "params": {"clf": [hgb]}, "data": data},
        base=CHURN,
        name="ok.yml",
    )
    assert load_dataset(load_search_spec(ok)).X.isna().to_numpy().any()
    bad = write(
        tmp_path,
        {"estimator": pipeline, "params": {"clf__C": [1.0]}, "data": data},
        base=CHURN,
        name="bad.yml",
    )
    with pytest.raises(
        ConfigError,
        match=r"X holds 188 NaN values and step 'clf' \(LogisticRegression\) does not accept NaN",
    ):
        load_dataset(load_search_spec(bad))


def test_a_later_grid_is_checked_against_the_estimator_as_written(tmp_path):
    svc = {"class": "sklearn.svm.SVC"}
    p = write(
        tmp_path,
        {
            "estimator": {"pipeline": [{"name": "clf", **svc}]},
            "params": [{"clf": [LOGREG], "clf__C": [1.0]}, {"clf__gamma": [0.1]}],
        },
    )
    assert len(load_search_spec(p).candidates()) == 2  # GridSearchCV takes it too


def test_a_refit_callable_gets_arrays_and_must_return_an_index():
    from fleetcv.errors import SearchError
    from fleetcv.kinds.search import best_of

    results = {
        "params": [{"C": 1.0}, {"C": 2.0}],
        "param_C": [1.0, 2.0],
        "rank_test_score": [2, 1],
        "mean_test_score": [0.5, 0.7],
        "n_finished_splits": [1, 1],
        "split0_host": ["h", "h"],
    }
    job = {"refit": "tests.datasets.simplest_of_top_three"}
    with pytest.raises(
        SearchError,
        match=r"refit: tests\.datasets\.simplest_of_top_three\(cv_results\) raised KeyError",
    ):
        best_of(job, results)  # it reads param_clf__C, which these results lack
    results["params"] = [{"clf__C": 1.0}, {"clf__C": 2.0}]
    results["param_clf__C"] = results.pop("param_C")
    assert best_of(job, results) == (0, {"clf__C": 1.0}, None)
    with pytest.raises(
        SearchError, match=r"returned 1\.0, not a candidate index in \[0, 1\]"
    ):
        best_of({"refit": "tests.datasets.returns_a_float"}, results)


def test_a_list_stands_for_a_tuple_where_scikit_learn_wants_one(tmp_path):
    from runtime.build import materialize

    p = write(
        tmp_path,
        {
            "estimator": {
                "pipeline": [
                    {
                        "name": "tfidf",
                        "class": "sklearn.feature_extraction.text.TfidfVectorizer",
                        "params": {"ngram_range": [1, 2]},
                    },
                    {"name": "clf", **LOGREG},
                ]
            },
            "params": {"tfidf__ngram_range": [[1, 1], [1, 3]], "clf__C": [1.0]},
        },
    )
    spec = load_search_spec(p)
    est = spec.estimator.build()
    assert est.named_steps["tfidf"].ngram_range == (1, 2)
    cand = spec.candidates()[1]
    # The journal keeps the tuple the fit gets, which results give back.
    assert cand["tfidf__ngram_range"] == {"$type": "tuple", "items": [1, 3]}
    assert build(cand["tfidf__ngram_range"]) == (1, 3)
    est.set_params(**materialize(cand, est))
    assert est.named_steps["tfidf"].ngram_range == (1, 3)
    assert materialize({"clf__C": [1.0]}, est) == {
        "clf__C": [1.0]
    }  # lists elsewhere stay lists


def test_a_key_given_twice_is_refused_naming_both_lines(tmp_path):
    p = tmp_path / "twice.yml"
    p.write_text(open(REFERENCE_SPEC).read() + "\nreturn_train_score: false\n")
    with pytest.raises(
        ConfigError,
        match=r"twice\.yml: line 21: the key 'return_train_score' is given twice "
        r"\(first on line 19\); only one can count\. Fix: keep one of them",
    ):
        load_search_spec(p)

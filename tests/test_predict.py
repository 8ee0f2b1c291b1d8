"""`invoke predict --out` writes the format its extension names, and refuses others at once.

A real search (`invoke search` on the session's local engines) on a table
whose classes are strings, then `invoke predict` of its best estimator to
.npy (loaded with `allow_pickle=False`), .parquet (pandas), .jsonl and .csv,
each equal to the fitted model's own predictions.
"""

from __future__ import annotations

import json

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_iris

from fleetcv.errors import ConfigError
from fleetcv.predict import output_writer, predict
from fleetcv.rundir import journal as jn
from tests.conftest import invoke, run_invoke, write_spec


@pytest.fixture(scope="module")
def fitted(cluster_hosts_file, tmp_path_factory):
    """(run dir, table, model): a finished search on iris with its species as strings."""
    tmp = tmp_path_factory.mktemp("predict")
    iris = load_iris(as_frame=True)
    table = iris.data.assign(species=iris.target_names[iris.target])
    table.to_csv(tmp / "iris.csv", index=False)
    spec = write_spec(
        tmp,
        {
            "estimator": {
                "class": "sklearn.linear_model.LogisticRegression",
                "params": {"max_iter": 500},
            },
            "params": {"C": [0.1, 1.0]},
            "data": {"path": "iris.csv", "target": "species"},
            "cv": {"kind": "kfold", "n_splits": 3, "random_state": 0},
        },
        "iris",
    )
    run_dir = tmp / "run"
    invoke(
        "search",
        "--spec",
        str(spec),
        "--run-dir",
        str(run_dir),
        "--hosts-file",
        cluster_hosts_file,
        "--no-progress",
    )
    model = joblib.load(run_dir / "best_estimator.joblib")
    return run_dir, tmp / "iris.csv", table.drop(columns="species"), model


def _predict(run_dir, data, out, *flags):
    proc = invoke(
        "predict", str(run_dir), "--data", str(data), "--out", str(out), *flags
    )
    assert f"wrote 150 predictions to {out}" in proc.stdout, proc.stdout
    return proc


@pytest.mark.cluster
def test_npy_is_a_real_numpy_file(fitted, tmp_path):
    run_dir, data, X, model = fitted
    _predict(run_dir, data, tmp_path / "pred.npy")
    pred = np.load(tmp_path / "pred.npy", allow_pickle=False)
    assert pred.dtype.kind == "U" and pred.shape == (150,)
    np.testing.assert_array_equal(pred, model.predict(X))

    _predict(run_dir, data, tmp_path / "proba.npy", "--proba")
    rec = np.load(tmp_path / "proba.npy", allow_pickle=False)
    assert rec.dtype.names == ("prediction", *(f"proba_{c}" for c in model.classes_))
    np.testing.assert_array_equal(rec["prediction"], model.predict(X))
    proba = np.column_stack([rec[f"proba_{c}"] for c in model.classes_])
    np.testing.assert_array_equal(proba, model.predict_proba(X))


@pytest.mark.cluster
def test_parquet_jsonl_and_csv_hold_the_same_table(fitted, tmp_path):
    run_dir, data, X, model = fitted
    expected = pd.DataFrame({"prediction": model.predict(X)})
    for c, col in zip(model.classes_, model.predict_proba(X).T, strict=True):
        expected[f"proba_{c}"] = col
    _predict(run_dir, data, tmp_path / "p.parquet", "--proba")
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "p.parquet"), expected)
    _predict(run_dir, data, tmp_path / "p.jsonl", "--proba")
    rows = [
        json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()
    ]
    assert rows[0].keys() == set(expected.columns) and len(rows) == 150
    assert [r["prediction"] for r in rows] == expected["prediction"].tolist()
    _predict(run_dir, data, tmp_path / "p.csv", "--proba")
    pd.testing.assert_frame_equal(
        pd.read_csv(tmp_path / "p.csv"), expected, check_exact=False, rtol=1e-15
    )


@pytest.mark.cluster
def test_an_unknown_extension_is_one_line_exit_2_and_nothing_written(fitted, tmp_path):
    run_dir, data, _, _ = fitted
    for name, got in (("pred.txt", "extension '.txt'"), ("pred", "no extension")):
        out = tmp_path / name
        proc = run_invoke(
            "predict", str(run_dir), "--data", str(data), "--out", str(out)
        )
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert proc.stderr.strip() == (
            f"error: --out {out}: {got}, which is no format predict writes. Fix: end "
            "the name with one of .csv, .parquet, .npy, .jsonl"
        ), proc.stderr
        assert not out.exists() and not (run_dir / jn.RESULTS).is_dir()


def test_the_format_is_checked_before_the_run_is_read(tmp_path):
    # Not a run directory, no data file: the name of the output is refused first.
    with pytest.raises(ConfigError, match=r"--out x\.xlsx: extension '\.xlsx', which"):
        predict(tmp_path / "no-run", tmp_path / "no.csv", out="x.xlsx")
    with pytest.raises(ConfigError, match=r"the folder .*nowhere does not exist"):
        output_writer(tmp_path / "nowhere" / "p.csv")
    assert output_writer(tmp_path / "P.NPY").__name__ == "_write_npy"

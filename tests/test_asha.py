"""`search: asha` on real local engines: the promotion rule, rows once, the best of the top rung."""

from __future__ import annotations

import json
import math
from collections import Counter

import pytest

from fleetcv import api
from fleetcv.errors import ConfigError
from fleetcv.spec import load_search_spec
from tests.conftest import (
    in_iteration,
    journal_lines,
    resume,
    slow_run_killed,
    write_spec,
)

pytestmark = pytest.mark.cluster

SPEC = {
    "estimator": {"class": "sklearn.svm.SVC"},
    "search": "asha",
    "random_state": 0,
    "params": {"C": [0.1, 1, 10, 100], "gamma": [0.0005, 0.001, 0.01, 0.1]},
    "data": {"loader": "sklearn.datasets.load_digits"},
    "cv": {"kind": "kfold", "n_splits": 3, "random_state": 1},
}


def _top(rows_before: list[tuple[int, float]], factor: float) -> set[int]:
    """The candidates ASHA may promote from a rung with these finished rows."""
    k = math.floor(len(rows_before) / factor)
    ranked = sorted(rows_before, key=lambda cm: (-cm[1], cm[0]))
    return {c for c, _ in ranked[:k]}


def test_asha_promotes_the_top_third_of_each_rung(tmp_path, cluster_hosts_file):
    spec = {**SPEC, "asha": {"factor": 3, "min_resources": 60, "parallel": 1}}
    path = write_spec(tmp_path, spec, "asha")
    run_dir = tmp_path / "run"
    job = api.search(
        path, hosts_file=cluster_hosts_file, run_dir=run_dir, progress=False
    )
    assert job.status == "finished", job.report()
    rows = [json.loads(x) for x in (run_dir / "rows.jsonl").read_text().splitlines()]
    res = json.loads((run_dir / "results.json").read_text())
    rungs = [60, 180, 540, 1620]
    assert [it["n_resources"] for it in res["iterations"]] == rungs
    # One trial in flight: when row j was made, every earlier row had its score.
    mean = dict(zip(res["row_index"], res["mean_test_score"], strict=True))
    seen = set()
    for j, row in enumerate(rows):
        tags = row["tags"]
        cand, rung = tags["candidate"], tags["iter"]
        assert (cand, rung) not in seen and tags["n_resources"] == rungs[rung]
        seen.add((cand, rung))
        if rung == 0:
            continue
        below = [
            (r["tags"]["candidate"], mean[i])
            for i, r in enumerate(rows[:j])
            if r["tags"]["iter"] == rung - 1
        ]
        assert cand in {c for c, _ in below}
        last = j == len(rows) - 1 and len(_top(below, 3)) == 0
        assert cand in _top(below, 3) or last, (j, cand, rung)
    # Every candidate started on the smallest rung, one reached the top.
    assert Counter(r["tags"]["iter"] for r in rows)[0] == 16
    assert any(r["tags"]["iter"] == 3 for r in rows)
    pairs = Counter((r["candidate"], r["fold"]) for r in journal_lines(run_dir))
    assert pairs == {(c, k): 1 for c in range(len(rows)) for k in range(3)}
    # Rows on n_samples fit on int(fraction x fold rows) of each fold.
    n_train = {
        (r["candidate"], r["fold"]): r["n_train"] for r in journal_lines(run_dir)
    }
    for c, row in enumerate(rows):
        assert n_train[(c, 0)] == int(row["tags"]["n_resources"] / 1797 * 1198)
    # The best is the top rung's.
    top = [i for i, t in enumerate(res["iter"]) if t == 3]
    assert res["best_index"] in top
    assert "ASHA (factor 3, resource n_samples), rungs:" in job.report()


@pytest.mark.parametrize(
    ("section", "match"),
    [
        ({"aggressive_elimination": True}, r"asha\.aggressive_elimination"),
        (
            {"min_resources": "exhaust"},
            r"asha\.min_resources: expected a positive integer or smallest",
        ),
        (
            {"parallel": -1},
            r"asha\.parallel: expected a positive integer or null, got -1",
        ),
    ],
)
def test_bad_asha_settings_are_named(tmp_path, section, match):
    with pytest.raises(ConfigError, match=match):
        load_search_spec(write_spec(tmp_path, {**SPEC, "asha": section}, "bad"))


def test_a_killed_asha_driver_resumes_its_rows_and_goes_on(
    tmp_path, cluster_hosts_file
):
    spec = {**SPEC, "asha": {"factor": 3, "min_resources": 60}}
    run_dir = slow_run_killed(tmp_path, spec, cluster_hosts_file, in_iteration(1))
    rows_before = [
        json.loads(x) for x in (run_dir / "rows.jsonl").read_text().splitlines()
    ]
    before = journal_lines(run_dir)
    resume(run_dir, cluster_hosts_file)
    rows = [json.loads(x) for x in (run_dir / "rows.jsonl").read_text().splitlines()]
    # The rows made before the kill keep their place; the run went on from them.
    assert rows[: len(rows_before)] == rows_before and len(rows) > len(rows_before)
    after = journal_lines(run_dir)
    assert after[: len(before)] == before
    pairs = Counter((r["candidate"], r["fold"]) for r in after)
    assert pairs == {(c, k): 1 for c in range(len(rows)) for k in range(3)}
    assert len({(r["tags"]["candidate"], r["tags"]["iter"]) for r in rows}) == len(rows)
    res = json.loads((run_dir / "results.json").read_text())
    assert res["status"] == "finished" and any(t == 3 for t in res["iter"])

"""`invoke bench --quick` runs end to end and reports every figure (no timing is asserted)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fleetcv.devtools import testcluster
from fleetcv.devtools.bench.peers import PEERS
from tests.conftest import REPO

pytestmark = pytest.mark.cluster


def test_quick_bench_writes_every_figure(tmp_path):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    proc = subprocess.run(
        ["invoke", "bench", "--quick", "--out-dir", str(tmp_path)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    r = json.loads((tmp_path / "results.json").read_text())
    ref, mem, dis = r["reference"], r["memory"], r["dispatch"]
    for key in (
        "sequential_seconds",
        "limit_seconds",
        "sklearn_wall_seconds",
        "fleetcv_wall_seconds",
        "sklearn_efficiency",
        "fleetcv_efficiency",
        "wall_ratio_fleetcv_over_sklearn",
        "fleetcv_work_inflation",
        "fits_only_ratio_over_sklearn",
    ):
        assert isinstance(ref[key], float) and ref[key] > 0, key
    assert [s["engines"] for s in ref["scale"]] == list(
        range(1, r["environment"]["engines"] + 1)
    )
    assert all(s["evaluate_seconds"] > 0 for s in ref["scale"])
    # efficiency = busy share / work inflation: the two explain the figure.
    runs = len(ref["fleetcv_runs"])
    assert (
        len(ref["fleetcv_evaluate_seconds"])
        == len(ref["fleetcv_engine_busy_fraction"])
        == len(ref["fleetcv_task_gap_seconds"])
        == runs
    )
    assert all(g > 0 for g in ref["fleetcv_task_gap_seconds"])
    # CPU share = CPU seconds / (N x wall): single-threaded workers cannot
    # pass 1 (plus psutil's clock-tick rounding). None: loky replaced its pool.
    for side in ("sklearn_worker", "fleetcv_engine"):
        shares, cpu = ref[f"{side}_cpu_share"], ref[f"{side}_cpu_seconds"]
        assert len(shares) == len(cpu) == runs, side
        assert any(x is not None for x in shares), side
        assert all(x is None or 0 < x <= 1.01 for x in shares), side
        assert all(c is None or c > 0 for c in cpu), side
    # The warm-up's timings put several short tasks in a message.
    assert len(ref["fleetcv_messages"]) == runs
    assert all(
        0 < m < ref["n_candidates"] * ref["n_folds"] for m in ref["fleetcv_messages"]
    )
    assert "the sequential run's time" in (tmp_path / "BENCHMARKS.md").read_text()
    # Figure 5: every search kind ran to its end and picked a grid candidate.
    sm = r["smarter"]
    assert sm["grid"]["gap"] == 0 and sm["grid"]["fits"] == sm["n_candidates"] * 3
    for kind in ("grid", "halving", "asha", "optuna"):
        k = sm[kind]
        assert k["wall_seconds"] > 0 and k["fits"] > 0, kind
        assert 0 <= k["gap"] < 1 and 0 < k["full_score"] <= 1, kind
    assert "## Smarter searches" in (tmp_path / "BENCHMARKS.md").read_text()
    hosts = ref["hosts"]
    if testcluster.available()[0]:
        # Every namespace host ran tasks of the search, over SSH-started engines.
        assert hosts["wall"] > 0 and hosts["efficiency"] > 0
        assert (
            len(hosts["tasks_per_host"])
            == hosts["hosts"]
            == r["environment"]["engines"]
        )
        assert (
            sum(hosts["tasks_per_host"].values())
            == ref["n_candidates"] * ref["n_folds"]
        )
        assert "namespace hosts over SSH" in (tmp_path / "BENCHMARKS.md").read_text()
    else:
        assert hosts["skipped"]
    assert (
        mem["fit_working_bytes"] > 0 and mem["fleetcv_budget_bytes"] > mem["data_bytes"]
    )
    for side in ("fleetcv", "sklearn_loky"):
        assert mem[side]["peak_sum_pss"] > 0 and mem[side]["samples"], side
    assert mem["data_bytes"] >= 50e6 and mem["pss_ratio_fleetcv_over_loky"] > 0
    assert dis["tasks_per_second"] > 0 and dis["journal_lines"] == dis["n_tasks"]
    threads = r["environment"]["threads"]
    assert threads["fleetcv_engine"] and threads["loky_worker"] is not None
    md = (tmp_path / "BENCHMARKS.md").read_text()
    assert "| reference search wall" in md and "| dispatch" in md
    # The peers beside fleetcv: the reference search and the fixed cost.
    fx, peers = r["fixed_cost"], ref["peers"]
    sides = [peers["fleetcv"], *peers["peers"].values()]
    assert set(peers["peers"]) == set(PEERS)
    for mode in ("warm", "cold"):
        assert set(fx[mode]["peers"]) == set(PEERS), mode
        sides += [fx[mode]["fleetcv"], *fx[mode]["peers"].values()]
    sides += [fx["fleetcv_drawn"], fx["sides"]["fleetcv warm, no warm driver"]]
    assert set(dis["peers"]["peers"]) == set(PEERS)
    assert set(mem["peers"]) == set(PEERS) - {"loky"}
    for name, m in mem["peers"].items():
        assert m["peak_sum_pss"] > 0 and m["samples"], name
    sides += [*dis["peers"]["peers"].values()]
    for side in sides:
        assert side["runs"] and all(math.isfinite(x) and x > 0 for x in side["runs"])
    # Every warm fleetcv search ran in the warm driver's child.
    assert fx["warm_driver_used"] == [True] * fx["rounds"]
    assert "## fleetcv and the tools a user would pick instead" in md
    assert "| ray |" in md and "Target cold <= 3.0 s" in md
    # Figure 7: the controller at scale, every task journaled, dask beside it.
    sc = r["scale"]
    assert sc["fleetcv"] and sc["dask"]
    for row in sc["fleetcv"]:
        assert row["journal_lines"] == row["n_tasks"] == 4 * row["engines"]
        for key in ("efficiency", "tasks_per_second", "idle_engine_pss"):
            assert math.isfinite(row[key]) and row[key] > 0, key
    for name in ("dask", "ray"):
        assert [row["workers"] for row in sc[name]] == [8], name
        assert all(math.isfinite(row["efficiency"]) for row in sc[name]), name
    assert "## The controller at scale" in md and "Target tasks/s ceiling" in md
    # Figure 8: direct vs tunnel, fleetcv's push vs plain rsync, on namespace hosts.
    rm = r["remote"]
    if testcluster.available()[0]:
        t, push = rm["tasks"], rm["push"]
        for side in (t["direct"], t["tunnel"], push["fleetcv"], push["rsync"]):
            assert side["runs"] and all(
                math.isfinite(x) and x > 0 for x in side["runs"]
            )
        assert push["bytes"] >= 20e6 and rm["hosts"] == 3
        assert "## What going through hosts costs" in md
    else:
        assert rm["skipped"]
    assert (tmp_path / "bench.png").stat().st_size > 10_000


def test_a_peer_run_in_this_process_leaves_its_environment_behind_it():
    # dask's LocalCluster sets OMP/MKL/OPENBLAS_NUM_THREADS and PYTHONHASHSEED
    # in os.environ for good; a fleetcv side run after it would differ in its
    # start-up variables from the warm driver, which then declines it.
    from fleetcv.devtools.bench.peers import started

    before = dict(os.environ)
    with started("dask", 1) as backend, backend():
        assert os.environ.get("OMP_NUM_THREADS") == "1"
    assert dict(os.environ) == before

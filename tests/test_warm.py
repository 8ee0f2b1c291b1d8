"""The warm driver: `invoke search` forked from a process with everything imported.

Real processes throughout: `invoke cluster.start` starts the warm driver,
`invoke search` hands its command to it over the Unix socket, the child runs
the search on real engines. Which process ran the search shows in run.lock,
which names the driver's pid: the `invoke` process itself when it ran the
search, another one when the warm driver's child did.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from fleetcv.dispatch import cluster as cl
from fleetcv.dispatch import warm
from fleetcv.spec import load_hosts
from tests.conftest import (
    SLOW_SVC,
    journal_lines,
    popen_invoke,
    rendered,
    run_invoke,
    stop_started,
    user_env,
    wait_gone,
    write_local_hosts,
    write_spec,
)

pytestmark = pytest.mark.cluster

PORTS = [30720, 30759]
TINY = {
    "name": "tiny",
    "estimator": {"class": "sklearn.dummy.DummyClassifier"},
    "params": {"strategy": ["prior", "most_frequent"]},
    "data": {"loader": "sklearn.datasets.load_iris"},
    "cv": {"kind": "kfold", "n_splits": 2},
}


def _warm_pid() -> int:
    """The warm driver's pid, once it accepts commands (its imports take seconds)."""
    return warm.wait_ready(timeout=60)


def _driver_pid(run_dir: Path) -> int:
    return int((run_dir / "run.lock").read_text())


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """One cluster and its warm driver for the module, as `invoke cluster.start` leaves them."""
    tmp = tmp_path_factory.mktemp("warm")
    path = write_local_hosts(tmp / "hosts.yml", tmp, ports=PORTS)
    proc = run_invoke("cluster.start", "--hosts-file", str(path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    try:
        yield str(path)
    finally:
        stop_started(load_hosts(path))


@pytest.fixture
def hosts(cluster):
    """(hosts file, warm driver pid); a warm driver a test before stopped is started again."""
    warm.start()
    return cluster, _warm_pid()


def _search(hosts_file: str, spec: Path, run_dir: Path, env: dict | None = None):
    """`invoke search` to its end: (its pid, exit status, stdout, stderr)."""
    proc = popen_invoke(
        "search", "--spec", str(spec), "--run-dir", str(run_dir),
        "--hosts-file", hosts_file, "--no-progress", env=env,
    )  # fmt: skip
    out, err = proc.communicate(timeout=300)
    return proc.pid, proc.returncode, out, err


def test_a_search_runs_in_the_warm_driver_as_it_runs_in_process(hosts, tmp_path):
    hosts_file, warm_pid = hosts
    spec = write_spec(tmp_path, TINY, "tiny")
    warm_run = tmp_path / "warm"
    pid, code, out, err = _search(hosts_file, spec, warm_run)
    assert code == 0, out + err
    assert "Finished: 100% (004/004)" in out, out
    # Another process than `invoke` ran the search, and it is gone.
    child = _driver_pid(warm_run)
    assert child not in (pid, warm_pid) and not wait_gone([child])

    cold_run = tmp_path / "cold"
    env = {**user_env(), warm.ENV: "0"}
    pid, code, out, err = _search(hosts_file, spec, cold_run, env=env)
    assert code == 0, out + err
    assert _driver_pid(cold_run) == pid
    results = [
        json.loads((d / "results.json").read_text()) for d in (warm_run, cold_run)
    ]
    for key in ("params", "mean_test_score", "split0_test_score", "rank_test_score"):
        assert results[0][key] == results[1][key], key
    for d in (warm_run, cold_run):
        assert (rendered(d) / "report.html").is_file()


def test_a_bad_spec_gets_its_message_and_status_through_the_warm_driver(
    hosts, tmp_path
):
    hosts_file, _ = hosts
    spec = write_spec(tmp_path, {**TINY, "cv": {"kind": "kfold", "n_splits": 1}}, "bad")
    _, code, out, err = _search(hosts_file, spec, tmp_path / "run")
    assert code == 2, out + err
    assert err.strip() == (
        f"error: {spec}: cv.n_splits: expected an integer >= 2, got 1. Fix: write "
        "e.g. n_splits: 5"
    )


def _slow_search(hosts_file: str, tmp_path: Path):
    (tmp_path / "slow.py").write_text(SLOW_SVC)
    spec = write_spec(
        tmp_path,
        {
            **TINY,
            "code": ["slow.py"],
            "estimator": {"class": "slow.SlowSVC"},
            "params": {"C": [0.1 * (i + 1) for i in range(40)]},
            "cv": {"kind": "kfold", "n_splits": 3},
        },
        "slow",
    )
    run_dir = tmp_path / "slow-run"
    proc = popen_invoke(
        "search", "--spec", str(spec), "--run-dir", str(run_dir),
        "--hosts-file", hosts_file, "--no-progress",
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while len(journal_lines(run_dir)) < 4:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no fit journaled after 120 s"
        time.sleep(0.05)
    return proc, run_dir


def test_ctrl_c_reaches_the_warm_drivers_child_and_leaves_a_resumable_run(
    hosts, tmp_path
):
    hosts_file, _ = hosts
    proc, run_dir = _slow_search(hosts_file, tmp_path)
    child = _driver_pid(run_dir)
    assert child != proc.pid
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, out + err
    assert f"Resume with: invoke search --resume {run_dir}" in err, err
    assert not wait_gone([child])
    assert json.loads((run_dir / "meta.json").read_text())["status"] == "aborted"


def test_a_killed_invoke_takes_its_warm_child_with_it(hosts, tmp_path):
    hosts_file, warm_pid = hosts
    proc, run_dir = _slow_search(hosts_file, tmp_path)
    child = _driver_pid(run_dir)
    proc.kill()
    proc.communicate(timeout=30)
    assert not wait_gone([child]), f"the warm driver's child {child} outlived invoke"
    # The warm driver itself goes on serving.
    os.kill(warm_pid, 0)


def test_changed_source_makes_the_warm_driver_step_aside(hosts, tmp_path):
    hosts_file, warm_pid = hosts
    spec = write_spec(tmp_path, TINY, "tiny")
    source = Path(warm.__file__).parent / "warm.py"
    st = source.stat()
    os.utime(source, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    try:
        pid, code, out, err = _search(hosts_file, spec, tmp_path / "run")
    finally:
        os.utime(source, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert code == 0, out + err
    # The search ran in `invoke` itself, and the stale warm driver is gone.
    assert _driver_pid(tmp_path / "run") == pid
    assert not wait_gone([warm_pid])
    assert not warm.paths()[0].exists()


def test_a_run_that_starts_its_own_cluster_leaves_the_warm_driver_running(
    hosts, tmp_path
):
    _, warm_pid = hosts
    other = write_local_hosts(
        tmp_path / "other.yml", tmp_path / "other", ports=[30760, 30799]
    )
    spec = write_spec(tmp_path, TINY, "tiny")
    run_dir = tmp_path / "run"
    pid, code, out, err = _search(str(other), spec, run_dir)
    assert code == 0, out + err
    assert "Finished: 100% (004/004)" in out, out
    # The warm driver's child started that cluster and stopped it, and the
    # warm driver still serves.
    assert _driver_pid(run_dir) != pid
    assert not cl.is_running(load_hosts(other))
    os.kill(warm_pid, 0)
    assert warm.paths()[0].exists()


def test_a_command_killed_by_a_signal_kills_invoke_with_it(hosts, tmp_path):
    hosts_file, _ = hosts
    proc, run_dir = _slow_search(hosts_file, tmp_path)
    child = _driver_pid(run_dir)
    assert child != proc.pid
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    # As an in-process run dies of SIGTERM (the driver does not catch it).
    assert proc.returncode == -signal.SIGTERM
    assert not wait_gone([child])


def test_a_stopped_warm_driver_lets_its_running_command_finish(hosts, tmp_path):
    hosts_file, warm_pid = hosts
    proc, run_dir = _slow_search(hosts_file, tmp_path)
    assert _driver_pid(run_dir) != proc.pid
    assert warm.stop()
    # No new command goes to it; the running one ends with its own status.
    assert not warm.paths()[0].exists()
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, out + err
    assert "Finished: 100% (120/120)" in out, out
    assert not wait_gone([warm_pid])


def test_another_startup_environment_runs_the_command_in_invoke(hosts, tmp_path):
    hosts_file, warm_pid = hosts
    spec = write_spec(tmp_path, TINY, "tiny")
    env = {**user_env(), "PYTHONHASHSEED": "123"}
    pid, code, out, err = _search(hosts_file, spec, tmp_path / "run", env=env)
    assert code == 0, out + err
    # Python read PYTHONHASHSEED as the warm driver started: not this one's.
    assert _driver_pid(tmp_path / "run") == pid
    os.kill(warm_pid, 0)


def test_cluster_stop_stops_the_warm_driver(hosts):
    # Last in the module: it stops the module's cluster.
    hosts_file, warm_pid = hosts
    proc = run_invoke("cluster.stop", "--hosts-file", hosts_file)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not wait_gone([warm_pid])
    assert not any(p.exists() for p in warm.paths())

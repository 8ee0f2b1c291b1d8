"""Shared fixtures: a real local ipyparallel cluster, started and stopped by pid."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from fleetcv.dispatch import cluster as cl
from fleetcv.spec import parse_hosts
from runtime.pids import pid_alive

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REFERENCE_SPEC = os.path.join(REPO, "searches", "digits_svc.yml")
RANDOM_SPEC = os.path.join(REPO, "searches", "digits_svc_random.yml")
#: Tests use their own port range so a developer's running cluster is untouched,
#: below Linux's ephemeral range (32768-60999) so no outgoing connection holds one.
TEST_PORTS = [30000, 30039]


def user_env() -> dict:
    """The environment of a user's shell: this venv first on the PATH, no FLEETCV_HOSTS."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env.pop("FLEETCV_HOSTS", None)
    return env


def run_invoke(*args, timeout=600) -> subprocess.CompletedProcess:
    """`invoke ARGS` in the repository, as a user runs it; output captured."""
    return subprocess.run(
        ["invoke", *args],
        cwd=REPO,
        env=user_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def invoke(*args, timeout=600, check=True) -> subprocess.CompletedProcess:
    """`run_invoke`, asserting success (with the output) unless `check` is False."""
    proc = run_invoke(*args, timeout=timeout)
    if check:
        assert proc.returncode == 0, (
            f"invoke {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def popen_invoke(*args, env: dict | None = None) -> subprocess.Popen:
    """`invoke ARGS` started in the background, output piped (`env`: default the user's)."""
    return subprocess.Popen(
        ["invoke", *args],
        cwd=REPO,
        env=env or user_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def stop_started(cfg) -> None:
    """Stop what `invoke cluster.start` started: the cluster of `cfg` and the warm driver."""
    from fleetcv.dispatch import warm

    try:
        cl.stop(cfg)
    finally:
        warm.stop()


def rendered(run_dir) -> Path:
    """`run_dir` once its background renderer has drawn report.html and the plots."""
    from fleetcv.report import background

    assert background.wait(run_dir, timeout=120), (
        f"{run_dir}: still drawing after 120 s"
    )
    log = Path(run_dir) / background.LOG_FILE
    assert "Traceback" not in log.read_text(), log.read_text()
    return Path(run_dir)


def local_hosts_data(tmp, engines=2, ports=TEST_PORTS, **controller) -> dict:
    """The hosts.yml data of this machine alone, all state under tmp."""
    return {
        "controller": {
            "ip": "127.0.0.1",
            "ports": ports,
            "state_dir": str(tmp / "state"),
            **controller,
        },
        "hosts": [
            {
                "name": "localhost",
                "local": True,
                "engines": engines,
                "workdir": str(tmp / "work"),
            }
        ],
    }


def write_local_hosts(path: Path, tmp, **kwargs) -> Path:
    """`local_hosts_data` written as a hosts file at `path`."""
    path.write_text(yaml.safe_dump(local_hosts_data(tmp, **kwargs)))
    return path


def local_hosts(tmp, engines=2, ports=TEST_PORTS, **controller):
    """A validated hosts config for this machine alone, all state under tmp."""
    return parse_hosts(
        local_hosts_data(tmp, engines, ports, **controller), "<test hosts>"
    )


def wait_gone(pids, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not [p for p in pids if pid_alive(p)]:
            return []
        time.sleep(0.2)
    return [p for p in pids if pid_alive(p)]


@pytest.fixture(scope="session")
def local_cluster(tmp_path_factory):
    """A controller + 2 local engines for the whole session; (cfg, client)."""
    tmp = tmp_path_factory.mktemp("cluster")
    cfg = local_hosts(tmp)
    info = cl.start(cfg)
    pids = [info["controller_pid"], *cl.local_engine_pids(cfg)]
    client = cl.connect(cfg)
    try:
        cl.wait_for_engines(client, 2)
        yield cfg, client
    finally:
        client.close()
        cl.stop(cfg)
        left = wait_gone(pids)
        assert not left, f"processes left behind after cluster.stop: {left}"


@pytest.fixture(scope="module")
def cluster_hosts_file(local_cluster, tmp_path_factory) -> str:
    """A hosts file naming the session's running cluster (so runs reuse it)."""
    cfg, _ = local_cluster
    path = tmp_path_factory.mktemp("hosts") / "hosts.yml"
    return str(write_local_hosts(path, cfg.controller.state_path.parent))


@pytest.fixture(scope="session")
def sklearn_reference():
    """GridSearchCV's cv_results_ on the reference spec's data and folds."""
    import numpy as np
    from sklearn.model_selection import GridSearchCV
    from sklearn.svm import SVC

    from fleetcv.spec import load_data, load_search_spec

    spec = load_search_spec(REFERENCE_SPEC)
    X, y = load_data(spec)
    grid = GridSearchCV(
        SVC(),
        {"C": np.logspace(-1, 2, 4), "gamma": np.logspace(-4, 0, 5)},
        cv=spec.cv.splitter(),
        return_train_score=True,
        n_jobs=2,
    ).fit(X, y)
    return grid


def require_testcluster() -> None:
    """Skip (or, with FLEETCV_REQUIRE_CLUSTER=1 as in CI, fail) without namespace hosts."""
    from fleetcv.devtools import testcluster

    ok, reason = testcluster.available()
    if not ok:
        if os.environ.get("FLEETCV_REQUIRE_CLUSTER") == "1":
            pytest.fail(
                f"multi-host test cluster required (FLEETCV_REQUIRE_CLUSTER=1) but unavailable: {reason}"
            )
        pytest.skip(f"multi-host test cluster unavailable: {reason}")


#: The Python that namespace hosts make their venv with.
HOST_PYTHON = (
    "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
)


def write_namespace_hosts(
    path: Path,
    state: dict,
    tmp: Path,
    ports,
    engines=1,
    names=None,
    extra=(),
    top=None,
) -> str:
    """A hosts file for the namespace hosts of `state` (testcluster.up), at `path`.

    Its controller listens on the bridge at `ports`, its state under `tmp`;
    `names` picks some of the hosts, `extra` adds host entries as they are,
    `top` adds top-level keys (host_keys, known_hosts).
    """
    hosts = [
        {
            "name": h["name"],
            "address": h["address"],
            "engines": engines,
            "workdir": h["workdir"],
            "python": HOST_PYTHON,
            "ssh_key": h["key"],
        }
        for h in state["hosts"]
        if names is None or h["name"] in names
    ]
    data = {
        "ssh_config": state["ssh_config"],
        "controller": {
            "ip": state["bridge_ip"],
            "ports": list(ports),
            "state_dir": str(tmp / "controller"),
        },
        "hosts": hosts + list(extra),
        **(top or {}),
    }
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


def random_spec_reference(n_iter: int):
    """RandomizedSearchCV on RANDOM_SPEC's data, folds and distributions, fitted."""
    from scipy import stats
    from sklearn.model_selection import RandomizedSearchCV

    from fleetcv.spec import load_data, load_search_spec

    spec = load_search_spec(RANDOM_SPEC, n_iter=n_iter)
    X, y = load_data(spec)
    return RandomizedSearchCV(
        spec.estimator.build(),
        {
            "svc__C": stats.loguniform(1e-1, 1e2),
            "svc__gamma": stats.loguniform(1e-4, 1),
        },
        n_iter=n_iter,
        random_state=0,
        cv=spec.cv.splitter(),
        n_jobs=1,
    ).fit(X, y)


def write_spec(tmp_path: Path, spec: dict, name: str) -> Path:
    """`spec` (a dict) written as tmp_path/<name>.yml, named `name`."""
    path = tmp_path / f"{name}.yml"
    path.write_text(yaml.safe_dump({"name": name, **spec}, sort_keys=False))
    return path


#: A module with an SVC whose fit takes 50 ms longer (a spec's code:), so
#: that a run lasts long enough for a test to kill its driver.
SLOW_SVC = '''
import time

from sklearn.svm import SVC


class SlowSVC(SVC):
    """An SVC whose fit takes 50 ms longer: a run lasts long enough to be killed."""

    def fit(self, X, y, sample_weight=None):
        time.sleep(0.05)
        return super().fit(X, y, sample_weight=sample_weight)
'''


def journal_lines(run_dir) -> list[dict]:
    """The journal's records so far (none before it exists)."""
    path = run_dir / "journal.jsonl"
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    # The last line may be half written while the driver runs.
    return [json.loads(x) for x in lines if x.endswith("}")]


def slow_run_killed(tmp_path: Path, spec: dict, hosts_file: str, ready) -> Path:
    """`invoke search` of `spec` with a SlowSVC, its driver SIGKILLed once `ready(records)`.

    The estimator becomes `SLOW_SVC`'s (a code: module in tmp_path) so the
    run lasts long enough; the run must still be going when `ready` holds
    (else the test could not kill it where it means to): asserted. Returns
    the run directory; `resume` finishes it.
    """
    (tmp_path / "slow.py").write_text(SLOW_SVC)
    slow = {**spec, "code": ["slow.py"], "estimator": {"class": "slow.SlowSVC"}}
    path = write_spec(tmp_path, slow, "killed")
    run_dir = tmp_path / "run-killed"
    proc = popen_invoke(
        "search", "--spec", str(path), "--run-dir", str(run_dir),
        "--hosts-file", hosts_file, "--no-progress",
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            if ready(journal_lines(run_dir)):
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the run ended before the point it was to be killed"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.communicate(timeout=60)
    return run_dir


def resume(run_dir: Path, hosts_file: str) -> subprocess.CompletedProcess:
    """`invoke search --resume RUN_DIR` on `hosts_file`'s cluster, asserting success."""
    return invoke(
        "search", "--resume", str(run_dir), "--hosts-file", hosts_file,
        "--no-progress", timeout=600,
    )  # fmt: skip


def in_iteration(i: int):
    """A `slow_run_killed` condition: some record of iteration (rung) `i` is in."""
    return lambda records: any(r.get("row", {}).get("iter") == i for r in records)


def rows_finished(n: int, n_folds: int = 3):
    """A `slow_run_killed` condition: `n` rows have every fold journaled."""

    def ready(records) -> bool:
        per_row: dict = {}
        for r in records:
            per_row[r["candidate"]] = per_row.get(r["candidate"], 0) + 1
        return sum(1 for v in per_row.values() if v == n_folds) >= n

    return ready

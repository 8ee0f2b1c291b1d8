"""Faults on a real local cluster: engine loss, client loss + resume, Ctrl-C, abort, CurveZMQ.

Every test starts its own controller and engines on its own port range (see
PORTS_*), kills real processes with real signals, and checks by pid that
nothing it started is left afterwards. Run with `pytest -s` to see timings.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
from sklearn.datasets import make_classification
from sklearn.model_selection import GridSearchCV, ShuffleSplit
from sklearn.svm import SVC

from fleetcv.dispatch import cluster as cl
from fleetcv.dispatch.search import DistributedSearch
from fleetcv.rundir import journal as jn
from fleetcv.spec import load_data, load_search_spec
from runtime.folds import persist_splits
from tests.conftest import (
    REFERENCE_SPEC,
    REPO,
    SLOW_SVC,
    journal_lines,
    local_hosts,
    pid_alive,
    popen_invoke,
    wait_gone,
    write_local_hosts,
    write_spec,
)

pytestmark = pytest.mark.cluster

#: Port ranges, one per test: away from the other modules' (55000-57999), and
#: below the kernel's ephemeral ports (32768-60999 here), where a passing
#: connection (or an engine nanny's random port, 49152+) can hold a port of
#: the range just when a controller binds it: seen at 58160, "Address already
#: in use".
PORTS_ENGINE_LOSS = [31000, 31039]
PORTS_CLIENT_LOSS = [31040, 31079]
PORTS_CTRL_C = [31080, 31119]
PORTS_ABORT = [31120, 31159]
PORTS_CURVE = [31160, 31199]
PORTS_BUSY = [31200, 31239]
PORTS_ALL_LOST = [31280, 31319]
#: The reference grid: 20 candidates x 5 folds.
N_TASKS = 100


# ------------------------------------------------------------------- helpers


def _score_keys(grid) -> list[str]:
    return [
        k for k in grid.cv_results_ if k.endswith("_score") and not k.startswith("rank")
    ]


@pytest.fixture(scope="module")
def reference():
    """GridSearchCV on the reference spec's own folds: the numbers to match."""
    spec = load_search_spec(REFERENCE_SPEC)
    X, y = load_data(spec)
    grid = GridSearchCV(
        spec.estimator.build(),
        {"C": np.logspace(-1, 2, 4), "gamma": np.logspace(-4, 0, 5)},
        cv=spec.cv.splitter(),
        return_train_score=True,
        n_jobs=2,
    ).fit(X, y)
    assert [dict(p) for p in grid.cv_results_["params"]] == spec.candidates()
    return grid


def _assert_equals_reference(results: dict, grid) -> None:
    for key in _score_keys(grid):
        np.testing.assert_allclose(
            results[key], grid.cv_results_[key], rtol=0, atol=1e-12, err_msg=key
        )
    assert results["rank_test_score"] == grid.cv_results_["rank_test_score"].tolist()


@pytest.fixture
def step():
    """step(msg) prints msg with the seconds since the test began (pytest -s)."""
    t0 = time.monotonic()
    return lambda msg: print(f"[{time.monotonic() - t0:5.1f} s] {msg}", flush=True)


def _tree_pids(pids) -> list[int]:
    """The given pids and all their descendants (nannies, controller children)."""
    out = set()
    for pid in pids:
        try:
            p = psutil.Process(pid)
            out.add(pid)
            out.update(c.pid for c in p.children(recursive=True))
        except psutil.NoSuchProcess:
            pass
    return sorted(out)


class Cluster:
    """A controller + local engines for one test; stop() checks every pid is gone."""

    def __init__(self, cfg):
        self.cfg = cfg
        try:
            self.info = cl.start(cfg)
        except BaseException:
            cl.stop(cfg)  # a controller whose engines failed must not linger
            raise
        self.pids = _tree_pids(
            [self.info["controller_pid"], *cl.local_engine_pids(cfg)]
        )

    def stop(self) -> None:
        # Processes forked later (e.g. by engines) are found again here.
        pids = set(self.pids) | set(
            _tree_pids([self.info["controller_pid"], *cl.local_engine_pids(self.cfg)])
        )
        cl.stop(self.cfg)
        left = wait_gone(pids, timeout=30)
        assert not left, f"processes left behind after cluster.stop: {left}"


def _start(tmp_path, ports, engines, **controller) -> Cluster:
    return Cluster(local_hosts(tmp_path, engines=engines, ports=ports, **controller))


def _wait_for(cond, timeout, what, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _journal_lines(run_dir: Path) -> int:
    p = run_dir / jn.JOURNAL
    if not p.exists():
        return 0
    return p.read_bytes().count(b"\n")


def _pairs(records) -> list[tuple[int, int]]:
    return [(r["candidate"], r["fold"]) for r in records]


def _splits(spec, cfg):
    X, y = load_data(spec)
    return persist_splits(
        X, y, spec.cv.splitter(), spec.cv.as_dict(), cfg.local_host.workdir_path
    )


def _queued(client) -> int:
    """Tasks waiting on the controller (not yet running on an engine)."""
    qs = client.queue_status()
    return qs.get("unassigned", 0) + sum(
        v.get("queue", 0) for v in qs.values() if isinstance(v, dict)
    )


def _wait_idle(client, timeout=60.0) -> None:
    """Until no task is queued or running on any engine (the dead client's leftovers)."""

    def idle():
        qs = client.queue_status()
        unassigned = qs.get("unassigned", 0)
        busy = sum(
            v.get("queue", 0) + v.get("tasks", 0)
            for v in qs.values()
            if isinstance(v, dict)
        )
        return unassigned == 0 and busy == 0

    _wait_for(idle, timeout, "the engines to drain", interval=0.2)


# ---------------------------------------------------------------- engine loss


def test_sigkill_of_a_busy_engine_loses_no_task_and_no_score(tmp_path, reference, step):
    cluster = _start(tmp_path, PORTS_ENGINE_LOSS, engines=3)
    step("cluster up")
    try:
        client = cl.connect(cluster.cfg)
        try:
            cl.wait_for_engines(client, 3)
            pids = {eid: client[eid].apply_sync(os.getpid) for eid in client.ids}
            # The engine reports its own pid: the process under the nanny.
            assert set(pids.values()) == set(cl.local_engine_pids(cluster.cfg))
            spec = load_search_spec(REFERENCE_SPEC)
            split = _splits(spec, cluster.cfg)
            run_dir = tmp_path / "run"
            search = DistributedSearch(
                client.load_balanced_view(),
                spec.estimator.build(),
                candidates=spec.candidates(),
                run_dir=run_dir,
            )
            # With timings, as a second run of the spec: tasks go longest
            # first, several to a message, and a lost message is retried.
            timings = reference.cv_results_
            expected = {
                c: float(timings["mean_fit_time"][c] + timings["mean_score_time"][c])
                for c in range(len(timings["params"]))
            }
            search.launch(split, expected_times=expected)
            assert search.n_messages < N_TASKS
            _wait_for(lambda: search.n_done >= 10, 60, "10 finished tasks")

            def busy_engine():
                qs = client.queue_status()
                busy = [e for e in pids if qs.get(e, {}).get("tasks", 0)]
                return busy[:1]  # [0] is true, engine id 0 is not

            (victim,) = _wait_for(busy_engine, 30, "an engine running a task")
            done_at_kill = search.n_done
            os.kill(pids[victim], signal.SIGKILL)
            killed_at = time.monotonic()
            _wait_for(
                lambda: search.counters["lost engines"] >= 1,
                30,
                "the search to notice the lost engine",
            )
            noticed = time.monotonic() - killed_at
            assert search.wait(timeout=120), "the search did not finish"
            assert victim not in client.ids
        finally:
            client.close()

        assert search.status == "finished" and search.n_done == N_TASKS
        assert done_at_kill < N_TASKS
        assert search.counters["lost engines"] == 1
        assert search.counters["retried tasks"] >= 1
        assert search.counters["task errors"] == 0
        records = jn.read_journal(run_dir / jn.JOURNAL)
        # One record per (candidate, fold), all scored: nothing lost, nothing twice.
        assert len(records) == N_TASKS
        assert sorted(_pairs(records)) == [(c, k) for c in range(20) for k in range(5)]
        assert all(r["status"] == "ok" for r in records)
        retried = [r for r in records if r["attempt"] >= 1]
        assert retried and all(r["engine"] != victim for r in retried)
        # A lost message's tasks come back one per message, so the retries
        # spread over the engines left instead of landing on one at the end.
        assert len({r["message"] for r in retried}) == len(retried)
        results = json.loads((run_dir / jn.RESULTS).read_text())
        assert results["status"] == "finished" and results["n_done"] == N_TASKS
        assert results["counters"]["lost engines"] == 1
        _assert_equals_reference(results, reference)
        step(
            f"engine {victim} killed at {done_at_kill}/100, noticed after {noticed:.1f} s"
        )
    finally:
        cluster.stop()
        step("cluster stopped")


# ------------------------------------------------------- the CLI in a process


def _hosts_file(tmp_path: Path, ports, engines=2):
    """hosts.yml for this machine alone, state under tmp_path; (path, cfg)."""
    path = write_local_hosts(
        tmp_path / "hosts.yml", tmp_path, engines=engines, ports=ports
    )
    return path, local_hosts(tmp_path, engines=engines, ports=ports)


def _invoke(tmp_path: Path, name: str, *args: str) -> subprocess.Popen:
    """`invoke ARGS` from the repository, output to tmp_path/NAME.{out,err}."""
    env = dict(os.environ)
    bindir = os.path.dirname(sys.executable)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    env.pop("FLEETCV_HOSTS", None)
    out = open(tmp_path / f"{name}.out", "w")  # noqa: SIM115 - closed by _finish
    err = open(tmp_path / f"{name}.err", "w")  # noqa: SIM115 - closed by _finish
    proc = subprocess.Popen(
        [os.path.join(bindir, "invoke"), *args],
        cwd=REPO,
        env=env,
        stdout=out,
        stderr=err,
        stdin=subprocess.DEVNULL,
    )
    proc._fleetcv_files = (out, err)
    return proc


def _finish(proc: subprocess.Popen, timeout: float) -> tuple[int, str]:
    """Wait for the process; its exit code and output (stdout + stderr)."""
    try:
        rc = proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for f in proc._fleetcv_files:
            f.close()
    out, err = (Path(f.name).read_text() for f in proc._fleetcv_files)
    return rc, out + err


def _search(tmp_path, name, hosts, run_dir, *extra):
    return _invoke(
        tmp_path,
        name,
        "search",
        "--spec",
        "searches/digits_svc.yml",
        "--hosts-file",
        str(hosts),
        "--run-dir",
        str(run_dir),
        "--no-progress",
        "--keep-cluster",
        *extra,
    )


def _resume(tmp_path, name, hosts, run_dir):
    return _invoke(
        tmp_path,
        name,
        "search",
        "--resume",
        str(run_dir),
        "--hosts-file",
        str(hosts),
        "--no-progress",
    )


def _wait_journal(proc, run_dir: Path, lines: int, timeout=120.0) -> None:
    def ready():
        if proc.poll() is not None:
            raise AssertionError(f"the search exited early ({proc.returncode})")
        return _journal_lines(run_dir) >= lines

    _wait_for(ready, timeout, f"{lines} journal lines", interval=0.02)


def _resume_and_check(tmp_path, hosts, run_dir, client, reference, before: int, step):
    """Resume once the engines are idle; the resume runs exactly the missing tasks."""
    _wait_idle(client)
    step("engines idle")
    rc, out = _finish(_resume(tmp_path, "resume", hosts, run_dir), timeout=180)
    step("resume finished")
    assert rc == 0, out
    return _check_resumed(run_dir, reference, before, out)


def _check_resumed(run_dir, reference, before: int, out: str) -> list[dict]:
    """The resume ran exactly the missing tasks, and the run equals GridSearchCV."""
    assert f"({before} already in the journal)" in out, out
    records = jn.read_journal(run_dir / jn.JOURNAL)
    new = records[before:]
    assert len(new) == N_TASKS - before, "the resume ran only the missing tasks"
    assert len([r for r in records if r["status"] == "ok"]) == N_TASKS
    assert set(_pairs(records)) == {(c, k) for c in range(20) for k in range(5)}
    assert len(set(_pairs(records))) == len(records) == N_TASKS
    results = json.loads((run_dir / jn.RESULTS).read_text())
    assert results["status"] == "finished" and results["n_done"] == N_TASKS
    _assert_equals_reference(results, reference)
    assert json.loads((run_dir / jn.META).read_text())["status"] == "finished"
    assert (run_dir / jn.REPORT).read_text().startswith("Finished: 100% (100/100)")
    return records


# ------------------------------------------------------------ client loss


def test_sigkill_of_the_client_then_resume_runs_only_the_missing_tasks(
    tmp_path, reference, step
):
    hosts, cfg = _hosts_file(tmp_path, PORTS_CLIENT_LOSS)
    cluster = Cluster(cfg)
    step("cluster up")
    try:
        run_dir = tmp_path / "run"
        proc = _search(tmp_path, "search", hosts, run_dir)
        try:
            _wait_journal(proc, run_dir, 10)
        finally:
            proc.send_signal(signal.SIGKILL)
            rc, out = _finish(proc, timeout=30)
        step(f"client killed after {_journal_lines(run_dir)} journal lines")
        assert rc == -signal.SIGKILL, out
        records = jn.read_journal(run_dir / jn.JOURNAL)
        before = len(records)
        assert 10 <= before < N_TASKS
        assert len(set(_pairs(records))) == before
        meta = json.loads((run_dir / jn.META).read_text())
        assert meta["status"] == "running" and not pid_alive(meta["driver_pid"])
        client = cl.connect(cfg)
        try:
            queued = _queued(client)
            step(f"{queued} tasks of the dead client still queued")
            assert queued > 0, "the test needs orphans for the resume to cancel"
            # No _wait_idle here: the resume itself must cancel the orphans.
            rc, out = _finish(_resume(tmp_path, "resume", hosts, run_dir), timeout=300)
            step("resume finished")
            assert rc == 0, out
            cancelled = re.search(
                r"cancelled (\d+) tasks that the run's previous driver", out
            )
            assert cancelled, out
            # Those still queued when the resume looked (a few more may have
            # started on an engine meanwhile, and finish for nobody).
            assert 0 < int(cancelled.group(1)) <= queued
            _check_resumed(run_dir, reference, before, out)
        finally:
            client.close()
    finally:
        cluster.stop()
        step("cluster stopped")


def _strict_journal(run_dir: Path) -> list[dict]:
    """Every line of the journal, each one a complete JSON object."""
    lines = (run_dir / jn.JOURNAL).read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert all(isinstance(r, dict) for r in records)
    return records


def _assert_aborted(run_dir: Path, out: str) -> list[dict]:
    assert f"Resume with: invoke search --resume {run_dir}" in out, out
    meta = json.loads((run_dir / jn.META).read_text())
    results = json.loads((run_dir / jn.RESULTS).read_text())
    assert meta["status"] == "aborted" and results["status"] == "aborted"
    records = _strict_journal(run_dir)
    pairs = _pairs(records)
    assert 10 <= len(pairs) < N_TASKS and len(set(pairs)) == len(pairs)
    assert all(r["status"] == "ok" for r in records)
    assert results["n_done"] == len(pairs)
    report = (run_dir / jn.REPORT).read_text()
    assert report.startswith(f"Aborted at: {len(pairs):02d}% ({len(pairs):03d}/100)"), (
        report
    )
    return records


# ------------------------------------------------------------------ Ctrl-C


def test_ctrl_c_aborts_keeps_a_consistent_run_and_resume_completes(
    tmp_path, reference, step
):
    hosts, cfg = _hosts_file(tmp_path, PORTS_CTRL_C)
    cluster = Cluster(cfg)
    step("cluster up")
    try:
        run_dir = tmp_path / "run"
        proc = _search(tmp_path, "search", hosts, run_dir)
        try:
            _wait_journal(proc, run_dir, 10)
            proc.send_signal(signal.SIGINT)
            step("SIGINT sent")
        finally:
            rc, out = _finish(proc, timeout=60)
        step(f"search exited {rc}")
        assert rc == 130, out
        assert "interrupted: cancelling queued tasks" in out
        before = len(_assert_aborted(run_dir, out))
        client = cl.connect(cfg)
        try:
            # Ctrl-C cancelled the queued tasks: nothing is left to drain.
            assert _queued(client) == 0
            _resume_and_check(tmp_path, hosts, run_dir, client, reference, before, step)
        finally:
            client.close()
    finally:
        cluster.stop()
        step("cluster stopped")


# ------------------------------------------------------------ search.abort


def test_search_abort_from_another_process_stops_the_search(tmp_path, step):
    hosts, cfg = _hosts_file(tmp_path, PORTS_ABORT)
    cluster = Cluster(cfg)
    step("cluster up")
    try:
        run_dir = tmp_path / "run"
        proc = _search(tmp_path, "search", hosts, run_dir)
        try:
            _wait_journal(proc, run_dir, 10)
            meta = json.loads((run_dir / jn.META).read_text())
            assert meta["status"] == "running" and meta["driver_pid"] == proc.pid
            rc2, out2 = _finish(
                _invoke(tmp_path, "abort", "search.abort", "--run-dir", str(run_dir)),
                timeout=60,
            )
            step(f"search.abort exited {rc2}")
        finally:
            rc, out = _finish(proc, timeout=60)
        step(f"search exited {rc}")
        assert rc2 == 0, out2
        assert f"{run_dir}: aborted. Resume with: invoke search --resume" in out2
        assert rc == 130, out
        _assert_aborted(run_dir, out)
        client = cl.connect(cfg)
        try:
            assert _queued(client) == 0
        finally:
            client.close()
        # A second abort finds nothing running, and says so.
        rc3, out3 = _finish(
            _invoke(tmp_path, "abort2", "search.abort", "--run-dir", str(run_dir)),
            timeout=60,
        )
        assert rc3 == 1 and "no search is running there" in out3, out3
    finally:
        cluster.stop()
        step("cluster stopped")


# --------------------------------------------------------------- CurveZMQ

_NO_CURVE_CLIENT = """
import sys, ipyparallel as ipp
try:
    c = ipp.Client(sys.argv[1], timeout=5)
    print("connected", c.ids, flush=True)
    print("ran", c.load_balanced_view().apply_async(lambda: 42).get(timeout=5))
except Exception as exc:
    print("failed:", type(exc).__name__, exc)
    sys.exit(3)
"""


def test_curve_encrypts_and_a_client_without_the_key_cannot_run_tasks(tmp_path, step):
    cfg = local_hosts(tmp_path, engines=2, ports=PORTS_CURVE, curve=True)
    cluster = Cluster(cfg)
    step("cluster up")
    try:
        efile, cfile = cl.engine_connection_file(cfg), cl.client_connection_file(cfg)
        for f in (efile, cfile):
            assert f.stat().st_mode & 0o777 == 0o600, f
            info = json.loads(f.read_text())
            assert info["curve_serverkey"] and len(info["curve_serverkey"]) == 40
            # ipyparallel drops HMAC signing under CurveZMQ (key ""): the
            # server key is then what lets a party in, so it is the secret.
            assert info["key"] == ""
        secret = json.loads(cfile.read_text())["curve_serverkey"]
        # The other files next to them (the cluster file is 0644) do not hold it.
        for f in efile.parent.iterdir():
            if f not in (efile, cfile):
                assert secret not in f.read_text(), f
        assert (
            "--IPController.enable_curve=True"
            in psutil.Process(cluster.info["controller_pid"]).cmdline()
        )

        client = cl.connect(cfg)
        try:
            cl.wait_for_engines(client, 2)
            assert client.curve_serverkey  # this client talks CurveZMQ
            X, y = make_classification(n_samples=200, n_features=8, random_state=0)
            cv = ShuffleSplit(3, test_size=0.25, random_state=0)
            split = persist_splits(
                X, y, cv, {"t": "curve"}, cfg.local_host.workdir_path
            )
            search = DistributedSearch(
                client.load_balanced_view(),
                SVC(),
                {"C": [0.1, 1.0, 10.0]},
                run_dir=tmp_path / "run",
            )
            assert search.launch(split).wait(timeout=60)
            assert search.status == "finished" and search.n_done == 9
            grid = GridSearchCV(
                SVC(), {"C": [0.1, 1.0, 10.0]}, cv=cv, return_train_score=True
            ).fit(X, y)
            _assert_equals_reference(search.results_, grid)
            step("search over CurveZMQ finished")
        finally:
            client.close()

        # The same connection file without the server key: plain ZMQ, refused.
        info = json.loads(cfile.read_text())
        info["curve_serverkey"] = None
        bad = tmp_path / "no-curve-client.json"
        bad.write_text(json.dumps(info))
        bad.chmod(0o600)
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("IPP_ENABLE_CURVE", "IPP_CURVE_SERVERKEY")
        }
        proc = subprocess.run(
            [sys.executable, "-c", _NO_CURVE_CLIENT, str(bad)],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        step(f"the client without the curve key gave up: {proc.stdout.strip()}")
        assert proc.returncode == 3, proc.stdout + proc.stderr
        assert "ran 42" not in proc.stdout and "failed:" in proc.stdout
        # ...while the cluster still serves clients that have the key.
        client = cl.connect(cfg)
        try:
            assert client[:].apply_sync(lambda: 42) == [42, 42]
        finally:
            client.close()
    finally:
        cluster.stop()
        step("cluster stopped")


# ------------------------------------------------------------- a busy port


def _processes_on(ports) -> list[int]:
    """Pids of processes started for this port range (by their command line)."""
    tag = f"--ports={ports[0]}-{ports[1]}"
    pids = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        if tag in (p.info["cmdline"] or []) and pid_alive(p.info["pid"]):
            pids.append(p.info["pid"])
    return pids


@pytest.mark.parametrize(
    "offset, precheck",
    [(0, True), (5, True), (0, False)],
    ids=["hub-port", "heartbeat-port", "hub-port-taken-after-the-check"],
)
def test_a_busy_controller_port_fails_fast_and_says_why(
    tmp_path, monkeypatch, offset, precheck
):
    # Port 0 is the hub's own (the controller exits); port 5 is bound by its
    # heartbeat process (the controller stays, but no engine can register).
    if not precheck:
        # As if the port were taken between the check and the bind.
        monkeypatch.setattr(cl, "_busy_ports", lambda ip, ports: [])
    cfg = local_hosts(tmp_path, engines=1, ports=PORTS_BUSY)
    port = PORTS_BUSY[0] + offset
    started = time.monotonic()
    try:
        with socket.socket() as squatter:
            squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            squatter.bind(("127.0.0.1", port))
            squatter.listen()
            with pytest.raises(cl.ClusterError) as exc:
                cl.start(cfg)
        took = time.monotonic() - started
    finally:
        cl.stop(cfg)
    msg = str(exc.value)
    if precheck:
        assert f"port {port} of [31200, 31239] is already in use" in msg, msg
    else:
        assert f"Address already in use (addr='tcp://127.0.0.1:{port}')" in msg, msg
        assert "controller.ports [31200, 31239]" in msg, msg
    assert "ip_local_port_range" in msg
    assert took < 20, f"start took {took:.0f} s to give up"
    assert not cl.is_running(cfg)
    assert not wait_gone(_processes_on(PORTS_BUSY))


# ---------------------------------------------------------------- every engine lost


def test_every_engine_lost_is_a_host_error_exit_1_and_the_run_resumes(tmp_path, step):
    """All engines SIGKILLed mid-search: exit 1 (the hosts' fault, not the
    user's), the message says so and how to resume, and the resume completes
    every (candidate, fold) once."""
    hosts = write_local_hosts(
        tmp_path / "hosts.yml", tmp_path, engines=2, ports=PORTS_ALL_LOST
    )
    cfg = local_hosts(tmp_path, engines=2, ports=PORTS_ALL_LOST)
    (tmp_path / "slow.py").write_text(SLOW_SVC)
    spec = write_spec(
        tmp_path,
        {
            "code": ["slow.py"],
            "estimator": {"class": "slow.SlowSVC"},
            "params": {"C": [0.1, 1, 10, 100], "gamma": [0.001, 0.01, 0.1]},
            "data": {"loader": "sklearn.datasets.load_digits"},
            "cv": {"kind": "kfold", "n_splits": 3, "random_state": 0},
        },
        "lost",
    )
    run_dir = tmp_path / "run"
    args = ["--hosts-file", str(hosts), "--no-progress"]
    proc = popen_invoke("search", "--spec", str(spec), "--run-dir", str(run_dir), *args)
    try:
        _wait_for(lambda: journal_lines(run_dir), 120, "a first journaled fit")
        step("first fit journaled")
        engines = cl.local_engine_pids(cfg)
        assert len(engines) == 2, engines
        for pid in engines:
            os.kill(pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=180)
    finally:
        proc.kill()
    step("search ended")
    assert proc.returncode == 1, (out, err)
    assert "error: every engine is gone" in err, err
    assert f"Resume with: invoke search --resume {run_dir}" in err, err
    assert json.loads((run_dir / "meta.json").read_text())["status"] != "finished"
    # The cluster it started is stopped with it; the resume starts another.
    res = subprocess.run(
        ["invoke", "search", "--resume", str(run_dir), *args],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    step("resumed")
    assert res.returncode == 0, (res.stdout, res.stderr)
    pairs = _pairs(journal_lines(run_dir))
    assert len(pairs) == len(set(pairs)) == 12 * 3

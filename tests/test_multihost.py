"""fleetcv over real SSH: 3 network-namespace hosts with their own sshd, IP and disk.

Everything goes through the user's commands (`invoke ...` in a subprocess):
offline install from a wheelhouse, cluster start, push, search, grow while a
search runs, status, stop (checked by pid), and the failures a user meets
(unreachable host, refused login, missing workdir, a command failing on one
host). The namespace hosts have no route beyond their bridge, so the install
can only succeed offline.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import psutil
import pytest
import yaml

from fleetcv.dispatch import cluster as cl
from fleetcv.spec import load_hosts
from tests.conftest import (
    HOST_PYTHON,
    REPO,
    invoke,
    pid_alive,
    popen_invoke,
    require_testcluster,
    stop_started,
    wait_gone,
    write_namespace_hosts,
)

pytestmark = [pytest.mark.cluster, pytest.mark.multihost]

PREFIX, SUBNET = "fmh", "10.204.0"
PORTS = [30200, 30239]


SLEEPY_SVC = '''
import time

from sklearn.svm import SVC


class SleepySVC(SVC):
    """An SVC whose fit takes 0.2 s longer: its scores are SVC's."""

    def fit(self, X, y, sample_weight=None):
        time.sleep(0.2)
        return super().fit(X, y, sample_weight=sample_weight)
'''


def search_until(hosts: str, run_dir: Path, lines: int, spec: Path | None = None):
    """`invoke search` in the background until its journal has `lines` records; (proc, journal)."""
    search = popen_invoke(
        "search", "--hosts-file", hosts, "--run-dir", str(run_dir), "--no-progress",
        *(["--spec", str(spec)] if spec else []),
    )  # fmt: skip
    journal = run_dir / "journal.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (
        not journal.exists() or len(journal.read_text().splitlines()) < lines
    ):
        assert search.poll() is None, search.communicate()
        time.sleep(0.2)
    return search, journal


def write_hosts(path: Path, state: dict, tmp: Path, names=None, extra=(), top=None):
    return write_namespace_hosts(
        path, state, tmp, PORTS, names=names, extra=extra, top=top
    )


@pytest.fixture(scope="module")
def mh(tmp_path_factory):
    require_testcluster()
    from fleetcv.devtools import testcluster

    tmp = tmp_path_factory.mktemp("multihost")
    state = testcluster.up(3, tmp / "tc", prefix=PREFIX, subnet=SUBNET)
    try:
        all3 = write_hosts(tmp / "hosts3.yml", state, tmp)
        first2 = write_hosts(tmp / "hosts2.yml", state, tmp, names={"fmh1", "fmh2"})
        yield {
            "state": state,
            "tmp": tmp,
            "all3": all3,
            "first2": first2,
            "disks": {h["name"]: Path(h["disk"]) for h in state["hosts"]},
        }
    finally:
        cfg = load_hosts(tmp / "hosts3.yml")
        if cl.is_running(cfg):
            stop_started(cfg)
        testcluster.down(state)


def test_install_is_offline_and_skipped_when_up_to_date(mh):
    out = invoke("hosts.install", "--hosts-file", mh["all3"]).stdout
    for name in ("fmh1", "fmh2", "fmh3"):
        assert (
            f"[{name}] installed into /srv/fleetcv/venv offline from the wheelhouse"
            in out
        ), out
    # Each host's own disk got its own venv.
    for disk in mh["disks"].values():
        assert (disk / "venv" / "bin" / "python").exists()
    out = invoke("hosts.install", "--hosts-file", mh["all3"]).stdout
    assert out.count("venv up to date (same requirements), nothing installed") == 3, out
    out = invoke(
        "hosts.run",
        "/srv/fleetcv/venv/bin/python -c 'import sklearn, ipyparallel; print(sklearn.__version__)'",
        "--hosts-file",
        mh["all3"],
    ).stdout
    import sklearn

    assert out.count(f"] {sklearn.__version__}") == 3, out


def test_push_search_and_grow_while_running(mh, sklearn_reference):
    disks = mh["disks"]
    invoke("cluster.start", "--hosts-file", mh["first2"])
    # Push to the two hosts of the cluster; each disk holds its own copy.
    out = invoke("data.push", "--hosts-file", mh["first2"]).stdout
    assert out.count("checked by rsync") == 2, out
    (digest,) = [p.name for p in (disks["fmh1"] / "splits").iterdir()]
    assert [p.name for p in (disks["fmh2"] / "splits").iterdir()] == [digest]
    assert not (disks["fmh3"] / "splits").exists()
    assert not Path("/srv/fleetcv/splits").exists(), (
        "splits leaked to the real filesystem"
    )
    # A second push transfers nothing.
    out = invoke("data.push", "--hosts-file", mh["first2"]).stdout
    assert out.count("already there and verified, 0 bytes sent") == 2, out

    run_dir = mh["tmp"] / "runs" / "grown"
    # The reference search with fits 0.2 s longer (same scores): it must
    # outlast grow's push and SSH engine start, whatever the machine's load.
    grow_dir = mh["tmp"] / "grow-spec"
    grow_dir.mkdir(exist_ok=True)
    (grow_dir / "sleepysvc.py").write_text(SLEEPY_SVC)
    spec = yaml.safe_load(Path(REPO, "searches", "digits_svc.yml").read_text())
    spec["code"] = ["sleepysvc.py"]
    spec["estimator"] = {"class": "sleepysvc.SleepySVC", "params": {}}
    (grow_dir / "grow.yml").write_text(yaml.safe_dump(spec))
    search, journal = search_until(mh["first2"], run_dir, 5, grow_dir / "grow.yml")
    # grow pushes the running search's folds to the new host, then starts its engine.
    grow = invoke(
        "cluster.grow",
        "--hosts-file",
        mh["all3"],
        "--only",
        "fmh3",
        "--runs-root",
        str(run_dir.parent),
    )
    assert f"[fmh3] {digest}: pushed" in grow.stdout and "[fmh3] 1" in grow.stdout, (
        grow.stdout
    )
    out, err = search.communicate(timeout=600)
    assert search.returncode == 0, out + err
    assert "Finished: 100% (100/100)" in out

    res = json.loads((run_dir / "results.json").read_text())
    ref = sklearn_reference.cv_results_
    for key in (
        "mean_test_score",
        "std_test_score",
        "mean_train_score",
        "std_train_score",
    ):
        np.testing.assert_allclose(res[key], ref[key], rtol=0, atol=1e-12, err_msg=key)
    hosts = Counter(res[f"split{k}_host"][c] for k in range(5) for c in range(20))
    assert set(hosts) == {"fmh1", "fmh2", "fmh3"}, hosts
    assert hosts["fmh3"] > 0, "the host added by cluster.grow received no task"
    # Every host has its own copy of the folds, none shared with another.
    inodes = {
        name: (d / "splits" / digest / "fold_000.pkl").stat().st_ino
        for name, d in disks.items()
    }
    assert len(set(inodes.values())) == 3


def test_a_frame_search_with_two_metrics_runs_and_refits_on_the_hosts(mh):
    """A DataFrame with strings, categories and NaN, pushed, searched and refit over SSH."""
    from fleetcv.spec import load_dataset, load_search_spec
    from tests.reference import (
        CHURN_DATA,
        LOGREG,
        PREP,
        assert_equals_reference,
        reference,
    )

    spec_file = mh["tmp"] / "frame.yml"
    spec_file.write_text(
        yaml.safe_dump(
            {
                "name": "frame",
                "estimator": {"pipeline": [PREP, LOGREG]},
                "params": {"clf__C": [0.1, 1.0]},
                "data": {**CHURN_DATA, "groups": "account"},
                "fit_params": {"clf__sample_weight": {"column": "weight"}},
                "cv": {
                    "class": "sklearn.model_selection.StratifiedGroupKFold",
                    "params": {"n_splits": 3, "shuffle": True, "random_state": 0},
                },
                "scoring": ["roc_auc", "accuracy"],
                "refit": "accuracy",
            },
            sort_keys=False,
        )
    )
    run_dir = mh["tmp"] / "runs" / "frame"
    # The cluster of the grow test still runs: the engines of all three hosts.
    out = invoke(
        "search",
        "--spec",
        str(spec_file),
        "--hosts-file",
        mh["all3"],
        "--run-dir",
        str(run_dir),
        "--no-progress",
        "--keep-cluster",
    ).stdout
    assert "Ranked by accuracy; also roc_auc:" in out, out
    refit_host = re.search(
        r"refit: candidate \d+ on all the data in [\d.]+ s on (\S+),", out
    )
    assert refit_host and refit_host.group(1) in {"fmh1", "fmh2", "fmh3"}, out
    res = json.loads((run_dir / "results.json").read_text())
    hosts = {res[f"split{k}_host"][c] for k in range(3) for c in range(2)}
    assert hosts <= {"fmh1", "fmh2", "fmh3"} and len(hosts) >= 2, hosts
    # Each host holds the whole data set for the refit, verified with the folds.
    digest = json.loads((run_dir / "meta.json").read_text())["split_digest"]
    for disk in mh["disks"].values():
        assert (disk / "splits" / digest / "data.pkl").is_file()
    spec = load_search_spec(spec_file)
    grid = reference(spec, scoring=spec.scoring, refit="accuracy")
    assert_equals_reference(spec, run_dir, grid, load_dataset(spec).X)


def test_a_users_own_classes_lambdas_and_modules_run_on_the_hosts(mh, tmp_path):
    """A script's __main__ class, a lambda, its metric and an uninstalled module's scorer."""
    from tests.test_search_cv import own_code

    # The cluster of the grow test still runs: the engines of all three hosts.
    got = own_code(mh["all3"], tmp_path)
    assert got["max_diff"] <= 1e-12 and got["same_best"] and got["same_predictions"]
    assert got["refit_class"] is True
    assert set(got["hosts"]) <= {"fmh1", "fmh2", "fmh3"} and got["hosts"], got


def test_a_specs_own_code_is_pushed_and_imported_on_the_hosts(mh, tmp_path):
    """code: [userfeat/]: a transformer and a scorer by import path, on the hosts' engines."""
    from tests.test_user_code import check_equals_gridsearchcv, write_project

    spec = write_project(tmp_path / "project", 1)
    run_dir = tmp_path / "runs" / "code"
    out = invoke(
        "search",
        "--spec",
        str(spec),
        "--hosts-file",
        mh["all3"],
        "--run-dir",
        str(run_dir),
        "--no-progress",
        "--keep-cluster",
    ).stdout
    digest = json.loads((run_dir / "meta.json").read_text())["code"]["digest"]
    for name, disk in mh["disks"].items():
        assert f"[{name}] {digest}: pushed" in out, out
        assert (disk / "code" / digest / "userfeat" / "metrics.py").is_file()
    res = check_equals_gridsearchcv(spec, run_dir)
    hosts = {res[f"split{k}_host"][c] for k in range(3) for c in range(4)}
    assert hosts <= {"fmh1", "fmh2", "fmh3"} and len(hosts) >= 2, hosts


def test_requirements_are_installed_on_the_hosts_once_and_used(mh, tmp_path):
    """requirements: [a wheel built here]: installed offline on each host, then skipped."""
    import subprocess
    import sys

    from tests.test_user_code import (
        check_equals_gridsearchcv,
        make_wheel,
        requirements_spec,
    )

    wheel = make_wheel(tmp_path / "wheels")
    pip = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]
    # This machine builds the estimator, so it has the package too (removed after).
    subprocess.run([*pip, "install", "--no-deps", "--no-index", str(wheel)], check=True)
    try:
        spec = requirements_spec(tmp_path, wheel)
        common = ("--hosts-file", mh["all3"], "--no-progress", "--keep-cluster")
        first = tmp_path / "runs" / "reqs1"
        out = invoke("search", "--spec", str(spec), "--run-dir", str(first), *common)
        for name, disk in mh["disks"].items():
            assert f"[{name}] requirements installed: {wheel.name}" in out.stdout, out
            assert list(
                (disk / "venv").glob("lib/python*/site-packages/fleetcv_extra_demo")
            )
        res = check_equals_gridsearchcv(spec, first)
        assert {res["split0_host"][c] for c in range(2)} <= {"fmh1", "fmh2", "fmh3"}
        second = tmp_path / "runs" / "reqs2"
        out = invoke("search", "--spec", str(spec), "--run-dir", str(second), *common)
        assert "requirements installed" not in out.stdout, out.stdout
    finally:
        subprocess.run([*pip, "uninstall", "-y", "fleetcv_extra_demo"], check=False)


def test_status_then_stop_leaves_no_process(mh):
    out = invoke("cluster.status", "--hosts-file", mh["all3"]).stdout
    for name in ("fmh1", "fmh2", "fmh3"):
        assert f"{name}: 1 engines registered, 1 running" in out, out
    engine_pids = [
        int(p)
        for d in mh["disks"].values()
        for p in (d / "engines.pids").read_text().split()
    ]
    cfg = load_hosts(mh["all3"])
    controller_pid = cl._from_file(cfg).controller.pid
    assert len(engine_pids) == 3 and all(pid_alive(p) for p in engine_pids)
    invoke("cluster.stop", "--hosts-file", mh["all3"])
    assert wait_gone([*engine_pids, controller_pid]) == []
    # Nothing but sshd runs inside the hosts any more.
    for h in mh["state"]["hosts"]:
        pids = subprocess.run(
            ["ip", "netns", "pids", h["netns"]], capture_output=True, text=True
        ).stdout.split()
        left = [p for p in pids if pid_alive(int(p)) and int(p) != h["sshd_pid"]]
        assert left == [], (h["name"], left)


def test_losing_a_whole_host_mid_search_loses_no_fit(mh, sklearn_reference):
    """Every process of one host dies (a reclaimed spot instance): the search still ends exact."""
    invoke("cluster.start", "--hosts-file", mh["all3"])
    try:
        run_dir = mh["tmp"] / "runs" / "hostloss"
        search, journal = search_until(mh["all3"], run_dir, 10)
        victim = next(h for h in mh["state"]["hosts"] if h["name"] == "fmh2")
        pids = subprocess.run(
            ["ip", "netns", "pids", victim["netns"]], capture_output=True, text=True
        ).stdout.split()
        killed = [
            int(p) for p in pids if int(p) != victim["sshd_pid"] and pid_alive(int(p))
        ]
        assert killed, "no engine was running on the victim host"
        for p in killed:
            os.kill(p, 9)
        out, err = search.communicate(timeout=600)
        assert search.returncode == 0, out + err
        assert "Finished: 100% (100/100)" in out and "lost engines" in out, out
        records = [json.loads(line) for line in journal.read_text().splitlines()]
        ok = [(r["candidate"], r["fold"]) for r in records if r["status"] == "ok"]
        assert len(ok) == 100 and len(set(ok)) == 100, (
            "every (candidate, fold) exactly once"
        )
        res = json.loads((run_dir / "results.json").read_text())
        assert res["counters"]["lost engines"] >= 1
        ref = sklearn_reference.cv_results_
        for key in ("mean_test_score", "std_test_score"):
            np.testing.assert_allclose(
                res[key], ref[key], rtol=0, atol=1e-12, err_msg=key
            )
    finally:
        invoke("cluster.stop", "--hosts-file", mh["all3"], check=False)


def test_a_workdir_with_spaces_and_a_semicolon_works_end_to_end(mh, sklearn_reference):
    """Every remote path is quoted: start, push (rsync), search and stop in such a workdir."""
    odd = "/srv/fleetcv/odd dir; touch INJECTED"
    hosts = yaml.safe_load(Path(mh["first2"]).read_text())
    for h in hosts["hosts"]:
        h["workdir"] = odd
        # No venv in this workdir: the hosts share this machine's filesystem,
        # so the test's own interpreter has every package.
        h["python"] = sys.executable
    path = mh["tmp"] / "hosts-odd.yml"
    path.write_text(yaml.safe_dump(hosts, sort_keys=False))
    run_dir = mh["tmp"] / "runs" / "odd"
    proc = invoke(
        "search", "--hosts-file", str(path), "--run-dir", str(run_dir), "--no-progress"
    )
    assert "Finished: 100% (100/100)" in proc.stdout, proc.stdout
    res = json.loads((run_dir / "results.json").read_text())
    ref = sklearn_reference.cv_results_
    for key in ("mean_test_score", "std_test_score"):
        np.testing.assert_allclose(res[key], ref[key], rtol=0, atol=1e-12, err_msg=key)
    hosts_used = {res[f"split{k}_host"][c] for k in range(5) for c in range(20)}
    assert hosts_used == {"fmh1", "fmh2"}
    for name in ("fmh1", "fmh2"):
        disk = mh["disks"][name]
        # The folds landed inside the odd directory, on each host's own disk...
        assert list(
            (disk / "odd dir; touch INJECTED" / "splits").glob("*/fold_000.pkl")
        )
        # ...and no shell ever ran the part after the semicolon.
        assert not list(disk.rglob("INJECTED"))
    assert not (Path.home() / "INJECTED").exists()
    assert not (Path(REPO) / "INJECTED").exists()


def _tunnel_records(cfg) -> str:
    """What explains an unrecognised tunnel: its records, and the ssh -N processes that run."""
    from fleetcv.backends import ssh

    folder = cfg.controller.state_path / "tunnels"
    lines = [f"{f.name}: {f.read_text().strip()}" for f in sorted(folder.glob("*"))]
    for proc in psutil.process_iter(["pid", "name", "cmdline"]):
        cmd = proc.info["cmdline"] or []
        if proc.info["name"] == "ssh" and "-N" in cmd:
            with contextlib.suppress(psutil.Error):
                lines.append(f"ssh pid {proc.pid} {ssh._started(proc.pid)}")
    return "\n".join(lines)


def test_a_tunnel_reaches_a_controller_on_this_machines_loopback(mh, sklearn_reference):
    """A laptop behind NAT: the hosts cannot reach its address, SSH tunnels carry the engines."""
    from fleetcv.backends import ssh

    hosts = yaml.safe_load(Path(mh["first2"]).read_text())
    # The hosts' network namespaces have their own loopback: 127.0.0.1 of
    # this machine is out of their reach, like a laptop behind NAT.
    hosts["controller"]["ip"] = "127.0.0.1"
    plain = mh["tmp"] / "hosts-loopback.yml"
    plain.write_text(yaml.safe_dump(hosts, sort_keys=False))
    proc = invoke("cluster.start", "--hosts-file", str(plain), check=False)
    assert proc.returncode == 2  # bad input, like every configuration error
    assert re.search(
        r"controller\.ip: 127\.0\.0\.1 is this machine's loopback address, which "
        r"fmh1, fmh2 cannot reach\. Fix: .* or tunnel: true",
        proc.stderr,
    ), proc.stderr
    cfg = load_hosts(plain)
    assert not cl.is_running(cfg)

    hosts["controller"]["tunnel"] = True
    path = mh["tmp"] / "hosts-tunnel.yml"
    path.write_text(yaml.safe_dump(hosts, sort_keys=False))
    cfg = load_hosts(path)
    out = invoke("cluster.start", "--hosts-file", str(path)).stdout
    tunnels = {}
    try:
        tunnels = {h.name: ssh.tunnel_pid(h, cfg) for h in cfg.remote_hosts}
        assert all(tunnels.values()), (tunnels, _tunnel_records(cfg))
        for name in ("fmh1", "fmh2"):
            assert f"[{name}] 1" in out, out
            info = json.loads(
                (
                    mh["disks"][name] / "security" / "ipcontroller-engine.json"
                ).read_text()
            )
            assert info["interface"] == "tcp://127.0.0.1", info
        status = invoke("cluster.status", "--hosts-file", str(path)).stdout
        for name, pid in tunnels.items():
            assert (
                f"{name}: 1 engines registered, 1 running, tunnel up (ssh pid {pid})"
                in status
            ), status
        run_dir = mh["tmp"] / "runs" / "tunnel"
        proc = invoke(
            "search",
            "--hosts-file",
            str(path),
            "--run-dir",
            str(run_dir),
            "--no-progress",
        )
        assert "Finished: 100% (100/100)" in proc.stdout, proc.stdout
        res = json.loads((run_dir / "results.json").read_text())
        ref = sklearn_reference.cv_results_
        for key in ("mean_test_score", "std_test_score"):
            np.testing.assert_allclose(
                res[key], ref[key], rtol=0, atol=1e-12, err_msg=key
            )
        assert {res[f"split{k}_host"][c] for k in range(5) for c in range(20)} == {
            "fmh1",
            "fmh2",
        }
        # A tunnel that dies (the laptop slept) shows in the status.
        os.kill(tunnels["fmh2"], 9)
        assert wait_gone([tunnels["fmh2"]]) == []
        status = invoke("cluster.status", "--hosts-file", str(path)).stdout
        line = next(x for x in status.splitlines() if x.startswith("fmh2:"))
        assert "tunnel DOWN: its engines cannot reach the controller" in line, status
        assert "cluster.grow --only fmh2" in line, status
    finally:
        stop = invoke("cluster.stop", "--hosts-file", str(path), check=False)
    assert stop.returncode == 0, stop.stdout + stop.stderr
    assert "[fmh1] 1 engines stopped, tunnel closed" in stop.stdout, stop.stdout
    assert wait_gone(list(tunnels.values())) == []


def test_a_tunnel_whose_ports_are_taken_on_a_host_fails_that_host_only(mh):
    from fleetcv.backends import ssh

    hosts = yaml.safe_load(Path(mh["first2"]).read_text())
    hosts["controller"].update(ip="127.0.0.1", tunnel=True)
    path = mh["tmp"] / "hosts-tunnel-busy.yml"
    path.write_text(yaml.safe_dump(hosts, sort_keys=False))
    cfg = load_hosts(path)
    spec = {h.name: h for h in cfg.remote_hosts}
    fmh1 = next(h for h in mh["state"]["hosts"] if h["name"] == "fmh1")
    # Another program on fmh1 (say, another user's cluster) listens on every
    # controller port of its loopback.
    squatter = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            fmh1["netns"],
            sys.executable,
            "-c",
            "import socket, sys, time\n"
            "held = []\n"
            f"for p in range({PORTS[0]}, {PORTS[1] + 1}):\n"
            "    s = socket.socket()\n"
            # As sshd does: connections of the test before linger in TIME_WAIT.
            "    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
            "    s.bind(('127.0.0.1', p)); s.listen(); held.append(s)\n"
            "print('ready', flush=True); time.sleep(600)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert squatter.stdout.readline().strip() == "ready"
        proc = invoke("cluster.start", "--hosts-file", str(path), check=False)
        out = proc.stdout + proc.stderr
        assert "[fmh1] FAILED: the SSH tunnel to the controller ended" in out, out
        assert "is taken on the host" in out, out
        assert "[fmh2] 1" in out, out
        assert "engines did not start on fmh1" in out, out
        # The failed host's ssh is gone, not left running detached.
        assert ssh.tunnel_pid(spec["fmh1"], cfg) is None
        assert ssh.tunnel_pid(spec["fmh2"], cfg) is not None
    finally:
        invoke("cluster.stop", "--hosts-file", str(path), check=False)
        squatter.kill()
        squatter.wait()
    assert ssh.tunnel_pid(spec["fmh2"], cfg) is None


def test_failures_name_the_host_and_the_others_complete(mh):
    state, tmp = mh["state"], mh["tmp"]
    fmh = {h["name"]: h for h in state["hosts"]}
    bad = [
        {"name": "ghost", "address": "root@127.0.0.1:1", "workdir": "/srv/fleetcv"},
        {
            "name": "stranger",
            "address": f"nosuchuser@{fmh['fmh2']['ip']}",
            "workdir": "/srv/fleetcv",
            "ssh_key": fmh["fmh2"]["key"],
        },
    ]
    hosts = write_hosts(tmp / "bad.yml", state, tmp, names={"fmh1"}, extra=bad)
    proc = invoke("hosts.run", "echo hello", "--hosts-file", hosts, check=False)
    assert proc.returncode == 1
    assert "[fmh1] hello" in proc.stdout
    assert (
        "[ghost] FAILED: unreachable: cannot connect to root@127.0.0.1:1" in proc.stdout
    ), proc.stdout
    assert (
        "[stranger] FAILED: SSH authentication refused for nosuchuser@" in proc.stdout
    ), proc.stdout
    assert "the command failed on ghost, stranger" in proc.stderr

    # The right user with a key the host does not know. No ssh_config here:
    # the test cluster's names the right key for every host address.
    wrong_key = tmp / "wrong_key"
    if not wrong_key.exists():
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(wrong_key)],
            check=True,
        )
    hosts = tmp / "wrongkey.yml"
    hosts.write_text(
        yaml.safe_dump(
            {
                "controller": {"ip": state["bridge_ip"], "ports": PORTS},
                "known_hosts": state["known_hosts"],
                "hosts": [
                    {
                        "name": "wrongkey",
                        "address": fmh["fmh2"]["address"],
                        "workdir": "/srv/fleetcv",
                        "ssh_key": str(wrong_key),
                    }
                ],
            }
        )
    )
    proc = invoke("hosts.run", "echo hello", "--hosts-file", str(hosts), check=False)
    assert proc.returncode == 1
    assert "[wrongkey] FAILED: SSH authentication refused for " in proc.stdout, (
        proc.stdout
    )

    # A host whose disk has no (and cannot get a) workdir, beside a good one.
    nodisk = {
        **write_spec_host(fmh["fmh3"]),
        "name": "nodisk",
        "workdir": "/proc/fleetcv",
    }
    hosts = write_hosts(tmp / "nodisk.yml", state, tmp, names={"fmh1"}, extra=[nodisk])
    proc = invoke("data.push", "--hosts-file", hosts, check=False)
    assert proc.returncode == 1
    # (pushed now, or already there when earlier tests of the module ran)
    assert re.search(
        r"\[fmh1\] \w+: (pushed|already there and verified)", proc.stdout
    ), proc.stdout
    # The one message names the host, the directory and the shell's own reason.
    assert re.search(
        r"\[nodisk\] FAILED: cannot create /proc/fleetcv/splits/\w+: "
        r"mkdir: cannot create directory '/proc/fleetcv'.*"
        r"fix: give host 'nodisk' a workdir its user can write",
        proc.stdout,
    ), proc.stdout

    # A command that fails on one host of three: the other two still answer.
    for name in ("fmh1", "fmh2"):
        (mh["disks"][name] / "marker").write_text(f"marker of {name}\n")
    proc = invoke(
        "hosts.run", "cat /srv/fleetcv/marker", "--hosts-file", mh["all3"], check=False
    )
    assert proc.returncode == 1
    assert (
        "[fmh1] marker of fmh1" in proc.stdout
        and "[fmh2] marker of fmh2" in proc.stdout
    )
    assert (
        "[fmh3] FAILED: exit 1: cat: /srv/fleetcv/marker: No such file or directory"
        in proc.stdout
    ), proc.stdout


def write_spec_host(h: dict) -> dict:
    return {
        "address": h["address"],
        "engines": 1,
        "python": HOST_PYTHON,
        "ssh_key": h["key"],
    }


def test_host_keys_are_recorded_on_first_contact_and_a_changed_one_is_refused(mh):
    """accept-new records a new host; strict refuses it; a changed key stops that host only."""
    from fleetcv.devtools import testcluster

    state, tmp = mh["state"], mh["tmp"]
    # host -> "type base64" (the cluster's lines also carry a comment)
    known = {
        line.split()[0]: " ".join(line.split()[1:3])
        for line in Path(state["known_hosts"]).read_text().splitlines()
    }
    fmh = {h["name"]: h for h in state["hosts"]}
    two = {"fmh1", "fmh2"}

    # accept-new (the default): a known_hosts that does not exist yet.
    tofu = tmp / "keys" / "tofu_known_hosts"
    hosts = write_hosts(
        tmp / "tofu.yml", state, tmp, names=two, top={"known_hosts": str(tofu)}
    )
    proc = invoke("hosts.run", "echo hello", "--hosts-file", hosts)
    assert proc.stderr.count("fleetcv: recorded the host key of") == 2, proc.stderr
    recorded = dict(line.split(None, 1) for line in tofu.read_text().splitlines())
    assert recorded == {fmh[n]["ip"]: known[fmh[n]["ip"]] for n in two}
    proc = invoke("hosts.run", "echo hello", "--hosts-file", hosts)
    assert "recorded the host key" not in proc.stderr
    assert len(tofu.read_text().splitlines()) == 2

    # strict: a host not in known_hosts is refused, nothing recorded.
    empty = tmp / "keys" / "empty_known_hosts"
    empty.write_text("")
    hosts = write_hosts(
        tmp / "strict.yml",
        state,
        tmp,
        names={"fmh1"},
        top={"known_hosts": str(empty), "host_keys": "strict"},
    )
    proc = invoke("hosts.run", "echo hello", "--hosts-file", hosts, check=False)
    assert proc.returncode == 1
    assert re.search(
        rf"\[fmh1\] FAILED: the host key of {fmh['fmh1']['ip']} \(ssh-ed25519 "
        rf"SHA256:\S+\) is not in {empty}, and hosts.yml says host_keys: strict",
        proc.stdout,
    ), proc.stdout
    assert empty.read_text() == ""

    # fmh2 is reinstalled: a new host key between two commands.
    marker = "/srv/fleetcv/rekey-marker"
    for name in two:
        (mh["disks"][name] / "rekey-marker").unlink(missing_ok=True)
    new_line = testcluster.rekey(state, "fmh2")
    try:
        hosts = write_hosts(
            tmp / "tofu.yml", state, tmp, names=two, top={"known_hosts": str(tofu)}
        )
        proc = invoke(
            "hosts.run", f"touch {marker}", "--hosts-file", hosts, check=False
        )
        assert proc.returncode == 1
        ip = fmh["fmh2"]["ip"]
        old_fp = subprocess.run(
            ["ssh-keygen", "-lf", "-"],
            input=f"{ip} {known[ip]}\n",
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()[1]
        assert (
            f"[fmh2] FAILED: HOST KEY CHANGED for {ip}: {tofu} has ssh-ed25519 {old_fp}, "
            "the host offered ssh-ed25519 SHA256:" in proc.stdout
        ), proc.stdout
        assert f"ssh-keygen -R '{ip}' -f {tofu}" in proc.stdout
        # Nothing was sent to fmh2; fmh1 ran the command; the old key stays.
        assert (mh["disks"]["fmh1"] / "rekey-marker").exists()
        assert not (mh["disks"]["fmh2"] / "rekey-marker").exists()
        assert tofu.read_text().count(ip) == 1 and known[ip] in tofu.read_text()
        # rsync (OpenSSH) under the same policy is refused too.
        proc = invoke("data.push", "--hosts-file", hosts, check=False)
        assert proc.returncode == 1 and "[fmh2] FAILED: HOST KEY CHANGED" in proc.stdout
    finally:
        # The rest of the module knows the host by its new key.
        lines = Path(state["known_hosts"]).read_text().splitlines()
        Path(state["known_hosts"]).write_text(
            "\n".join(
                new_line if ln.startswith(f"{fmh['fmh2']['ip']} ") else ln
                for ln in lines
            )
            + "\n"
        )


def test_a_fold_damaged_on_a_host_is_detected_and_pushed_again(mh):
    hosts = mh["all3"]
    invoke("data.push", "--hosts-file", hosts)
    folds = sorted((mh["disks"]["fmh3"] / "splits").glob("*/fold*"))
    assert folds, "no fold on fmh3 after a push"
    fold = folds[0]
    whole = fold.read_bytes()
    fold.write_bytes(whole[: len(whole) // 2])
    out = invoke("data.push", "--hosts-file", hosts).stdout
    digest = fold.parent.name
    # The damaged copy fails its sha256 check: pushed again, checked by rsync.
    assert re.search(rf"\[fmh3\] {digest}: pushed [\d.]+ MB, checked by rsync", out), (
        out
    )
    assert re.search(rf"\[fmh1\] {digest}: already there and verified", out), out
    assert fold.read_bytes() == whole
    # Damage that keeps the size and the time (a flipped byte) is what rsync's
    # quick check would skip: the push compares every file's content.
    stat = fold.stat()
    damaged = bytearray(whole)
    damaged[len(damaged) // 2] ^= 0xFF
    fold.write_bytes(bytes(damaged))
    os.utime(fold, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    out = invoke("data.push", "--hosts-file", hosts).stdout
    assert re.search(rf"\[fmh3\] {digest}: pushed [\d.]+ MB, checked by rsync", out), (
        out
    )
    assert fold.read_bytes() == whole


def test_a_host_cut_off_for_40_s_rejoins_and_serves_tasks_again(mh, tmp_path):
    """fmh2's network goes down for 40 s mid-search: its engine is restarted when it is back."""
    from sklearn.model_selection import GridSearchCV

    from fleetcv.spec import load_data, load_search_spec

    spec = yaml.safe_load(Path(REPO, "searches", "digits_svc.yml").read_text())
    spec["cv"]["n_splits"] = 50  # 1000 fits: long enough to outlast the cut
    spec_path = tmp_path / "long.yml"
    spec_path.write_text(yaml.safe_dump(spec))
    hosts = mh["all3"]
    invoke("cluster.start", "--hosts-file", hosts)
    victim = next(h for h in mh["state"]["hosts"] if h["name"] == "fmh2")
    link = ["ip", "-n", victim["netns"], "link", "set", "eth0"]
    try:
        run_dir = mh["tmp"] / "runs" / "rejoin"
        search = popen_invoke(
            "search",
            "--spec",
            str(spec_path),
            "--hosts-file",
            hosts,
            "--run-dir",
            str(run_dir),
            "--no-progress",
        )
        journal = run_dir / "journal.jsonl"
        deadline = time.monotonic() + 120
        while not journal.exists() or len(journal.read_text().splitlines()) < 10:
            assert search.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        subprocess.run([*link, "down"], check=True)
        time.sleep(40)
        subprocess.run([*link, "up"], check=True)
        back = time.time()
        out, err = search.communicate(timeout=900)
        assert search.returncode == 0, out + err
        assert (
            "fmh2: answers again: its old engines stopped, 1 engine(s) started" in err
        ), err
        records = [json.loads(line) for line in journal.read_text().splitlines()]
        ok = Counter(
            (r["candidate"], r["fold"]) for r in records if r["status"] == "ok"
        )
        assert len(ok) == 1000 and set(ok.values()) == {1}, "every pair exactly once"
        after = [r for r in records if r.get("host") == "fmh2" and r["started"] > back]
        assert after, "fmh2's new engine served no task after it came back"
        status = invoke("cluster.status", "--hosts-file", hosts).stdout
        assert "hosts that came back (last rejoins):" in status, status
        assert "fmh2: 1 engines registered, 1 running" in status, status
        loaded = load_search_spec(spec_path)
        X, y = load_data(loaded)
        # Against scikit-learn on five folds fmh2's new engine served and the
        # first five (each pair ran once, checked above): all 50 would refit
        # 1000 SVCs on this machine's two cores for nothing more.
        folds = sorted(set(sorted({r["fold"] for r in after})[:5]) | set(range(5)))
        splits = list(loaded.cv.splitter().split(X, y))
        ref = GridSearchCV(
            loaded.estimator.build(),
            {"C": np.logspace(-1, 2, 4), "gamma": np.logspace(-4, 0, 5)},
            cv=[splits[k] for k in folds],
            n_jobs=2,
        ).fit(X, y)
        res = json.loads((run_dir / "results.json").read_text())
        for i, k in enumerate(folds):
            np.testing.assert_allclose(
                res[f"split{k}_test_score"],
                ref.cv_results_[f"split{i}_test_score"],
                rtol=0,
                atol=1e-12,
                err_msg=f"fold {k}",
            )
    finally:
        subprocess.run([*link, "up"], check=False)
        invoke("cluster.stop", "--hosts-file", hosts, check=False)

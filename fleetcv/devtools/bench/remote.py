"""Figure 8: what going through hosts costs, on three namespace hosts of this machine.

Runs on the laptop, as root, on the network-namespace test cluster of
`fleetcv.devtools.testcluster` (own sshd, address and disk per host). Two
measurements, each against what a user could do instead:

- **Per-task cost, direct against tunnel**: the same tiny tasks (one per
  message) on one engine per host, once with the controller on the bridge
  address the hosts reach (a head node), once on this machine's loopback
  with `tunnel: true` (a laptop behind NAT: every engine message crosses
  an `ssh -R`).
- **Pushing the folds**: a 200 MB split (the data and three folds; 20 MB
  when quick) to the three hosts' own disks with fleetcv's push (one SSH
  command per host: is a verified copy there already; then rsync over the
  cluster's SSH, in parallel), against plain `rsync -a` of the same
  directory to the same hosts, also three in parallel. Interleaved rounds, the hosts' copies removed before each.

The backends (`fleetcv.backends.Backends`) are passed in by the `bench` task.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

from fleetcv.devtools import testcluster
from fleetcv.devtools.bench.hosts import (
    BENCH_HOST_PORTS,
    Remote,
    namespace_hosts,
    unavailable,
)
from fleetcv.devtools.bench.peers import spread
from fleetcv.devtools.bench.searches import fleet_search, journal
from fleetcv.devtools.testcluster.settings import WORKDIR
from fleetcv.dispatch import cluster as cl
from fleetcv.spec import parse_hosts
from runtime.folds import SPLITS_SUBDIR, persist_splits

#: Namespace hosts of this figure (apart from the tests' fmh/fcv and the
#: reference's fbn).
REMOTE_PREFIX, REMOTE_SUBNET, REMOTE_HOSTS = "fbr", "10.206.0", 3
#: Tiny tasks per timed run: (full, quick).
REMOTE_TASKS = (600, 150)
#: Rows of 100 float64 features in the pushed split (written 4 times: the data
#: and 3 folds): 200 MB (full), 20 MB (quick).
PUSH_ROWS = (62_500, 6_250)
#: Timed rounds of each side: (full, quick).
ROUNDS = (3, 1)
#: Seconds a plain rsync may take before the bench gives up on it.
RSYNC_TIMEOUT = 600.0


def bench_remote(quick: bool, work: Path, log, remote: Remote | None = None) -> dict:
    """Figure 8: per-task cost direct vs tunnel, and the push against plain rsync.

    Parameters
    ----------
    quick : bool
        Fewer tasks, a 20 MB split, one round.
    work : Path
        Scratch directory.
    log : callable
        Progress lines.
    remote : Remote, optional
        The backends (`fleetcv.backends.Backends`). None: not run.

    Returns
    -------
    dict
        `hosts`, `tasks` (direct and tunnel: spreads of seconds per task,
        `ratio` tunnel / direct) and `push` (fleetcv and rsync: spreads of
        seconds, `bytes`, `ratio` fleetcv / rsync); or `{"skipped": reason}`.
    """
    skipped = unavailable("remote", remote, log)
    if skipped:
        return skipped
    log(f"remote: {REMOTE_HOSTS} namespace hosts, direct vs tunnel, push vs rsync")
    with namespace_hosts(
        REMOTE_HOSTS, work / "testcluster-remote", REMOTE_PREFIX, REMOTE_SUBNET
    ) as state:
        tasks = {
            mode: _task_rounds(state, mode, quick, work, remote, log)
            for mode in ("direct", "tunnel")
        }
        push = _push_rounds(state, quick, work, remote, log)
    return {
        "hosts": REMOTE_HOSTS,
        "tasks": {
            "n_tasks": REMOTE_TASKS[quick],
            **tasks,
            "ratio": tasks["tunnel"]["median"] / tasks["direct"]["median"],
        },
        "push": push,
    }


def _config(state: dict, work: Path, tunnel: bool):
    """The hosts' config: controller on the bridge (direct) or on loopback, tunneled."""
    data = yaml.safe_load(testcluster.hosts_yml(state, python=sys.executable))
    data["controller"].update(
        ports=list(BENCH_HOST_PORTS),
        state_dir=str((work / "remote-state").resolve()),
    )
    if tunnel:
        data["controller"].update(ip="127.0.0.1", tunnel=True)
    return parse_hosts(data, "<bench remote>")


def _task_rounds(state, mode: str, quick: bool, work: Path, remote, log) -> dict:
    """Seconds per tiny task on one engine per host, each task its own message."""
    from sklearn.dummy import DummyClassifier
    from sklearn.model_selection import ShuffleSplit

    n_tasks = REMOTE_TASKS[quick]
    rng = np.random.RandomState(0)
    X, y = rng.rand(200, 5), rng.randint(0, 2, 200)
    splitter = ShuffleSplit(n_splits=1, random_state=0)
    split = persist_splits(X, y, splitter, {"bench": "remote"}, work / "remote-stage")
    cfg = _config(state, work, tunnel=mode == "tunnel")
    cands = [{"strategy": "prior"}] * n_tasks
    cl.start(cfg, n_local=0)
    client, runs = None, []
    try:
        client = cl.connect(cfg)
        _ok(remote.start_engines(cfg, cfg.remote_hosts), "engines did not start")
        cl.wait_for_engines(client, REMOTE_HOSTS)
        _ok(remote.push_splits(cfg, split.path, cfg.remote_hosts), "push failed")
        view = client.load_balanced_view()
        # Untimed: every engine imports scikit-learn and maps the fold once.
        fleet_search(view, DummyClassifier(), cands[:30], split, work / "runs", mode)
        for _ in range(ROUNDS[quick]):
            t = time.perf_counter()
            # No expected durations: one task per message, as a search's
            # first run sends them, so each pays the network's round trip.
            s = fleet_search(view, DummyClassifier(), cands, split, work / "runs", mode)
            runs.append((time.perf_counter() - t) / n_tasks)
            if len(journal(s)) != n_tasks:
                raise RuntimeError(f"{mode}: {len(journal(s))} of {n_tasks} tasks ran")
    finally:
        if client is not None:
            client.close()
        remote.stop_engines(cfg, cfg.remote_hosts)
        cl.stop(cfg)
    log(f"remote: {mode} {1000 * min(runs):.2f} ms per task (best of {len(runs)})")
    return spread(runs)


def _push_rounds(state: dict, quick: bool, work: Path, remote, log) -> dict:
    """The push of a split to every host, fleetcv against plain parallel rsync."""
    from sklearn.model_selection import ShuffleSplit

    rng = np.random.RandomState(0)
    rows = PUSH_ROWS[quick]
    X, y = rng.rand(rows, 100), rng.randint(0, 2, rows)
    split = persist_splits(
        X, y, ShuffleSplit(n_splits=3, random_state=0), {"bench": "push"},
        work / "remote-stage",
    )  # fmt: skip
    size = sum(p.stat().st_size for p in Path(split.path).rglob("*") if p.is_file())
    cfg = _config(state, work, tunnel=False)
    sides: dict[str, list[float]] = {"fleetcv": [], "rsync": []}
    for r in range(ROUNDS[quick]):
        # Alternate which side goes first: the page cache warms for both.
        for side in ("fleetcv", "rsync") if r % 2 == 0 else ("rsync", "fleetcv"):
            _clear(state, Path(split.path).name)
            t = time.perf_counter()
            if side == "fleetcv":
                _ok(
                    remote.push_splits(cfg, split.path, cfg.remote_hosts), "push failed"
                )
            else:
                _plain_rsync(state, Path(split.path))
            sides[side].append(time.perf_counter() - t)
    _clear(state, Path(split.path).name)
    fleet, plain = spread(sides["fleetcv"]), spread(sides["rsync"])
    log(
        f"remote: push {size / 1e6:.0f} MB to {REMOTE_HOSTS} hosts: fleetcv "
        f"{fleet['median']:.2f} s, plain rsync {plain['median']:.2f} s"
    )
    return {
        "bytes": size,
        "fleetcv": fleet,
        "rsync": plain,
        "ratio": fleet["median"] / plain["median"],
    }


def _clear(state: dict, digest: str) -> None:
    """Remove both sides' copies of the split from every host's disk."""
    for h in state["hosts"]:
        for sub in (SPLITS_SUBDIR, "plain-rsync"):
            shutil.rmtree(Path(h["disk"]) / sub / digest, ignore_errors=True)


def _plain_rsync(state: dict, src: Path) -> None:
    """`rsync -a` of `src` to every host at once, as a user would script it."""
    ssh = f"ssh -F {state['ssh_config']}"
    procs = [
        subprocess.Popen(
            [
                "rsync",
                "-a",
                "--mkpath",
                "-e",
                ssh,
                f"{src}/",
                f"{h['name']}:{WORKDIR}/plain-rsync/{src.name}/",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for h in state["hosts"]
    ]
    for h, p in zip(state["hosts"], procs, strict=True):
        _, err = p.communicate(timeout=RSYNC_TIMEOUT)
        if p.returncode:
            raise RuntimeError(
                f"plain rsync to {h['name']} failed: {err.strip()[-300:]}"
            )


def _ok(results, what: str) -> None:
    """Raise when any host failed (a `HostResults` of the backends)."""
    if results.failed:
        raise RuntimeError(f"{what}: {results.failed}")

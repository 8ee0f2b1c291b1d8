"""Figure 4 over SSH: the reference search on namespace hosts, one engine each.

Runs on the laptop, as root: it builds the network-namespace test cluster of
`fleetcv.devtools.testcluster` on this machine (own sshd, address and disk
per host), starts a controller on the cluster's bridge, and drives the hosts
through the backends it is given (`fleetcv.backends.Backends`, passed in by
the `bench` task). On one machine this
measures what the hosts add (SSH-started engines, a network hop, a copy of
the folds per host), not more cores.
"""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path
from typing import Protocol

import yaml

from fleetcv.devtools import testcluster
from fleetcv.devtools.bench.searches import fleet_search, journal
from fleetcv.dispatch import cluster as cl
from fleetcv.spec import parse_hosts
from runtime.folds import persist_splits

#: The namespace hosts of the multi-host scale run, and their controller's
#: ports (apart from the tests' own: prefix fmh/fcv, 10.203-204.0).
HOSTS_PREFIX, HOSTS_SUBNET = "fbn", "10.205.0"
BENCH_HOST_PORTS = (30500, 30539)


class Remote(Protocol):
    """What the hosts benchmark needs of the backends (the SSH backend has it).

    Each function acts on every host given and returns one result per host,
    with `.failed` naming the hosts that failed.
    """

    def start_engines(self, cfg, hosts):
        """Start the engines `cfg` gives each of `hosts`."""

    def push_splits(self, cfg, split_path, hosts):
        """Copy the split directory `split_path` to every host's own disk."""

    def stop_engines(self, cfg, hosts):
        """Stop the engines fleetcv started on every host."""


def unavailable(figure: str, remote: Remote | None, log) -> dict | None:
    """`{"skipped": reason}` (logged) when namespace hosts cannot be used here; else None.

    Parameters
    ----------
    figure : str
        The figure's name, for the log line.
    remote : Remote or None
        The backends; None means the caller gave none.
    log : callable
        Progress lines.
    """
    ok, reason = testcluster.available()
    if ok and remote is None:
        ok, reason = (
            False,
            "no backends given (run_bench(remote=fleetcv.backends.Backends()))",
        )
    if ok:
        return None
    log(f"{figure}: skipped ({reason})")
    return {"skipped": reason}


@contextlib.contextmanager
def namespace_hosts(n: int, base_dir: Path, prefix: str, subnet: str):
    """`n` namespace hosts (fleetcv.devtools.testcluster) for the block; yields their state.

    Parameters
    ----------
    n : int
        Hosts.
    base_dir : Path
        Their keys, configs and disks.
    prefix, subnet : str
        Their names' prefix and their /24, apart from every other user's.
    """
    state = testcluster.up(n_hosts=n, base_dir=base_dir, prefix=prefix, subnet=subnet)
    try:
        yield state
    finally:
        testcluster.down(state)


def bench_hosts(
    n: int,
    cands: list[dict],
    X,
    y,
    cv,
    expected: dict,
    sequential: float,
    work: Path,
    log,
    remote: Remote | None = None,
) -> dict:
    """Run the reference search on `n` namespace hosts over SSH, one engine each.

    Parameters
    ----------
    n : int
        Hosts (and engines).
    cands : list of dict
        The reference candidates.
    X, y : array-like
        The reference data.
    cv : CVSpec
        The reference spec's cross-validation (`splitter()`, `as_dict()`).
    expected : dict
        Candidate -> expected seconds per task (from the local warm-up).
    sequential : float
        The sequential run's seconds, for the ideal and the efficiency.
    work : Path
        Scratch directory.
    log : callable
        Progress lines.
    remote : Remote, optional
        The backends (`fleetcv.backends.Backends`). None: not run.

    Returns
    -------
    dict
        `hosts`, `engines`, `wall`, `ideal`, `efficiency`, `tasks_per_host`;
        or `{"skipped": reason}` when the hosts cannot be used.
    """
    skipped = unavailable("hosts", remote, log)
    if skipped:
        return skipped
    log(f"hosts: {n} namespace hosts over SSH, one engine each")
    with namespace_hosts(n, work / "testcluster", HOSTS_PREFIX, HOSTS_SUBNET) as state:
        wall, records = _search_on_hosts(
            state, n, cands, X, y, cv, expected, work, remote
        )
    per_host: dict[str, int] = {}
    for r in records:
        per_host[r["host"]] = per_host.get(r["host"], 0) + 1
    eff = (sequential / n) / wall
    log(
        f"hosts: {n} hosts {wall:.2f} s, efficiency {eff:.3f}, tasks per host {per_host}"
    )
    return {
        "hosts": n,
        "engines": n,
        "wall": wall,
        "ideal": sequential / n,
        "efficiency": eff,
        "tasks_per_host": per_host,
    }


def _hosts_config(state: dict, work: Path):
    """The test cluster's hosts.yml, on the bench's own controller ports."""
    data = yaml.safe_load(testcluster.hosts_yml(state, python=sys.executable))
    data["controller"].update(
        ports=list(BENCH_HOST_PORTS),
        state_dir=str((work / "hosts-state").resolve()),
    )
    return parse_hosts(data, "<bench hosts>")


def _search_on_hosts(
    state: dict, n: int, cands, X, y, cv, expected, work: Path, remote: Remote
) -> tuple[float, list[dict]]:
    """Controller, engines over SSH, folds pushed; a warm-up, then the timed search.

    Returns the timed search's wall seconds and its journal records.
    """
    from sklearn.svm import SVC

    cfg = _hosts_config(state, work)
    cl.start(cfg, n_local=0)
    client = None
    try:
        client = cl.connect(cfg)
        started = remote.start_engines(cfg, cfg.remote_hosts)
        if started.failed:
            raise RuntimeError(f"engines did not start: {started.failed}")
        cl.wait_for_engines(client, n)
        split = persist_splits(X, y, cv.splitter(), cv.as_dict(), work / "hosts-stage")
        pushed = remote.push_splits(cfg, split.path, cfg.remote_hosts)
        if pushed.failed:
            raise RuntimeError(f"push failed: {pushed.failed}")
        view = client.load_balanced_view()
        fleet_search(view, SVC(), cands, split, work / "runs", "hosts-warm")
        t = time.perf_counter()
        s = fleet_search(view, SVC(), cands, split, work / "runs", "hosts", expected)
        wall = time.perf_counter() - t
    finally:
        if client is not None:
            client.close()
        remote.stop_engines(cfg, cfg.remote_hosts)
        cl.stop(cfg)
    return wall, journal(s)

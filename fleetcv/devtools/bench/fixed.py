"""Figure 6: the fixed cost of a search, as whole processes, fleetcv and its peers.

Runs on the laptop. The search has 2 tiny fits (DummyClassifier on iris,
one candidate x 2 folds), so what is measured is everything around them:
the interpreter, the imports, connecting to (or starting) a cluster, the
results. fleetcv's side is `invoke search` as a user types it, measured to
its exit (its results.json, journal and report.txt are written by then;
report.html and the plots follow from a background process, timed apart):

- warm: the bench's cluster runs, and so does the warm driver that `invoke
  cluster.start` starts (fleetcv/dispatch/warm.py);
- cold: no cluster, no warm driver: `invoke search` starts a cluster, runs,
  and stops it.

The peers run `python -m fleetcv.devtools.bench.tiny_search` (the same
search with GridSearchCV): warm against a cluster started before the timed
process (the bench's ipyparallel engines, a dask LocalCluster, `ray start
--head`), cold starting and stopping their own. loky has no cluster to keep:
one figure serves both columns. Sides rotate from round to round.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from fleetcv.devtools.bench.peers import (
    ONE_THREAD,
    PEERS,
    kept_environ,
    peer_figures,
    spread,
)
from fleetcv.dispatch import cluster as cl
from fleetcv.dispatch import warm
from fleetcv.report import background

#: Timed rounds: (full, quick).
ROUNDS = (5, 1)
#: The issue's targets for fleetcv's 2-fit search (seconds, median).
TARGETS = {"warm": 1.0, "cold": 3.0}
#: Ports of the cold side's own cluster (the bench's cluster keeps its own).
COLD_PORTS = [30440, 30479]
TINY_SPEC = {
    "name": "tiny",
    "estimator": {"class": "sklearn.dummy.DummyClassifier"},
    "params": {"strategy": ["prior"]},
    "data": {"loader": "sklearn.datasets.load_iris"},
    "cv": {"kind": "kfold", "n_splits": 2},
}
_TIMEOUT = 600


def bench_fixed_cost(cfg, n: int, quick: bool, work: Path, log) -> dict:
    """Figure 6: every side's 2-fit search as a whole process, warm and cold.

    Parameters
    ----------
    cfg : HostsConfig
        The bench's running cluster (N local engines).
    n : int
        Engines, and every peer's workers.
    quick : bool
        One round instead of five.
    work : Path
        Scratch directory (spec, hosts files, run directories).
    log : callable
        Progress lines.

    Returns
    -------
    dict
        `rounds`, `sides` (name -> spread of its seconds), `warm` and `cold`
        (`peer_figures`: fleetcv against each peer), `fleetcv_drawn` (warm,
        until report.html and the plots are written), `warm_driver_used`
        (per round: did the warm driver run the search), `targets`.
    """
    # Absolute: the hosts files' workdir and state_dir must be.
    fixed = (work / "fixed").resolve()
    shutil.rmtree(fixed / "runs", ignore_errors=True)
    fixed.mkdir(parents=True, exist_ok=True)
    spec = fixed / "tiny.yml"
    spec.write_text(yaml.safe_dump(TINY_SPEC))
    warm_hosts = _hosts_file(fixed / "warm_hosts.yml", cfg.controller.ports, cfg, n)
    cold_hosts = _hosts_file(fixed / "cold_hosts.yml", COLD_PORTS, None, n, fixed)
    side = _Sides(n, spec, warm_hosts, cold_hosts, fixed, cfg)
    ours = warm.running() is None
    warm.start()
    try:
        warm.wait_ready()
        times, rounds = _rounds(side, quick, log)
    finally:
        if ours:
            # Started for this figure: stopped with it, as cluster.stop would.
            warm.stop()
    columns = {
        mode: peer_figures(
            {
                "loky": times["loky"],
                **{p: times[f"{p} {mode}"] for p in PEERS[1:]},
            },
            times[f"fleetcv {mode}"],
        )
        for mode in ("warm", "cold")
    }
    return {
        "rounds": rounds,
        "sides": {name: spread(v) for name, v in times.items()},
        **columns,
        "fleetcv_drawn": spread(side.drawn),
        "warm_driver_used": side.warm_used,
        "targets": TARGETS,
    }


def _rounds(side: _Sides, quick: bool, log) -> tuple[dict[str, list[float]], int]:
    """Every side's timed rounds, the order rotating: (name -> seconds, rounds)."""
    sides: list[tuple[str, Callable[[], float]]] = [
        ("fleetcv warm", side.fleetcv_warm),
        ("fleetcv cold", side.fleetcv_cold),
        ("fleetcv warm, no warm driver", side.fleetcv_in_process),
        ("loky", lambda: side.peer("loky", "cold")),
        *[
            (f"{p} {mode}", lambda p=p, mode=mode: side.peer(p, mode))
            for p in PEERS[1:]
            for mode in ("warm", "cold")
        ],
    ]
    rounds = ROUNDS[quick]
    log(
        f"fixed cost: {rounds} rounds of a 2-fit search as a whole process: "
        + ", ".join(name for name, _ in sides)
    )
    times: dict[str, list[float]] = {name: [] for name, _ in sides}
    for r in range(rounds):
        k = (r * 3) % len(sides)
        for name, fn in sides[k:] + sides[:k]:
            times[name].append(fn())
        log(
            f"fixed cost round {r + 1}/{rounds}: "
            + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items())
        )
    return times, rounds


def _hosts_file(path: Path, ports, cfg, n: int, state: Path | None = None) -> Path:
    """A hosts file for `invoke search --hosts-file`: the bench's cluster, or a cold one."""
    host = cfg.hosts[0] if cfg is not None else None
    data = {
        "controller": {
            "ip": "127.0.0.1",
            "ports": list(ports),
            "state_dir": str(
                Path(cfg.controller.state_path).resolve()
                if cfg is not None
                else state / "cold_state"
            ),
        },
        "hosts": [
            {
                "name": "localhost",
                "local": True,
                "engines": n,
                "workdir": str(Path(host.workdir_path).resolve() if host else state),
            }
        ],
    }
    path.write_text(yaml.safe_dump(data))
    return path


class _Sides:
    """Each side's timed whole process; fleetcv's extra figures kept on the way."""

    def __init__(self, n, spec, warm_hosts, cold_hosts, work, cfg):
        self.n, self.spec, self.work, self.cfg = n, spec, work, cfg
        self.warm_hosts, self.cold_hosts = warm_hosts, cold_hosts
        #: Every side's environment: this process's as the warm driver
        #: started, whatever a peer run in this process sets later.
        self.env = dict(os.environ)
        self.drawn: list[float] = []
        self.warm_used: list[bool] = []
        self.count = 0
        self.invoke = str(Path(sys.executable).with_name("invoke"))
        self.repo = Path(__file__).resolve().parents[3]

    def _run_dir(self) -> Path:
        self.count += 1
        return self.work / "runs" / f"tiny-{self.count}"

    def _timed(self, argv: list[str], env: dict) -> tuple[float, int]:
        """Seconds from the start of `argv` to its exit; its pid."""
        t = time.perf_counter()
        proc = subprocess.Popen(
            argv,
            cwd=self.repo,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        out, _ = proc.communicate(timeout=_TIMEOUT)
        seconds = time.perf_counter() - t
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} -> {proc.returncode}\n{out}")
        return seconds, proc.pid

    def _search(self, hosts: Path, env: dict) -> tuple[float, int, Path, float]:
        """`invoke search` of the tiny spec: seconds to its exit, pid, run dir, seconds to drawn."""
        run_dir = self._run_dir()
        argv = [self.invoke, "search", "--spec", str(self.spec), "--hosts-file"]
        argv += [str(hosts), "--run-dir", str(run_dir), "--no-progress"]
        t = time.perf_counter()
        seconds, pid = self._timed(argv, env)
        if not background.wait(run_dir, timeout=_TIMEOUT):
            raise RuntimeError(f"{run_dir}: report.html still drawing")
        drawn = time.perf_counter() - t
        return seconds, pid, run_dir, drawn

    def fleetcv_warm(self) -> float:
        seconds, pid, run_dir, drawn = self._search(self.warm_hosts, dict(self.env))
        # run.lock names the driver: another process than `invoke` when the
        # warm driver's child ran the search.
        self.warm_used.append(int((run_dir / "run.lock").read_text()) != pid)
        self.drawn.append(drawn)
        return seconds

    def fleetcv_in_process(self) -> float:
        env = {**self.env, warm.ENV: "0"}
        return self._search(self.warm_hosts, env)[0]

    def fleetcv_cold(self) -> float:
        env = {**self.env, warm.ENV: "0"}
        return self._search(self.cold_hosts, env)[0]

    def peer(self, name: str, mode: str) -> float:
        argv = [sys.executable, "-m", "fleetcv.devtools.bench.tiny_search", name, mode]
        argv.append(str(self.n))
        env = {**self.env, **ONE_THREAD}
        if mode == "cold":
            return self._timed(argv, env)[0]
        with self._warm_peer(name) as address:
            return self._timed([*argv, address], env)[0]

    @contextlib.contextmanager
    def _warm_peer(self, name: str):
        """A running cluster of peer `name`, started untimed; yields its address."""
        if name == "ipyparallel":
            # The bench's own engines, through the same connection file.
            yield str(cl.client_connection_file(self.cfg))
        elif name == "dask":
            from distributed import LocalCluster

            with (
                kept_environ(),
                LocalCluster(
                    n_workers=self.n,
                    threads_per_worker=1,
                    dashboard_address=None,
                    silence_logs=50,
                ) as cluster,
            ):
                yield cluster.scheduler_address
        elif name == "ray":
            ray = str(Path(sys.executable).with_name("ray"))
            env = {**self.env, **ONE_THREAD, "RAY_USAGE_STATS_ENABLED": "0"}
            start = [ray, "start", "--head", f"--num-cpus={self.n}"]
            start += ["--include-dashboard=false", "--disable-usage-stats"]
            subprocess.run(
                start, env=env, capture_output=True, check=True, timeout=_TIMEOUT
            )
            try:
                yield "auto"
            finally:
                subprocess.run(
                    [ray, "stop", "--force"],
                    env=env,
                    capture_output=True,
                    timeout=_TIMEOUT,
                )
        else:
            raise ValueError(f"no warm mode for {name!r}")

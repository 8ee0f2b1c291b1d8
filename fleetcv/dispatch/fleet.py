"""The cluster around a run: start it if none runs, push the folds, stop what was started.

Runs on the driver. Starts the controller and this machine's engines
(`fleetcv.dispatch.cluster`) and, through the backends the caller hands in
(`remote`: a `fleetcv.backends.Backends`, each host sent to its own),
every other host's engines; pushes the folds to the hosts that run engines; and
stops exactly what it started. Every host is tried; failures name the hosts.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from fleetcv.backends.local import LocalBackend
from fleetcv.dispatch import cluster as cl
from fleetcv.dispatch.probes import NO_ANSWER, engines_by_host
from fleetcv.dispatch.rejoin import history as rejoin_history
from fleetcv.errors import ConfigError, HostError
from fleetcv.rundir.run import pid_alive
from fleetcv.spec import HostsConfig, HostSpec
from runtime.worker import pip_install as engine_pip_install

#: How long `pip_install` waits for one host's pip (a download and a build).
PIP_TIMEOUT = 900.0


def check_reachable(cfg: HostsConfig, hosts) -> None:
    """Refuse remote hosts that could not reach the controller's address.

    A loopback address is this machine's own: engines on another host would
    dial their own loopback and wait there until they time out.
    """
    remote = sorted(h.name for h in hosts if not h.local)
    ip = cfg.controller.ip
    try:
        loopback = ip == "localhost" or ipaddress.ip_address(ip).is_loopback
    except ValueError:
        loopback = False  # a host name: only its hosts know what it resolves to
    if remote and loopback and not cfg.controller.tunnel:
        raise ConfigError(
            f"{cfg.path}: controller.ip: {ip} is this machine's loopback address, which "
            f"{', '.join(remote)} cannot reach. Fix: set controller.ip to an address of this "
            f"machine that the hosts reach, or tunnel: true to reach it through SSH"
        )


def start_cluster(
    cfg: HostsConfig, engines: int | None, remote, log: Callable[[str], None] = print
) -> None:
    """Start the controller, this machine's engines and every remote host's engines.

    `log` gets the lines saying what started (warnings go to stderr).
    """
    check_reachable(cfg, cfg.hosts)
    info = cl.start(cfg, n_local=engines)
    log(
        f"controller: pid {info['controller_pid']} on {cfg.controller.ip}, profile {info['profile_dir']}"
    )
    if info["local_engines"]:
        log(f"localhost: {info['local_engines']} engines started")
        threads = cfg.local_host.threads if cfg.local_host else 1
        cores = os.cpu_count() or 1
        if info["local_engines"] * threads > cores:
            print(
                f"warning: {info['local_engines']} engines x {threads} threads on {cores} cores: "
                "they compete for the cores. Fix: fewer engines (--engines), or a smaller "
                "threads setting for this host in the hosts file",
                file=sys.stderr,
            )
    if cfg.remote_hosts:
        fab = remote
        try:
            res = fab.start_engines(cfg, cfg.remote_hosts)
        except BaseException:
            stop_cluster(cfg, remote)  # what did start, never left running
            raise
        fab.print_results(res)
        if not info["local_engines"] and not res.ok:
            # A cluster without a single engine would only make the next
            # search wait and fail: stop it and say why each host failed.
            with contextlib.suppress(Exception):
                stop_cluster(cfg, remote)
            causes = "; ".join(f"{h}: {e}" for h, e in sorted(res.failed.items()))
            raise HostError(
                f"no engine started on any host, so nothing is left running "
                f"({causes}). Fix those hosts (invoke hosts.run 'true' checks SSH), "
                "then invoke cluster.start again"
            )
        client = cl.connect(cfg)
        try:
            cl.wait_for_engines(client, info["local_engines"] + sum(res.ok.values()))
        finally:
            client.close()
        if res.failed:
            print(
                f"warning: engines did not start on {', '.join(res.failed)}; the search runs without them",
                file=sys.stderr,
            )


#: Seconds a run waits for the cluster it started early (see `EarlyStart`).
EARLY_START_TIMEOUT = 600.0


class EarlyStart:
    """A local cluster starting in a thread while the driver plans the run.

    A run that finds no cluster spends about 2 s planning (importing
    scikit-learn to check the estimator, loading the data, writing the
    folds) and about 4 s starting the controller and the engines, whose
    launcher imports scikit-learn too. Those are other processes: begun
    first, they start on the other cores while this one plans.
    """

    def __init__(
        self, cfg: HostsConfig, engines: int | None, log: Callable[[str], None]
    ):
        self.error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._start, args=(cfg, engines, log), daemon=True
        )
        self._thread.start()

    def _start(self, cfg, engines, log) -> None:
        try:
            start_cluster(cfg, engines, None, log)
        except BaseException as exc:  # noqa: BLE001 - raised again by join()
            self.error = exc

    def join(self, timeout: float = EARLY_START_TIMEOUT) -> None:
        """Wait for the start to end; raise what it raised."""
        try:
            self._thread.join(timeout)
        except BaseException:
            # Ctrl-C: the start goes on in its thread; let it end, so that
            # what it started is there to stop, not started after the stop.
            self._thread.join(timeout)
            raise
        if self._thread.is_alive():
            raise HostError(
                f"the cluster did not start within {timeout:.0f} s. Fix: see "
                "invoke cluster.status and the engines' log in the controller's state dir"
            )
        if self.error is not None:
            raise self.error


def start_early(
    cfg: HostsConfig, engines: int | None, log: Callable[[str], None] = print
) -> EarlyStart | None:
    """Begin starting a local-only cluster that does not run yet (None: nothing to start).

    Clusters with remote hosts start when the run does (`cluster_client`):
    their start reaches hosts over SSH and reports per host.
    """
    if cfg.remote_hosts or cl.is_running(cfg):
        return None
    return EarlyStart(cfg, engines, log)


def engine_replacer(cfg: HostsConfig, remote) -> Callable[[str, int], str]:
    """``replace(host name, pid)``: stop that engine (a fit past its timeout), start another.

    ipyparallel cannot interrupt a running task, so the engine goes; the
    controller notices it gone and the task comes back as lost.
    """
    hosts = {h.name: h for h in cfg.hosts}

    def replace(name: str, pid: int) -> str:
        host = hosts.get(name)
        if host is None or host.backend == "local":
            # An engine of this machine (also when it runs without a hosts entry).
            here = host or HostSpec(name=name, local=True, backend="local")
            return LocalBackend().replace_engine(cfg, here, pid)
        return remote.replace_engine(cfg, host, pid)

    return replace


def stop_cluster(cfg: HostsConfig, remote) -> bool:
    """Stop remote engines (every host tried) and the controller; fail naming unstoppable hosts."""
    failed = {}
    if cfg.remote_hosts:
        fab = remote
        res = fab.stop_engines(cfg, cfg.remote_hosts)
        fab.print_results(res)
        failed = res.failed
    stopped = cl.stop(cfg)
    if failed:
        raise HostError(
            f"could not stop the engines on {', '.join(sorted(failed))}: they may still run there. "
            f"Try: invoke cluster.stop again once the host is reachable"
        )
    return stopped


def push(cfg: HostsConfig, split_path: Path, client, remote, extra: tuple = ()) -> None:
    """Push the folds (and the run's `extra` folders) to every remote host; refuse to search on a host that lacks them.

    `extra` holds (path, workdir subfolder) pairs: the run's code snapshot,
    its requirements' wheelhouse.
    """
    fab = remote
    res = fab.push_splits(cfg, split_path, cfg.remote_hosts)
    fab.print_results(res)
    failed = dict(res.failed)
    for path, subdir in extra:
        res = fab.push_run_files(cfg, path, subdir, cfg.remote_hosts)
        fab.print_results(res)
        failed.update(res.failed)
    if not failed:
        return
    what = "folds" if not extra else "folds or the run's files"
    with_engines = set(engines_by_host(client)) & set(failed)
    if with_engines:
        raise HostError(
            f"the {what} could not be pushed to {', '.join(sorted(with_engines))}, which run engines: "
            f"their tasks would fail. Fix the host (see above), or remove it from {cfg.path} and "
            f"restart the cluster"
        )
    print(
        f"warning: no {what} on {', '.join(sorted(failed))} (no engines run there)",
        file=sys.stderr,
    )


@contextlib.contextmanager
def cluster_client(
    cfg: HostsConfig,
    split_path: Path,
    engines: int | None,
    keep_cluster: bool,
    remote,
    log: Callable[[str], None] = print,
    extra: tuple = (),
    early: EarlyStart | None = None,
) -> Iterator:
    """A client of the running cluster with the folds pushed; started (and then stopped) if needed.

    Parameters
    ----------
    cfg : HostsConfig
        The cluster.
    split_path : Path
        The folds to push to every remote host.
    engines : int, optional
        Engines on this machine when the cluster is started here.
    keep_cluster : bool
        Leave a cluster that this call started running.
    remote : module or object
        The backends (`fleetcv.backends.Backends`); used only when the hosts
        file has remote hosts.
    log : callable
        Gets the lines about a cluster started here.
    extra : tuple of (Path, str)
        The run's other folders pushed with the folds, and the workdir
        subfolder each goes to (its code, its requirements' wheels).
    early : EarlyStart, optional
        A start of this cluster already under way (`start_early`): waited
        for instead of starting one, and stopped at the end like one.

    Yields
    ------
    ipyparallel.Client
        Connected, with at least one engine.
    """
    started = early is not None or not cl.is_running(cfg)
    if not started and engines is not None:
        print(
            "note: a cluster is already running; --engines applies only when the task starts one",
            file=sys.stderr,
        )
    try:
        # Inside the try: a start that fails half-way is still stopped.
        if early is not None:
            try:
                early.join()
            except BaseException:
                # A start that failed stopped what it started (cl.start), and
                # "already running" names another run's cluster: not ours.
                started = early.error is None
                raise
        elif started:
            start_cluster(cfg, engines, remote, log)
        client = cl.connect(cfg)
        try:
            if cfg.remote_hosts:
                push(cfg, split_path, client, remote, extra)
            if not client.ids:
                cl.wait_for_engines(client, 1)
            yield client
        finally:
            client.close()
    finally:
        if started and not keep_cluster:
            stop_cluster(cfg, remote)


def status_lines(cfg: HostsConfig, remote) -> list[str]:
    """The controller and, per host, engines registered vs. running (and the tunnel).

    Raises
    ------
    HostError
        When no cluster is running.
    """
    if not cl.is_running(cfg):
        raise HostError("no fleetcv cluster is running. Try: invoke cluster.start")
    client = cl.connect(cfg)
    try:
        by_host = engines_by_host(client)
    finally:
        client.close()
    lines, running = [], {}
    if cfg.remote_hosts:
        res = remote.engine_status(cfg, cfg.remote_hosts)
        running = dict(res.ok)
        lines += [f"{h}: unreachable: {exc}" for h, exc in res.failed.items()]
    if cfg.local_host:
        running[cfg.local_host.name] = len(
            [p for p in cl.local_engine_pids(cfg) if pid_alive(p)]
        )
    lines.append(
        f"controller: {cfg.controller.ip} ports {cfg.controller.ports[0]}-{cfg.controller.ports[1]}, profile {cl.profile_dir(cfg)}"
    )
    for h in cfg.hosts:
        line = f"{h.name}: {len(by_host.get(h.name, []))} engines registered, {running.get(h.name, '?')} running"
        if cfg.controller.tunnel and not h.local:
            line += _tunnel_state(h, cfg, remote)
        lines.append(line)
    names = {x.name for x in cfg.hosts}
    lines += [
        f"{len(eids)} engines registered did not say their host within the timeout "
        "(busy with a long fit, or hung)"
        if h == NO_ANSWER
        else f"{h}: {len(eids)} engines registered (not in {cfg.path})"
        for h, eids in by_host.items()
        if h not in names
    ]
    rejoins = rejoin_history(cfg)
    if rejoins:
        lines += ["hosts that came back (last rejoins):", *(f"  {r}" for r in rejoins)]
    return lines


def _tunnel_state(host, cfg: HostsConfig, remote) -> str:
    pid = remote.tunnel_pid(host, cfg)
    if pid:
        return f", tunnel up (ssh pid {pid})"
    return (
        f", tunnel DOWN: its engines cannot reach the controller "
        f"(invoke cluster.grow --only {host.name})"
    )


def check_hosts(res, what: str, remote) -> None:
    """Print every host's outcome, then fail naming every host that failed.

    Raises
    ------
    HostError
        Naming the hosts of `res.failed`.
    """
    remote.print_results(res)
    if res.failed:
        raise HostError(f"{what} failed on {', '.join(sorted(res.failed))}")


def grow(
    cfg: HostsConfig, hosts, n: int, split_paths, remote, log=print, extra=()
) -> None:
    """Add `n` engines on each of `hosts` to the running cluster.

    A new remote host first gets the folds of `split_paths` (the searches
    running now) and their `extra` folders (code snapshots: (path, workdir
    subfolder) pairs), or the tasks the view hands it would fail; a host
    that cannot take them gets no engines.
    """
    local = [h for h in hosts if h.local]
    others = [h for h in hosts if not h.local]
    check_reachable(cfg, others)
    for split_path in split_paths if others else []:
        res = remote.push_splits(cfg, split_path, others)
        remote.print_results(res)
        others = [h for h in others if h.name not in res.failed]
    for path, subdir in extra if others else []:
        res = remote.push_run_files(cfg, path, subdir, others)
        remote.print_results(res)
        others = [h for h in others if h.name not in res.failed]
    if local:
        total = cl.start_local_engines(cfg, n)
        log(f"{local[0].name}: +{n} engines ({total} registered)")
    if others:
        check_hosts(
            remote.start_engines(cfg, others, count=n), "starting engines", remote
        )


def pip_install(cfg: HostsConfig, packages: list[str], log=print) -> None:
    """pip-install `packages` on the running cluster, once per host (its engines share the venv).

    Raises
    ------
    HostError
        Naming the hosts where pip failed.
    """
    client = cl.connect(cfg)
    failed = []
    try:
        by_host = engines_by_host(client)
        ars = {
            h: client[eids[0]].apply_async(engine_pip_install, packages=list(packages))
            for h, eids in by_host.items()
        }
        for h, ar in ars.items():
            out = ar.get(timeout=PIP_TIMEOUT)
            code = out["returncode"]
            log(
                f"[{h}] pip install {' '.join(packages)}: "
                + ("ok" if code == 0 else f"failed (exit {code})")
            )
            if code:
                failed.append(h)
                for line in out["output"].splitlines()[-5:]:
                    log(f"[{h}]   {line}")
    finally:
        client.close()
    if failed:
        raise HostError(f"pip install failed on {', '.join(failed)}")

"""The ipyparallel controller and this machine's engines, across invoke calls.

Runs on the laptop (or the head host). The controller is started through
`ipyparallel.Cluster` with a fixed profile directory and cluster id, detached
(`shutdown_atexit=False`), so a later process reconnects with
`Cluster.from_file` and `cluster.stop` ends it. Engines, here and on every
other host, are forked by `python -m runtime.launcher` (fabfile.py runs it on
the other hosts with the engine connection file from here); their pids go to
a pids file, which is what `cluster.stop` kills. This module never opens an
SSH connection.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import time
from collections.abc import Callable
from pathlib import Path

from fleetcv.errors import ClusterError
from fleetcv.spec import HostsConfig, HostSpec
from runtime.launcher import ENGINE_THREAD_VARS, patched_environ
from runtime.pids import pid_alive

CLUSTER_ID = "fleetcv"
#: Seconds to wait for engines to register after a start.
ENGINE_START_TIMEOUT = 120.0
#: This checkout: engines on this machine import its `runtime` and `fleetcv` (the driver's own
#: code, so their version is the driver's); remote hosts import the installed
#: wheel instead (fabfile.py drops PYTHONPATH for them).
CODE_ROOT = Path(__file__).resolve().parents[2]
#: This machine's engine pids and output, in the controller's state folder.
LOCAL_PIDS_FILE = "engines.pids"
#: The controller's pid, in the controller's state folder.
CONTROLLER_PID_FILE = "controller.pid"
LOCAL_ENGINE_LOG = "engines.log"


def profile_dir(cfg: HostsConfig) -> Path:
    """The ipyparallel profile directory of this hosts file's cluster."""
    return cfg.controller.state_path / "profile"


def engine_connection_file(cfg: HostsConfig) -> Path:
    """The connection file that engines on any host need (mode 0600)."""
    return profile_dir(cfg) / "security" / f"ipcontroller-{CLUSTER_ID}-engine.json"


def client_connection_file(cfg: HostsConfig) -> Path:
    """The connection file that clients need (mode 0600)."""
    return profile_dir(cfg) / "security" / f"ipcontroller-{CLUSTER_ID}-client.json"


def engine_env(
    host: HostSpec,
    workdir: str,
    code_root: str | os.PathLike = CODE_ROOT,
) -> dict[str, str]:
    """Environment of an engine process on `host`.

    FLEETCV_WORKDIR is how a worker resolves relative fold names against its
    own host's disk; FLEETCV_HOST names the host in results (namespace test
    hosts share one kernel hostname). The BLAS/OpenMP thread variables
    are set to the host's `threads` before the engines import numpy, so
    every pool is created at that size.
    """
    env = {
        "FLEETCV_WORKDIR": workdir,
        "FLEETCV_HOST": host.name,
        "PYTHONPATH": str(code_root),
    }
    for var in ENGINE_THREAD_VARS:
        env[var] = str(host.threads)
    return env


def _cluster(cfg: HostsConfig, n: int = 0):
    import ipyparallel as ipp

    ctl = cfg.controller
    args = [
        f"--ports={ctl.ports[0]}-{ctl.ports[1]}",
        f"--TaskScheduler.hwm={ctl.task_hwm}",
        # Engines run without ipyparallel's nanny (see runtime/launcher.py), so
        # the heartbeat is how a killed engine or a lost host is noticed: with
        # the default 0.5 s x 20, in about 10-14 s instead of 30-40 s.
        # An engine's heart answers from a C thread, so a busy engine never
        # misses a ping; 10 s of silence still tolerates a network hiccup.
        f"--HeartMonitor.period={round(ctl.heartbeat_seconds * 1000)}",
        f"--HeartMonitor.max_heartmonitor_misses={ctl.heartbeat_misses}",
    ]
    if ctl.curve:
        args.append("--IPController.enable_curve=True")
    return ipp.Cluster(
        profile_dir=str(profile_dir(cfg)),
        cluster_id=CLUSTER_ID,
        controller_ip=ctl.ip,
        controller_args=args,
        n=n,
        shutdown_atexit=False,
        log_level=logging.WARNING,
    )


def _cluster_file(cfg: HostsConfig) -> Path:
    """Where ipyparallel keeps this cluster's file (its `Cluster.cluster_file`)."""
    return profile_dir(cfg) / "security" / f"cluster-{CLUSTER_ID}.json"


def _from_file(cfg: HostsConfig):
    # No file, no cluster: a cold start then goes on without importing
    # ipyparallel (0.2 s) before it begins the engines' launcher.
    if not _cluster_file(cfg).exists():
        return None
    import ipyparallel as ipp

    try:
        return ipp.Cluster.from_file(
            profile_dir=str(profile_dir(cfg)),
            cluster_id=CLUSTER_ID,
            # As when started: its INFO lines ("Stopping controller") would land
            # in a notebook's cell output.
            log_level=logging.WARNING,
        )
    except FileNotFoundError:
        return None


def is_running(cfg: HostsConfig) -> bool:
    """Whether this hosts file's controller is up."""
    c = _from_file(cfg)
    if c is None or c.controller is None:
        return False
    # A killed controller whose parent is gone stays a zombie where PID 1
    # does not reap: that is no cluster.
    return pid_alive(getattr(c.controller, "pid", None))


def controller_watch(cfg: HostsConfig) -> Callable[[], str | None]:
    """A cheap check of this cluster's controller: None while it runs, else why not.

    The controller always runs on this machine, so its pid says at once
    whether it is there; the client's engine list would never change after
    it died, and every wait on it would last for ever.
    """
    pid = recorded_controller_pid(cfg)

    def check() -> str | None:
        if pid is None or pid_alive(pid):
            return None  # running, or not ours to watch (started by hand)
        return f"the controller (pid {pid}) is gone"

    return check


def start(
    cfg: HostsConfig, n_local: int | None = None, timeout: float = ENGINE_START_TIMEOUT
) -> dict:
    """Start the controller and this machine's engines.

    Parameters
    ----------
    cfg : HostsConfig
        The validated hosts file.
    n_local : int, optional
        Engines on this machine; default: the local host's `engines`, or 0
        when hosts.yml has no local host.
    timeout : float
        Seconds to wait for the engines to register.

    Returns
    -------
    dict
        profile_dir, controller pid, local engine count.

    Raises
    ------
    ClusterError
        When a controller for this profile is already running.
    """
    if is_running(cfg):
        raise ClusterError(
            f"a fleetcv cluster is already running (profile {profile_dir(cfg)}). "
            "Try: invoke cluster.status, or invoke cluster.stop first"
        )
    _clean_up_after(cfg)
    busy = _busy_ports(cfg.controller.ip, cfg.controller.ports)
    if busy:
        raise ClusterError(
            f"controller.ports: port {', '.join(map(str, busy))} of "
            f"[{cfg.controller.ports[0]}, {cfg.controller.ports[1]}] is already in use "
            f"on {cfg.controller.ip}. {_PORTS_FIX}"
        )
    local = cfg.local_host
    if n_local is None:
        n_local = local.engines if local else 0
    state = cfg.controller.state_path
    state.mkdir(parents=True, exist_ok=True)
    os.chmod(state, 0o700)
    env = {}
    if cfg.controller.curve:
        env["IPP_ENABLE_CURVE"] = "1"
    # The engines' launcher imports scikit-learn (seconds) while the
    # controller starts; it forks the engines once the controller has written
    # their connection file (removed above, so the one it reads is new).
    # Begun first: the critical path of a cold start is its imports.
    launcher = _launch_local(cfg, n_local, wait=True) if n_local else None
    try:
        cluster = _cluster(cfg)
        # ipyparallel's local launchers copy os.environ into the processes.
        with patched_environ(env):
            cluster.start_controller_sync()
        _secure_connection_files(cfg, cluster)
        # ipyparallel forgets the pid of a controller that died (its cluster
        # file goes): fleetcv keeps it, to clean up after it.
        (state / CONTROLLER_PID_FILE).write_text(f"{cluster.controller.pid}\n")
        if _controller_exited(cluster):
            raise ClusterError(_controller_failure(cfg, cluster))
        if launcher is not None:
            _await_local(cfg, launcher, n_local, 0, timeout)
    except BaseException:
        # Leave nothing running behind a failed start: the launcher (still
        # waiting, or forking), the engines it forked, the controller.
        if launcher is not None and launcher.poll() is None:
            launcher.kill()
            launcher.wait()
        with contextlib.suppress(Exception):
            stop(cfg)
        raise
    return {
        "profile_dir": str(profile_dir(cfg)),
        "controller_pid": cluster.controller.pid,
        "local_engines": n_local,
    }


def _clean_up_after(cfg: HostsConfig) -> None:
    """Remove what an earlier controller of `cfg` that died left behind."""
    # A controller that died (SIGKILL) leaves its schedulers on its ports
    # and its engines waiting for it, holding memory.
    old_pid = recorded_controller_pid(cfg)
    if old_pid:
        kill_controller_leftovers(old_pid)
        stop_local_engines(cfg)
    stale = _from_file(cfg)
    if stale is not None:
        stale.remove_cluster_file()
    # A dead controller's connection files name its keys: a client (or an
    # engine) reading them before the new controller rewrites them would wait
    # on nobody.
    for f in (engine_connection_file(cfg), client_connection_file(cfg)):
        f.unlink(missing_ok=True)


_PORTS_FIX = (
    "Fix: stop what holds it, or pick another range for controller.ports (best "
    "outside the kernel's ephemeral ports, /proc/sys/net/ipv4/ip_local_port_range)"
)


def _busy_ports(ip: str, ports: tuple[int, int]) -> list[int]:
    """Ports of the range that the controller binds (its first MIN_PORTS) and that are taken.

    A controller, or one of its scheduler processes, that cannot bind a port
    exits at once; its engines would then wait the whole start timeout for it.
    """
    import errno
    import socket

    from fleetcv.spec import MIN_PORTS

    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    busy = []
    for port in range(ports[0], min(ports[1], ports[0] + MIN_PORTS - 1) + 1):
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as zmq binds
            try:
                s.bind((ip, port))
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    busy.append(port)
    return busy


def _controller_exited(cluster) -> bool:
    """Whether the controller process just started is gone (or a zombie)."""
    return not pid_alive(getattr(cluster.controller, "pid", None))


def _controller_failure(cfg: HostsConfig, cluster) -> str:
    # e.g. "zmq.error.ZMQError: Address already in use (addr='tcp://127.0.0.1:55003')"
    out = [ln for ln in (cluster.controller.get_output() or "").splitlines() if ln]
    first, last = cfg.controller.ports
    return (
        f"the controller exited right after starting: {out[-1] if out else 'no output'} "
        f"(log: {getattr(cluster.controller, 'output_file', '') or 'none'}). If a port of "
        f"controller.ports [{first}, {last}] is in use: {_PORTS_FIX}"
    )


def _secure_connection_files(cfg: HostsConfig, cluster=None) -> None:
    # The files hold the HMAC key (and curve keys): owner-only, whatever the umask.
    for p in (engine_connection_file(cfg), client_connection_file(cfg)):
        deadline = time.monotonic() + 30
        while not p.exists() and time.monotonic() < deadline:
            if cluster is not None and _controller_exited(cluster):
                return  # it will write nothing: start() says why
            time.sleep(0.1)
        if p.exists():
            os.chmod(p, stat.S_IRUSR | stat.S_IWUSR)


def start_local_engines(
    cfg: HostsConfig, n: int, timeout: float = ENGINE_START_TIMEOUT
) -> int:
    """Add `n` engines on this machine to the running cluster; return the new total.

    The engines are forked by `python -m runtime.launcher` (shared imports,
    see there), the same launcher fabfile.py runs on remote hosts.
    """
    if not is_running(cfg):
        raise ClusterError("no fleetcv cluster is running. Try: invoke cluster.start")
    client = connect(cfg)
    try:
        before = len(client.ids)
    finally:
        client.close()
    return _await_local(cfg, _launch_local(cfg, n, wait=False), n, before, timeout)


def _launch_local(cfg: HostsConfig, n: int, wait: bool):
    """Begin `python -m runtime.launcher` for `n` local engines; its Popen.

    `wait`: the launcher preloads, then waits for the controller to write the
    engine connection file before it forks (a controller starting beside it).
    """
    import subprocess
    import sys

    local = cfg.local_host or HostSpec(name="localhost", local=True, backend="local")
    # Absolute: the launcher runs in the workdir.
    workdir = os.path.abspath(local.workdir_path)
    Path(workdir).mkdir(parents=True, exist_ok=True)
    state = cfg.controller.state_path.resolve()
    env = {**os.environ, **engine_env(local, str(workdir))}
    if cfg.controller.curve:
        env["IPP_ENABLE_CURVE"] = "1"
    conn = engine_connection_file(cfg).resolve()
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "runtime.launcher",
            f"--n={n}",
            f"--pids-file={state / LOCAL_PIDS_FILE}",
            f"--log={state / LOCAL_ENGINE_LOG}",
            *([f"--wait-for={conn}"] if wait else []),
            "--",
            f"--file={conn}",
            "--log-level=WARN",
        ],
        env=env,
        cwd=str(workdir),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _await_local(cfg: HostsConfig, proc, n: int, before: int, timeout: float) -> int:
    """Wait for the launcher `proc` to fork `n` engines and for them to register."""
    import subprocess

    state = cfg.controller.state_path.resolve()
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise ClusterError(
            f"the engines' launcher did not finish within {timeout:.0f} s "
            f"(log: {state / LOCAL_ENGINE_LOG})"
        ) from None
    if proc.returncode != 0:
        raise ClusterError(
            f"starting {n} local engines failed: {err.strip() or out.strip()}"
        )
    client = connect(cfg)
    try:
        try:
            client.wait_for_engines(before + n, timeout=timeout, interactive=False)
        except TimeoutError as exc:
            raise ClusterError(
                f"only {len(client.ids) - before} of {n} local engines registered within "
                f"{timeout:.0f} s (log: {state / LOCAL_ENGINE_LOG})"
            ) from exc
        return len(client.ids)
    finally:
        client.close()


def connect(cfg: HostsConfig, timeout: float = 20.0):
    """A Client connected to this hosts file's controller.

    Raises
    ------
    ClusterError
        When no controller is running for this profile.
    """
    import ipyparallel as ipp

    f = client_connection_file(cfg)
    if not is_running(cfg):
        raise ClusterError("no fleetcv cluster is running. Try: invoke cluster.start")
    # A controller that has just started writes its files a moment later.
    deadline = time.monotonic() + timeout
    while not f.exists():
        if time.monotonic() > deadline:
            raise ClusterError(
                f"the controller is running but wrote no {f.name} within {timeout:.0f} s. Try: invoke cluster.stop, then cluster.start"
            )
        time.sleep(0.1)
    env = {"IPP_ENABLE_CURVE": "1"} if cfg.controller.curve else {}
    # cloudpickle for what the driver sends: a notebook's classes, lambdas
    # and the user's uninstalled modules go by value (see fleetcv.dispatch.byvalue);
    # installed ones still by reference. The engines do the same at start.
    from ipyparallel.serialize import use_cloudpickle

    use_cloudpickle()
    # ipyparallel's local launchers copy os.environ into the processes.
    with patched_environ(env):
        try:
            return ipp.Client(str(f), timeout=timeout)
        except TimeoutError:
            raise ClusterError(
                f"the controller (pid {recorded_controller_pid(cfg)}) did not answer "
                f"within {timeout:.0f} s (profile {profile_dir(cfg)}). Fix: invoke "
                "cluster.stop, then invoke cluster.start"
            ) from None


def stop(cfg: HostsConfig) -> bool:
    """Stop the controller and this machine's engines. Returns False if none ran."""
    cluster = _from_file(cfg)
    stop_local_engines(cfg)
    if cluster is None:
        pid = recorded_controller_pid(cfg)
        return bool(pid and kill_controller_leftovers(pid))
    running = is_running(cfg)
    # A controller stopped by its signal exits non-zero, and ipyparallel then
    # logs its whole output as a warning (and a race over its log file as an
    # error): to stdout in a notebook's cell. What matters is checked below.
    cluster.log.setLevel(logging.CRITICAL)
    try:
        cluster.stop_cluster_sync()
    except Exception:  # noqa: BLE001 - a half-dead cluster must still be cleaned up
        pid = getattr(cluster.controller, "pid", None) if cluster.controller else None
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 15)
    pid = recorded_controller_pid(cfg)
    if pid:
        kill_controller_leftovers(pid)
    with contextlib.suppress(Exception):
        cluster.remove_cluster_file()
    return running


def recorded_controller_pid(cfg: HostsConfig) -> int | None:
    """The pid of the last controller started for `cfg`, alive or not (None if none)."""
    try:
        return int((cfg.controller.state_path / CONTROLLER_PID_FILE).read_text())
    except (OSError, ValueError):
        return None


def kill_controller_leftovers(pid: int, grace: float = 5.0) -> int:
    """Stop what is left of a controller whose main process was `pid`.

    ipyparallel's controller forks its schedulers; when the main process is
    killed (SIGKILL, OOM) they live on, holding the controller's ports, and
    no new controller can start. They share its process group (the
    controller leads its own session); only processes of that group that
    are ipyparallel controllers are signalled.

    Returns
    -------
    int
        How many were stopped.
    """
    import psutil

    procs = []
    for p in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error, OSError):
            if os.getpgid(p.pid) == pid and "ipyparallel.controller" in " ".join(
                p.info["cmdline"] or []
            ):
                procs.append(p)
    for p in procs:
        with contextlib.suppress(psutil.Error):
            p.terminate()
    _, alive = psutil.wait_procs(procs, timeout=grace)
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.kill()
    return len(procs)


def _is_local_engine(pid: int) -> bool:
    # A recorded pid may have been reused by another program since: only a
    # process started by the launcher counts.
    from runtime.launcher import runs_with

    return runs_with(pid)


def local_engine_pids(cfg: HostsConfig) -> list[int]:
    """Pids of the engines this machine started that are still running."""
    try:
        text = (cfg.controller.state_path / LOCAL_PIDS_FILE).read_text()
    except OSError:
        return []
    return [int(p) for p in text.split() if p.isdigit() and _is_local_engine(int(p))]


def stop_local_engine(cfg: HostsConfig, pid: int, grace: float = 5.0) -> bool:
    """SIGKILL one engine of this machine if `pid` still is one; whether it was."""
    if not _is_local_engine(pid):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, 9)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and _is_local_engine(pid):
        time.sleep(0.05)
    return True


def stop_local_engines(cfg: HostsConfig, grace: float = 5.0) -> int:
    """SIGTERM this machine's engines, SIGKILL what is left after `grace` s; return how many."""
    pids = local_engine_pids(cfg)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, 15)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_is_local_engine(p) for p in pids):
        time.sleep(0.05)
    for pid in pids:
        if _is_local_engine(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)
    with contextlib.suppress(FileNotFoundError):
        (cfg.controller.state_path / LOCAL_PIDS_FILE).unlink()
    return len(pids)


def wait_for_engines(client, n: int, timeout: float = ENGINE_START_TIMEOUT) -> None:
    """Block until `n` engines are registered, or raise ClusterError."""
    try:
        # Not interactive: no progress bar of ipyparallel's in a notebook's cell.
        client.wait_for_engines(n, timeout=timeout, interactive=False)
    except TimeoutError as exc:
        raise ClusterError(
            f"only {len(client.ids)} of {n} engines registered within {timeout:.0f} s"
        ) from exc

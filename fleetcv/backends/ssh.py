"""The SSH backend: everything that touches a remote host, over Fabric and the user's own SSH.

Runs on the laptop. `SshBackend` keeps the contract of
`fleetcv.backends.base.Backend` for hosts reached over SSH (``backend: ssh``,
the default of a host that is not ``local: true``); EC2 hosts are such
hosts once `invoke ec2.up` wrote them. Every operation runs on all chosen
hosts at once and returns a `HostResults` with one entry per host: a value
where it worked, the cause where it did not, so one unreachable host never
hides the others' results (Fabric's GroupResult habit). Every path and name
that goes into a remote shell command is quoted, and every connection
checks the host's key (`fleetcv.backends.hostkeys`). The root fabfile.py
re-exports this module, so Fabric's one-host tasks still work::

    fab -H root@10.0.0.11 status --workdir /srv/fleetcv

Over 600 lines: install, engines, tunnels, push, fetch and run are each a
few functions, and all of them are one backend's (one contract, one test).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shlex
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
from fabric import Config, Connection, ThreadingGroup, task
from fabric.exceptions import GroupException

from fleetcv.backends import hostkeys
from fleetcv.backends.base import HostResults, print_results
from fleetcv.dispatch import cluster as cl
from fleetcv.dispatch.wheelhouse import (
    WHEELHOUSE_REQS,
    build_wheelhouse,
    fleetcv_wheel,
    wheel_version,
    wheelhouse_digest,
)
from fleetcv.errors import SshError
from fleetcv.spec import HostsConfig, HostSpec
from runtime.digestdir import SUMS
from runtime.folds import MANIFEST, SPLITS_SUBDIR
from runtime.launcher import CMDLINE_MARK
from runtime.pids import HAS_PROCFS, pid_alive, stat_fields

#: Seconds to wait for a TCP connection to a host.
CONNECT_TIMEOUT = 10
#: Files under a host's workdir.
PIDS_FILE = "engines.pids"
#: Where fleetcv < 0.4 rsynced its source tree; removed by an install, so no
#: engine can import a stale copy instead of the installed wheel.
OLD_CODE_DIR = "code"
VENV_DIR = "venv"
WHEELS_DIR = "wheelhouse"
SECURITY_DIR = "security"
LOG_DIR = "logs"
REQ_HASH_FILE = ".fleetcv-requirements.sha256"
#: What a host prints when it holds a verified copy of a pushed folder.
_PRESENT = "fleetcv-present"


def rpath(path: str) -> str:
    """Quote a remote path for the shell, keeping a leading ~ expandable."""
    if path == "~":
        return '"$HOME"'
    if path.startswith("~/"):
        return '"$HOME"/' + shlex.quote(path[2:])
    return shlex.quote(path)


def rjoin(workdir: str, *parts: str) -> str:
    """A quoted remote path under a workdir."""
    return rpath("/".join([workdir.rstrip("/"), *parts]))


def connection(host: HostSpec, cfg: HostsConfig | None = None) -> Connection:
    """A Fabric connection to `host` (user, port and key from hosts.yml, the rest from ~/.ssh/config)."""
    kwargs = {"key_filename": host.ssh_key} if host.ssh_key else {}
    # Never ask for a password: hosts.yml holds none, and a prompt would hang a thread.
    kwargs.update(
        look_for_keys=True,
        allow_agent=True,
        banner_timeout=CONNECT_TIMEOUT,
        auth_timeout=CONNECT_TIMEOUT,
    )
    conn = Connection(
        host=host.host,
        user=host.user,
        port=host.port,
        connect_timeout=CONNECT_TIMEOUT,
        connect_kwargs=kwargs,
        config=_fabric_config(cfg),
    )
    # Fabric would accept any key and read no known_hosts: replace its policy.
    hostkeys.guard(conn.client, cfg, host)
    return conn


def _fabric_config(cfg: HostsConfig | None) -> Config:
    # in_stream False: a remote command never reads the driver's stdin (a
    # notebook's, pytest's, a terminal the user types into).
    overrides = {"run": {"hide": True, "warn": False, "in_stream": False}}
    if cfg is not None and cfg.ssh_config:
        # Fabric then reads Hostname/User/Port/IdentityFile for the host from it.
        return Config(overrides=overrides, runtime_ssh_path=cfg.ssh_config)
    return Config(overrides=overrides)


def _describe(exc: BaseException, host: HostSpec, cfg: HostsConfig | None) -> str:
    """The cause of a failure in one line a user can act on."""
    from invoke.exceptions import UnexpectedExit
    from paramiko.ssh_exception import (
        AuthenticationException,
        BadHostKeyException,
        NoValidConnectionsError,
        SSHException,
    )

    if isinstance(exc, SshError):
        return str(exc)
    if isinstance(exc, BadHostKeyException):
        return hostkeys.describe_bad_key(exc, cfg, host)
    if isinstance(exc, UnexpectedExit):
        r = exc.result
        tail = (r.stderr.strip() or r.stdout.strip()).splitlines()[-3:]
        return f"command failed (exit {r.exited}): {' | '.join(tail)}"
    if isinstance(exc, AuthenticationException):
        return f"SSH authentication refused for {host.address} (check user and key: ssh_key in hosts.yml, or your agent)"
    if isinstance(
        exc, NoValidConnectionsError | TimeoutError | ConnectionError | OSError
    ) and not isinstance(exc, SSHException):
        return f"unreachable: cannot connect to {host.address} ({exc})"
    return f"{type(exc).__name__}: {exc}"


def on_hosts(hosts, fn, *args, cfg: HostsConfig | None = None, **kwargs) -> HostResults:
    """Run `fn(conn, host, cfg, ...)` on every host in parallel; collect one result per host."""
    res = HostResults()
    hosts = list(hosts)
    if not hosts:
        return res

    def one(h: HostSpec):
        conn = connection(h, cfg)
        try:
            return fn(conn, h, cfg, *args, **kwargs)
        finally:
            conn.close()

    with ThreadPoolExecutor(max_workers=min(32, len(hosts))) as pool:
        futures = {h.name: (h, pool.submit(one, h)) for h in hosts}
        for name, (h, fut) in futures.items():
            try:
                res.ok[name] = fut.result()
            except Exception as exc:  # noqa: BLE001 - each host's failure is reported, none stops the others
                res.failed[name] = _describe(exc, h, cfg)
    return res


def _ssh_command(host: HostSpec, cfg: HostsConfig | None) -> str:
    parts = ["ssh", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={CONNECT_TIMEOUT}"]
    parts += hostkeys.openssh_options(cfg, host)
    if cfg is not None and cfg.ssh_config:
        parts += ["-F", cfg.ssh_config]
    if host.port:
        parts += ["-p", str(host.port)]
    if host.ssh_key:
        parts += ["-i", host.ssh_key]
    return " ".join(shlex.quote(p) for p in parts)


def _ssh_target(host: HostSpec) -> str:
    """[user@]host, as the ssh command line names it (the port goes in -p)."""
    return f"{host.user + '@' if host.user else ''}{host.host}"


def rsync_to(
    host: HostSpec,
    src: str | os.PathLike,
    dest: str,
    delete: bool = False,
    cfg: HostsConfig | None = None,
    ignore_times: bool = False,
) -> int:
    """Rsync a local directory's content to `dest` on `host`; return bytes transferred.

    `ignore_times` compares every file by content, not by size and time.
    """
    target = _ssh_target(host)
    # rsync resolves relative remote paths against $HOME, which is what ~/ means.
    dest_q = dest[2:] if dest.startswith("~/") else dest
    cmd = [
        "rsync",
        "-a",
        "--stats",
        "--exclude=__pycache__",
        "-e",
        _ssh_command(host, cfg),
    ]
    if delete:
        cmd.append("--delete")
    if ignore_times:
        cmd.append("--ignore-times")
    cmd += [f"{os.fspath(src).rstrip('/')}/", f"{target}:{dest_q.rstrip('/')}/"]
    # --protect-args keeps spaces and metacharacters in the remote path literal.
    cmd.insert(1, "--protect-args")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        keys = hostkeys.describe_openssh_failure(proc.stderr, cfg, host)
        if keys:
            raise hostkeys.HostKeyError(keys)
        raise SshError(
            f"rsync to {host.name}:{dest} failed (exit {proc.returncode}): {proc.stderr.strip()[-300:]}"
        )
    m = re.search(r"Total transferred file size: ([\d,.]+)", proc.stdout)
    return int(m.group(1).replace(",", "").replace(".", "")) if m else 0


# ------------------------------------------------------------------ run / probe


def run_command(cfg: HostsConfig, command: str, hosts) -> HostResults:
    """Run a shell command on every host; ok values are (exit code, output)."""
    hosts = list(hosts)
    res = HostResults()
    conns = {h.name: connection(h, cfg) for h in hosts}
    by_conn = {id(c): n for n, c in conns.items()}
    group = ThreadingGroup.from_connections(list(conns.values()))
    try:
        results = group.run(command, hide=True, warn=True)
    except GroupException as exc:
        results = exc.result
    finally:
        group.close()
    spec = {h.name: h for h in hosts}
    for conn, r in results.items():
        name = by_conn[id(conn)]
        if isinstance(r, BaseException):
            res.failed[name] = _describe(r, spec[name], cfg)
        elif r.exited:
            res.failed[name] = (
                f"exit {r.exited}: {(r.stderr.strip() or r.stdout.strip())[-300:]}"
            )
        else:
            res.ok[name] = (r.stdout + r.stderr).rstrip("\n")
    return res


def host_memory(
    conn: Connection, host: HostSpec, cfg: HostsConfig | None = None
) -> str:
    """Available/total memory of the host and RSS/PSS of its fleetcv engines (from /proc)."""
    wd = host.workdir
    script = (
        "awk '/MemAvailable|MemTotal/ {printf \"%s %d MB\\n\", $1, $2/1024}' /proc/meminfo; "
        f"for p in $(cat {rjoin(wd, PIDS_FILE)} 2>/dev/null); do "
        "[ -r /proc/$p/smaps_rollup ] && awk -v p=$p '/^Rss:|^Pss:|^Private_Clean:|^Private_Dirty:/ "
        '{v[$1]+=$2} END {printf "engine pid %s: RSS %.1f MB PSS %.1f MB USS %.1f MB\\n", p, '
        'v["Rss:"]/1024, v["Pss:"]/1024, (v["Private_Clean:"]+v["Private_Dirty:"])/1024}\' /proc/$p/smaps_rollup; done'
    )
    return conn.run(script).stdout.rstrip()


# ------------------------------------------------------------------ install


def install_host(
    conn: Connection, host: HostSpec, cfg: HostsConfig | None, wheelhouse: Path
) -> str:
    """Create the host's venv and install fleetcv's wheel and its dependencies in it, offline.

    Nothing is installed when the venv already holds this wheelhouse's pins
    and fleetcv wheel (`wheelhouse_digest`).

    Parameters
    ----------
    conn : Connection
        The host's Fabric connection.
    host : HostSpec
        The host (its workdir and python).
    cfg : HostsConfig or None
        The cluster (its ssh_config, for rsync).
    wheelhouse : Path
        The local wheelhouse (`build_wheelhouse`).

    Returns
    -------
    str
        What was done, one line.
    """
    wd = host.workdir
    wheel = fleetcv_wheel(wheelhouse)
    version = wheel_version(wheel)
    want = wheelhouse_digest(wheelhouse)
    conn.run(f"mkdir -p {rpath(wd)}")
    have = conn.run(
        f"cat {rjoin(wd, VENV_DIR, REQ_HASH_FILE)} 2>/dev/null || true"
    ).stdout.strip()
    if have == want:
        return (
            f"venv up to date (same requirements), nothing installed: fleetcv {version}"
        )
    # --delete: the host's wheelhouse mirrors this one, so no older fleetcv
    # wheel lingers beside the new one.
    sent = rsync_to(
        host,
        wheelhouse,
        f"{wd.rstrip('/')}/{WHEELS_DIR}",
        delete=True,
        cfg=cfg,
    )
    venv, wheels = rjoin(wd, VENV_DIR), rjoin(wd, WHEELS_DIR)
    pip = (
        f"{venv}/bin/python -m pip install -q --disable-pip-version-check "
        f"--no-index --find-links {wheels}"
    )
    remote_wheel = rjoin(wd, WHEELS_DIR, wheel.name)
    # The second pip run reinstalls fleetcv even at the same version: its
    # code may have changed (the digest says it did), and pip alone would
    # call the installed one satisfied. The old rsynced source tree goes, so
    # nothing but the installed package can be imported.
    conn.run(
        f"{shlex.quote(host.python)} -m venv {venv} && "
        f"{pip} -r {wheels}/{WHEELHOUSE_REQS} {remote_wheel} && "
        f"{pip} --no-deps --force-reinstall {remote_wheel} && "
        f"rm -rf {rjoin(wd, OLD_CODE_DIR)} && "
        f"echo {want} > {rjoin(wd, VENV_DIR, REQ_HASH_FILE)}"
    )
    return (
        f"installed into {wd}/{VENV_DIR} offline from the wheelhouse "
        f"(fleetcv {version}, {sent / 1e6:.1f} MB sent)"
    )


def install(cfg: HostsConfig, hosts, wheelhouse: Path | None = None) -> HostResults:
    """Install fleetcv (its wheel and the engine requirements) on every host, from a local wheelhouse."""
    wheelhouse = wheelhouse or build_wheelhouse()
    return on_hosts(hosts, install_host, wheelhouse, cfg=cfg)


# ------------------------------------------------------------------ engines


def _engine_python(conn: Connection, host: HostSpec) -> str:
    venv_py = rjoin(host.workdir, VENV_DIR, "bin", "python")
    if conn.run(f"test -x {venv_py}", warn=True).ok:
        return venv_py
    return shlex.quote(host.python)


def start_host_engines(
    conn: Connection, host: HostSpec, cfg: HostsConfig, count: int | None = None
) -> int:
    """Start `count` (default: hosts.yml's engines) detached engines; record their pids."""
    n = count or host.engines
    if host.engines_auto and count is None:
        n = int(conn.run("nproc").stdout.strip() or 1)
    wd = host.workdir
    conn.run(
        f"mkdir -p {rjoin(wd, SECURITY_DIR)} {rjoin(wd, LOG_DIR)} && chmod 700 {rjoin(wd, SECURITY_DIR)}"
    )
    conn_file = f"{wd.rstrip('/')}/{SECURITY_DIR}/ipcontroller-engine.json"
    info = json.loads(cl.engine_connection_file(cfg).read_text())
    if cfg.controller.tunnel:
        # The engines dial their own loopback, where the tunnel's far end listens.
        info.update(interface="tcp://127.0.0.1", location="127.0.0.1")
    # The file holds the HMAC (and curve) keys: created 0600 before a byte is
    # written, and sent over the command's stdin (never in a command line,
    # which `ps` shows; never over SFTP, which a host's sshd may not offer).
    conn.run(
        f"umask 077 && : > {rpath(conn_file)} && chmod 600 {rpath(conn_file)} "
        f"&& cat > {rpath(conn_file)}",
        in_stream=io.StringIO(json.dumps(info)),
    )
    py = _engine_python(conn, host)
    if cfg.controller.tunnel:
        open_tunnel(conn, host, cfg, py, info)
    env = cl.engine_env(host, "__WD__")
    # The engines import the fleetcv installed in their venv (hosts.install),
    # never a source tree: no PYTHONPATH, and PYTHONSAFEPATH keeps the
    # workdir (the launcher's cwd) off sys.path, so nothing there can shadow it.
    env.pop("PYTHONPATH", None)
    env["PYTHONSAFEPATH"] = "1"
    if cfg.controller.curve:
        env["IPP_ENABLE_CURVE"] = "1"
    exports = " ".join(
        f"{k}={rjoin(wd) if v == '__WD__' else shlex.quote(v)}" for k, v in env.items()
    )
    hosts_flag = f" --hosts-file {shlex.quote(cfg.path)}" if cfg.path else ""
    not_installed = shlex.quote(
        f"fleetcv is not installed for {py} on {host.name}. "
        f"Fix: invoke hosts.install{hosts_flag} --only {host.name}"
    )
    # One launcher forks all n engines (shared imports: runtime/launcher.py)
    # and appends their pids to the pids file as it goes, so a stop finds
    # them even if a later fork fails. It runs in the foreground and exits
    # once the engines run: each engine has its own session and its output
    # in the log, so nothing holds the SSH channel open.
    try:
        conn.run(
            f"cd {rpath(wd)} || exit 1; export {exports}; "
            f"{py} -c 'import runtime' 2>/dev/null || "
            f"{{ echo {not_installed} >&2; exit 3; }}; "
            f"{py} -m runtime.launcher --n={n} --pids-file={rjoin(wd, PIDS_FILE)} "
            f"--log={rjoin(wd, LOG_DIR, 'engines.log')} -- --file={rpath(conn_file)} </dev/null"
        )
    except BaseException:
        # The launcher stopped whatever it started: no engine needs the
        # tunnel unless the host already ran some (cluster.grow).
        if cfg.controller.tunnel:
            try:
                keep = host_engine_count(conn, host, cfg) > 0
            except Exception:  # noqa: BLE001 - the launch failure is the error to report
                keep = False
            if not keep:
                close_tunnel(host, cfg)
        raise
    return n


# ------------------------------------------------------------------ tunnels

#: Seconds to wait for a new tunnel to bind all its ports on the host.
TUNNEL_TIMEOUT = 30.0
#: Keys of an engine connection file that hold controller ports.
_PORT_KEYS = (
    "registration",
    "control",
    "mux",
    "task",
    "iopub",
    "hb_ping",
    "hb_pong",
    "broadcast",
)


def tunnel_ports(info: dict) -> list[int]:
    """The controller ports an engine connects to, from its connection file."""
    ports: set[int] = set()
    for key in _PORT_KEYS:
        value = info.get(key)
        ports.update(value if isinstance(value, list) else [value] if value else [])
    return sorted(ports)


def _tunnel_files(host: HostSpec, cfg: HostsConfig) -> tuple[Path, Path]:
    """The pid file and log of the host's tunnel, in the controller's state folder."""
    d = cfg.controller.state_path / "tunnels"
    return d / f"{host.name}.pid", d / f"{host.name}.log"


def _tunnel_command(host: HostSpec, cfg: HostsConfig, ports: list[int]) -> list[str]:
    cmd = shlex.split(_ssh_command(host, cfg))
    # -N: forwarding only, no remote command. A forward that cannot bind on
    # the host (port taken) ends ssh rather than leaving a half tunnel, and
    # keepalives end it when the host is gone, like any lost host. Never a
    # shared connection (ControlMaster in ~/.ssh/config): the forwards would
    # belong to the master, out of reach of the pid recorded here.
    cmd += [
        "-N",
        "-o",
        "ExitOnForwardFailure=yes",
        "-o",
        "ServerAliveInterval=15",
        "-o",
        "ServerAliveCountMax=4",
        "-o",
        "ControlMaster=no",
        "-o",
        "ControlPath=none",
    ]
    ip = cfg.controller.ip
    to = f"[{ip}]" if ":" in ip else ip  # an IPv6 address needs brackets here
    for port in ports:
        cmd += ["-R", f"127.0.0.1:{port}:{to}:{port}"]
    return [*cmd, _ssh_target(host)]


def _started(pid: int) -> str:
    """When process `pid` started: a mark that a later process under its pid does not share.

    pids get reused: the mark tells the recorded ssh from a newcomer. On
    Linux it is the start in clock ticks since boot (/proc/PID/stat, field
    22): psutil's create_time adds the boot time, which moves by a second
    whenever the wall clock is adjusted (NTP, a VM's clock sync), and a live
    tunnel would then count as gone, left running by cluster.stop.
    """
    try:
        # Field 3 first, so field 22 is the 20th.
        return "ticks:" + stat_fields(pid)[19]
    except FileNotFoundError:
        if HAS_PROCFS:
            raise psutil.NoSuchProcess(pid) from None
        # No procfs (macOS): the kernel's own start time, stored as it started.
        return f"{psutil.Process(pid).create_time()!r}"


def tunnel_pid(host: HostSpec, cfg: HostsConfig) -> int | None:
    """The pid of the host's running tunnel (the recorded ssh, still alive), or None."""
    pid_file, _ = _tunnel_files(host, cfg)
    try:
        pid_text, started = pid_file.read_text().split()
        pid = int(pid_text)
        if _started(pid) != started or not pid_alive(pid):
            return None
    except (OSError, ValueError, IndexError, psutil.Error):
        return None
    return pid


def open_tunnel(
    conn: Connection, host: HostSpec, cfg: HostsConfig, py: str, info: dict
) -> int:
    """Open (or keep) a reverse SSH tunnel from the host's loopback to the controller.

    The ssh process runs on this machine, detached, its pid recorded in the
    controller's state folder; `close_tunnel` (cluster.stop) ends it.

    Parameters
    ----------
    conn : Connection
        The host's Fabric connection (to check the tunnel from its end).
    host : HostSpec
        The host; SSH reaches it as rsync does (user, port, key, ssh_config).
    cfg : HostsConfig
        The cluster: controller address, ports and state folder.
    py : str
        The host's Python (quoted), used to probe the tunnel there.
    info : dict
        The controller's engine connection file (its ports are forwarded).

    Returns
    -------
    int
        The ssh process's pid.
    """
    ports = tunnel_ports(info)
    cmd = _tunnel_command(host, cfg, ports)
    pid = tunnel_pid(host, cfg)
    if pid is not None:
        try:
            if psutil.Process(pid).cmdline() == cmd:
                return pid  # the same forwards (cluster.grow on a tunneled host)
        except psutil.Error:
            pass
        close_tunnel(host, cfg)
    pid_file, log = _tunnel_files(host, cfg)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    # The log is appended to: only what this ssh writes explains its end.
    log_start = log.stat().st_size if log.exists() else 0
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,  # outlives this command, untouched by Ctrl-C
        )
    pid_file.write_text(f"{proc.pid} {_started(proc.pid)}\n")
    # Up when every forwarded port listens on the host's loopback (sshd binds
    # them one by one as ssh asks). That the controller answers behind them
    # shows when the engines register.
    probe = (
        f"{py} -c 'import socket\n"
        f'for p in {ports!r}: socket.create_connection(("127.0.0.1", p), 5).close()\''
    )
    deadline = time.monotonic() + TUNNEL_TIMEOUT
    try:
        while True:
            if proc.poll() is None and conn.run(probe, warn=True, hide=True).ok:
                time.sleep(0.2)  # a forward refused a moment late still ends ssh
                if proc.poll() is None:
                    return proc.pid
            if proc.poll() is not None:
                raise _tunnel_ended(proc, log, log_start, ports, cfg, host)
            if time.monotonic() > deadline:
                raise SshError(
                    f"the SSH tunnel to the controller did not bind its ports on the host "
                    f"within {TUNNEL_TIMEOUT:.0f} s (log: {log})"
                )
            time.sleep(0.3)
    except BaseException:
        with contextlib.suppress(psutil.Error):
            close_tunnel(host, cfg)  # detached: it would outlive this command
        raise


def _tunnel_ended(proc, log: Path, log_start: int, ports, cfg, host) -> SshError:
    """The error of a tunnel whose ssh ended: its host key refused, or a port taken."""
    with open(log, "rb") as fh:
        fh.seek(log_start)
        text = fh.read().decode(errors="replace")
    keys = hostkeys.describe_openssh_failure(text, cfg, host)
    if keys:
        return hostkeys.HostKeyError(keys)
    tail = text.strip().splitlines()[-2:]
    return SshError(
        f"the SSH tunnel to the controller ended (exit {proc.returncode}): "
        f"{' | '.join(tail) or 'no message'} (log: {log}). A controller port "
        f"{ports[0]}-{ports[-1]} is taken on the host (by another cluster, or by "
        "an old tunnel its sshd still holds: set ClientAliveInterval 15 in its "
        "sshd_config), or its sshd has AllowTcpForwarding off"
    )


def close_tunnel(host: HostSpec, cfg: HostsConfig, grace: float = 5.0) -> bool:
    """End the host's tunnel if it runs; whether there was one."""
    pid_file, _ = _tunnel_files(host, cfg)
    pid = tunnel_pid(host, cfg)
    if pid is None:
        pid_file.unlink(missing_ok=True)
        return False
    try:
        proc = psutil.Process(pid)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except psutil.TimeoutExpired:
            proc.kill()
    except psutil.NoSuchProcess:
        pass
    # Only once it is gone: a tunnel that could not be signalled stays recorded.
    pid_file.unlink(missing_ok=True)
    return True


#: How long one host's run directories may take to come back.
FETCH_TIMEOUT = 3600.0


def rsync_fetch_command(entry: dict, remote: str, dest: str | os.PathLike) -> list[str]:
    """The rsync command that copies `remote` of one host entry into `dest`."""
    addr = entry["address"]
    m = addr.rsplit(":", 1)
    host, port = (m[0], m[1]) if len(m) == 2 and m[1].isdigit() else (addr, None)
    ssh = [
        "ssh",
        "-o",
        "BatchMode=yes",
        "-o",
        "ConnectTimeout=10",
        # A fresh instance has a host key never seen before; a changed one is still refused.
        "-o",
        "StrictHostKeyChecking=accept-new",
    ]
    if port:
        ssh += ["-p", port]
    if entry.get("ssh_key"):
        ssh += ["-i", os.path.expanduser(entry["ssh_key"])]
    src = remote.format(workdir=entry["workdir"]).rstrip("/")
    # rsync resolves relative remote paths against $HOME, which is what ~/ means.
    src = src[2:] if src.startswith("~/") else src
    return [
        "rsync",
        "-az",
        "--protect-args",
        "-e",
        " ".join(shlex.quote(p) for p in ssh),
        f"{host}:{src}/",
        f"{os.fspath(dest).rstrip('/')}/{entry['name']}/",
    ]


def fetch_dirs(entries: list[dict], remote: str, dest: str | os.PathLike) -> None:
    """Copy every host's `remote` directory back into ``dest/<host name>/``.

    A host without the directory has nothing to fetch; any other failure
    raises, so `ec2.down` stops before it terminates anything. A host seen
    for the first time has its key recorded; a changed key is refused.

    Raises
    ------
    SshError
        Naming every host whose copy failed.
    """
    failed = []
    for entry in entries:
        Path(dest, entry["name"]).mkdir(parents=True, exist_ok=True)
        try:
            proc = subprocess.run(
                rsync_fetch_command(entry, remote, dest),
                capture_output=True,
                text=True,
                timeout=FETCH_TIMEOUT,
            )
        except subprocess.TimeoutExpired:
            failed.append(f"{entry['name']}: rsync timed out after {FETCH_TIMEOUT:g} s")
            continue
        if proc.returncode == 0:
            print(f"[{entry['name']}] fetched into {dest}/{entry['name']}/")
        elif proc.returncode == 23 and "No such file or directory" in proc.stderr:
            print(f"[{entry['name']}] nothing to fetch")
        else:
            failed.append(
                f"{entry['name']}: rsync exit {proc.returncode}: {proc.stderr.strip()[-200:]}"
            )
    if failed:
        raise SshError(
            f"fetching run directories failed ({'; '.join(failed)}); nothing was "
            "terminated. Fix: check SSH to those hosts, or pass --no-fetch to "
            "terminate without fetching"
        )


def close_tunnels_of(cfg: HostsConfig, names: list[str]) -> str:
    """Close the SSH tunnels to the hosts `names` of `cfg`; say which were closed.

    Their ssh would otherwise linger until its keepalives give up (e.g. after
    `ec2.down` removed the hosts).
    """
    gone = set(names)
    closed = [
        h.name for h in cfg.remote_hosts if h.name in gone and close_tunnel(h, cfg)
    ]
    return f"closed the SSH tunnels to {', '.join(closed)}" if closed else ""


def start_engines(cfg: HostsConfig, hosts, count: int | None = None) -> HostResults:
    """Start engines on every host; ok values are the number started."""
    return on_hosts(hosts, start_host_engines, count, cfg=cfg)


#: Shell test: is $p (still) a fleetcv engine process?
_IS_ENGINE = f'grep -qa "{CMDLINE_MARK}" "/proc/$p/cmdline" 2>/dev/null'


def stop_host_engines(
    conn: Connection, host: HostSpec, cfg: HostsConfig | None = None
) -> str:
    """Kill exactly the engine pids recorded on the host; wait until they are gone."""
    pids_file = rjoin(host.workdir, PIDS_FILE)
    # Only pids that are still engines: a recorded pid may have been reused
    # by another program since, and a zombie (empty cmdline) is already dead.
    try:
        out = conn.run(
            f"ours=''; for p in $(cat {pids_file} 2>/dev/null); do {_IS_ENGINE} && ours=\"$ours $p\"; done; n=0; "
            'for p in $ours; do kill -TERM "$p" 2>/dev/null && n=$((n+1)); done; '
            f"for i in $(seq 50); do alive=0; for p in $ours; do {_IS_ENGINE} && alive=1; done; "
            "[ $alive = 0 ] && break; sleep 0.1; done; "
            f'for p in $ours; do {_IS_ENGINE} && kill -KILL "$p"; done; '
            f"rm -f {pids_file}; echo $n"
        ).stdout.strip()
    finally:
        # Closed even when the host cannot be reached: the stop is what the
        # user asked for, and a retry finds the engines by their pids.
        try:
            closed = cfg is not None and close_tunnel(host, cfg)
        except psutil.Error:
            closed = False  # not ours to signal: the stop's own outcome is reported
    return f"{out} engines stopped" + (", tunnel closed" if closed else "")


def kill_host_engine(conn: Connection, host: HostSpec, cfg, pid: int) -> str:
    """SIGKILL one engine of the host (a fit past its timeout); only if `pid` is an engine."""
    p = int(pid)
    out = conn.run(
        f"p={p}; if {_IS_ENGINE}; then kill -KILL $p && echo killed; else echo gone; fi"
    ).stdout.strip()
    return f"engine pid {p} {'killed' if out == 'killed' else 'already gone'}"


def replace_engine(cfg: HostsConfig, host: HostSpec, pid: int) -> str:
    """Kill engine `pid` on a remote host and start one engine there in its place."""
    res = on_hosts([host], kill_host_engine, pid, cfg=cfg)
    res.raise_if_failed("stopping the engine")
    res = start_engines(cfg, [host], count=1)
    res.raise_if_failed("starting a replacement engine")
    return f"[{host.name}] engine pid {pid} stopped, a new engine started"


def stop_engines(cfg: HostsConfig, hosts) -> HostResults:
    """Stop the engines fleetcv started on every host."""
    return on_hosts(hosts, stop_host_engines, cfg=cfg)


def host_engine_count(
    conn: Connection, host: HostSpec, cfg: HostsConfig | None = None
) -> int:
    """How many of the recorded engine pids are alive on the host."""
    out = conn.run(
        f"n=0; for p in $(cat {rjoin(host.workdir, PIDS_FILE)} 2>/dev/null); do "
        f"{_IS_ENGINE} && n=$((n+1)); done; echo $n"
    ).stdout.strip()
    return int(out or 0)


def engine_status(cfg: HostsConfig, hosts) -> HostResults:
    """Running engine count per host."""
    return on_hosts(hosts, host_engine_count, cfg=cfg)


# ------------------------------------------------------------------ data


def push_host(
    conn: Connection,
    host: HostSpec,
    cfg: HostsConfig | None,
    split_path: Path,
    subdir: str = SPLITS_SUBDIR,
    marker: str = MANIFEST,
) -> str:
    """Rsync a digest-named directory (folds, or a run's code) to the host's workdir/subdir.

    Skipped when the host holds that digest already (its `marker` file and
    every checksum of SHA256SUMS, checked there); otherwise rsync copies it,
    checking every file it writes against the sender's with a whole-file
    checksum (rsync(1), under --checksum).
    """
    digest = split_path.name
    remote_dir = f"{host.workdir.rstrip('/')}/{subdir}/{digest}"
    q = rpath(remote_dir)
    # One round trip: a verified copy says so, anything else makes room.
    probe = conn.run(
        f"if test -f {q}/{marker} && (cd {q} && sha256sum --quiet -c {SUMS}) "
        f">/dev/null 2>&1; then echo {_PRESENT}; else mkdir -p {q}; fi",
        warn=True,
    )
    if probe.ok and probe.stdout.strip() == _PRESENT:
        return f"{digest}: already there and verified, 0 bytes sent"
    if not probe.ok:
        why = (probe.stdout + probe.stderr).strip()[-300:]
        raise SshError(
            f"cannot create {remote_dir}: {why} (fix: give host {host.name!r} "
            "a workdir its user can write, in the hosts file)"
        )
    # --ignore-times: a damaged file of the same size and time as the good one
    # is rewritten (and checked) too, not skipped by rsync's quick check.
    # rsync's own check of what it wrote replaces a second sha256 pass there,
    # which re-read every byte (as long as the copy itself on 2 shared cores).
    sent = rsync_to(host, split_path, remote_dir, cfg=cfg, ignore_times=True)
    return f"{digest}: pushed {sent / 1e6:.2f} MB, checked by rsync"


def push_splits(cfg: HostsConfig, split_path: str | os.PathLike, hosts) -> HostResults:
    """Push a split directory to every host's own disk."""
    return on_hosts(hosts, push_host, Path(split_path), cfg=cfg)


def push_run_files(
    cfg: HostsConfig, path: str | os.PathLike, subdir: str, hosts
) -> HostResults:
    """Push a run's digest-named folder (its code snapshot, its requirements' wheels) to workdir/subdir."""
    return on_hosts(hosts, push_host, Path(path), subdir, SUMS, cfg=cfg)


# ------------------------------------------------------------------ fab tasks


def _adhoc_host(c: Connection, workdir: str) -> HostSpec:
    return HostSpec(
        name=c.host,
        address=f"{c.user}@{c.host}:{c.port}",
        user=c.user,
        port=c.port,
        workdir=workdir,
    )


@task(help={"workdir": "the host's fleetcv workdir"})
def status(c, workdir="~/.cache/fleetcv"):
    """Number of fleetcv engines running on this host."""
    print(f"[{c.host}] {host_engine_count(c, _adhoc_host(c, workdir))} engines running")


@task(help={"workdir": "the host's fleetcv workdir"})
def memory(c, workdir="~/.cache/fleetcv"):
    """Available memory and per-engine RSS/PSS/USS on this host."""
    for line in host_memory(c, _adhoc_host(c, workdir)).splitlines():
        print(f"[{c.host}] {line}")


@task(help={"workdir": "the host's fleetcv workdir"})
def stop(c, workdir="~/.cache/fleetcv"):
    """Stop the fleetcv engines recorded on this host."""
    print(f"[{c.host}] {stop_host_engines(c, _adhoc_host(c, workdir))}")


class SshBackend:
    """The `Backend` contract over SSH: this module's functions, one host list at a time."""

    name = "ssh"
    start_engines = staticmethod(start_engines)
    stop_engines = staticmethod(stop_engines)
    engine_status = staticmethod(engine_status)
    replace_engine = staticmethod(replace_engine)
    push_splits = staticmethod(push_splits)
    push_run_files = staticmethod(push_run_files)
    install = staticmethod(install)
    run_command = staticmethod(run_command)
    # SSH's own: the tunnels and the fetch of a host's folders.
    tunnel_pid = staticmethod(tunnel_pid)
    close_tunnels_of = staticmethod(close_tunnels_of)
    fetch_dirs = staticmethod(fetch_dirs)
    print_results = staticmethod(print_results)


__all__ = [
    "HostResults",
    "SshBackend",
    "close_tunnels_of",
    "engine_status",
    "fetch_dirs",
    "install",
    "memory",
    "print_results",
    "push_run_files",
    "push_splits",
    "replace_engine",
    "run_command",
    "start_engines",
    "status",
    "stop",
    "stop_engines",
    "tunnel_pid",
]

"""Creating the namespace test cluster: check the machine, build the bridge, the hosts and their sshd.

Runs on the test machine, as root (see `fleetcv.devtools.testcluster`).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from fleetcv.devtools.testcluster.procs import (
    _keygen,
    _link_exists,
    _log_tail,
    _names,
    _netns_list,
    _netns_pids,
    _resolve_base_dir,
    _run,
    _validate,
    _wait_dead,
    _write_private,
    _write_state,
)
from fleetcv.devtools.testcluster.settings import (
    BRIDGE_HOST_PART,
    DEFAULT_N_HOSTS,
    DEFAULT_PREFIX,
    DEFAULT_SUBNET,
    HOST_IFNAME,
    HOST_IP_OFFSET,
    KEY_NAME,
    POLL_INTERVAL,
    PREFIX_LEN,
    PROBE_NETNS,
    REQUIRED_TOOLS,
    SSH_CONNECT_TIMEOUT,
    SSH_PORT,
    SSH_READY_TIMEOUT,
    SSH_USER,
    SSHD,
    SSHD_CONFIG_TEMPLATE,
    SSHD_RUN_DIR,
    STATE_FILE,
    UNSHARE_PRIVATE_MOUNT,
    WORKDIR,
)
from fleetcv.devtools.testcluster.teardown import _delete_network, down


def available() -> tuple[bool, str]:
    """Tell whether this machine can create the test cluster.

    Checks that we are root, that ``ip``, ``unshare``, ``ssh``,
    ``ssh-keygen``, ``rsync`` and ``/usr/sbin/sshd`` exist, and that a network
    namespace can actually be created (by adding and deleting a probe one).

    Returns
    -------
    tuple of (bool, str)
        ``(True, "")`` if usable, else ``(False, reason)``.
    """
    if not sys.platform.startswith("linux"):
        return False, f"needs Linux, this is {sys.platform}"
    if os.geteuid() != 0:
        return False, "needs root (network namespaces, bridges, sshd)"
    missing = [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]
    if not os.access(SSHD, os.X_OK):
        missing.append(SSHD)
    if missing:
        return (
            False,
            f"missing tools: {', '.join(missing)} "
            "(apt-get install -y openssh-server rsync)",
        )
    probe = PROBE_NETNS.format(pid=os.getpid())
    try:
        add = _run(["ip", "netns", "add", probe], check=False)
        if add.returncode != 0:
            return False, f"cannot create a network namespace: {add.stderr.strip()}"
        rm = _run(["ip", "netns", "delete", probe], check=False)
        if rm.returncode != 0:
            return False, f"cannot delete a network namespace: {rm.stderr.strip()}"
    except (OSError, subprocess.SubprocessError) as exc:
        return False, f"cannot use ip netns: {exc}"
    return True, ""


def up(
    n_hosts: int = DEFAULT_N_HOSTS,
    base_dir: str | os.PathLike | None = None,
    prefix: str = DEFAULT_PREFIX,
    subnet: str = DEFAULT_SUBNET,
) -> dict:
    """Create the test cluster and wait until every host answers SSH.

    If ``base_dir`` already holds a state file from an earlier cluster, that
    cluster is torn down first.  Interface or namespace names that exist but
    are not recorded there are reclaimed when abandoned (a namespace with no
    process left in it, a bridge with nothing attached: what a killed test
    run leaves behind); names still in use by a live process are left alone
    and make ``up`` fail, naming the processes.  Each host's
    disk directory is emptied, so every cluster starts with blank disks.

    Parameters
    ----------
    n_hosts : int
        Number of hosts, named ``f"{prefix}{i}"`` for ``i`` in ``1..n_hosts``.
    base_dir : str or os.PathLike, optional
        Private (0700) directory for keys, configs, logs, disks and the state
        file.  Defaults to ``~/.cache/fleetcv/testcluster``.
    prefix : str
        Prefix of host, namespace and interface names (lowercase
        alphanumerics; short enough for 15-character interface names).
    subnet : str
        First three octets of the /24 used; the bridge is ``<subnet>.1``.

    Returns
    -------
    dict
        JSON-serialisable state, also written to ``<base_dir>/testcluster.json``
        (0600): ``base_dir``, ``bridge``, ``bridge_ip``, ``subnet``,
        ``prefix``, ``key``, ``ssh_config``, ``known_hosts`` and ``hosts``, a
        list of dicts with ``name``, ``netns``, ``ip``, ``address``, ``user``,
        ``port``, ``key``, ``disk``, ``workdir``, ``sshd_pid`` (plus
        ``veth``, ``host_dir``, ``sshd_config``, ``sshd_log``).

    Raises
    ------
    RuntimeError
        If the cluster cannot be created or a host does not accept SSH within
        ``SSH_READY_TIMEOUT`` seconds; whatever was created is torn down first.
    """
    _validate(n_hosts, prefix, subnet)
    ok, reason = available()
    if not ok:
        raise RuntimeError(f"test cluster not available: {reason}")

    base = _resolve_base_dir(base_dir)
    base.mkdir(parents=True, exist_ok=True)
    base.chmod(0o700)
    if (base / STATE_FILE).exists():
        down(base)
    _reclaim_abandoned(prefix)
    _check_names_free(base, n_hosts, prefix)

    state = _new_state(base, prefix, subnet)
    procs: list[subprocess.Popen] = []
    try:
        _build(state, n_hosts, procs)
        _wait_ready(state, procs)
    except BaseException as exc:
        try:
            down(state)
        except Exception as cleanup_exc:  # noqa: BLE001 - report, keep the original error
            exc.add_note(f"teardown after failed up() also failed: {cleanup_exc}")
        raise
    return state


def _reclaim_abandoned(prefix: str) -> None:
    """Delete the namespaces and links of this prefix that nothing uses any more.

    A test run killed before its teardown (a CI job stopped, a session ended)
    leaves its namespaces, veths and bridge behind with no process in them;
    without this every later run with the same prefix would refuse to start.
    A namespace that still holds a process (a concurrent run's sshd) is
    never touched, nor is a bridge that carries anything else.
    """
    existing_ns = _netns_list()
    # Every host of an earlier cluster of this prefix, however many it had.
    numbered = [
        _names(prefix, int(ns[len(prefix) :]))
        for ns in sorted(existing_ns)
        if ns.startswith(prefix) and ns[len(prefix) :].isdigit()
    ]
    abandoned = [
        {"netns": names["name"], "veth": names["veth"]}
        for names in numbered
        if not _netns_pids(names["name"])
    ]
    bridge = f"{prefix}br0"
    # The bridge is reclaimed only when everything on it was an abandoned
    # host of ours: a bare bridge of that name may be someone else's.
    attached = _run(["ip", "-o", "link", "show", "master", bridge], check=False)
    on_bridge = {
        line.split(":")[1].strip().split("@")[0]
        for line in attached.stdout.splitlines()
        if line.strip()
    }
    ours = bool(on_bridge) and on_bridge <= {h["veth"] for h in abandoned}
    errors: list[str] = []
    if abandoned:
        _delete_network(
            {"bridge": bridge if ours else None}, abandoned, existing_ns, errors
        )
    if errors:
        raise RuntimeError("could not reclaim abandoned names: " + "; ".join(errors))


def _check_names_free(base: Path, n_hosts: int, prefix: str) -> None:
    """Raise if the bridge, a namespace or a veth of the new cluster already exists."""
    bridge = f"{prefix}br0"
    existing_ns = _netns_list()
    clashes = [bridge] if _link_exists(bridge) else []
    for i in range(1, n_hosts + 1):
        names = _names(prefix, i)
        if names["name"] in existing_ns:
            pids = " ".join(map(str, _netns_pids(names["name"])))
            clashes.append(f"netns {names['name']} (pids {pids or 'none'})")
        clashes += [names[k] for k in ("veth", "peer") if _link_exists(names[k])]
    if clashes:
        raise RuntimeError(
            f"names already in use and not recorded in {base / STATE_FILE}: "
            f"{', '.join(clashes)};"
            " remove them or use another prefix"
        )


def _new_state(base: Path, prefix: str, subnet: str) -> dict:
    """The state of a cluster with nothing created yet."""
    return {
        "base_dir": str(base),
        "bridge": None,
        "bridge_ip": f"{subnet}.{BRIDGE_HOST_PART}",
        "subnet": subnet,
        "prefix": prefix,
        "key": str(base / KEY_NAME),
        "ssh_config": str(base / "ssh_config"),
        "known_hosts": str(base / "known_hosts"),
        "hosts": [],
    }


def _build(state: dict, n_hosts: int, procs: list[subprocess.Popen]) -> None:
    """Create keys, bridge, namespaces and sshds, recording each in ``state``."""
    # Mount point for the per-host bind mounts, and sshd's privsep directory.
    os.makedirs(WORKDIR, exist_ok=True)
    os.makedirs(SSHD_RUN_DIR, mode=0o755, exist_ok=True)
    _make_client_key(state)
    _make_bridge(state)

    ssh_config, known_hosts = [], []
    for i in range(1, n_hosts + 1):
        names = _names(state["prefix"], i)
        host = _host_record(state, names["name"], i)
        # Record before creating so a failure half-way is still cleaned up.
        state["hosts"].append(host)
        _write_state(state)

        _make_netns(host, names, state["bridge"])
        known_hosts.append(_make_host_files(state, host))
        ssh_config.append(_ssh_config_entry(host, state["known_hosts"]))
        procs.append(_start_sshd(host))
        host["sshd_pid"] = procs[-1].pid
        _write_state(state)

    _write_private(Path(state["ssh_config"]), "\n".join(ssh_config))
    _write_private(Path(state["known_hosts"]), "\n".join(known_hosts) + "\n")
    _write_state(state)


def _make_client_key(state: dict) -> None:
    """The key every host accepts (its ``authorized_keys``)."""
    key = Path(state["key"])
    _keygen(key, "fleetcv-testcluster")
    authorized_keys = Path(state["base_dir"]) / "authorized_keys"
    _write_private(authorized_keys, key.with_name(key.name + ".pub").read_text())
    _write_state(state)


def _make_bridge(state: dict) -> None:
    """The bridge in the root namespace, carrying the controller's address."""
    bridge = f"{state['prefix']}br0"
    _run(["ip", "link", "add", "name", bridge, "type", "bridge"])
    state["bridge"] = bridge
    _write_state(state)
    _run(["ip", "addr", "add", f"{state['bridge_ip']}/{PREFIX_LEN}", "dev", bridge])
    _run(["ip", "link", "set", bridge, "up"])


def _host_record(state: dict, name: str, i: int) -> dict:
    """Host ``i``'s entry of the state, before any of it exists."""
    ip = f"{state['subnet']}.{HOST_IP_OFFSET + i}"
    host_dir = Path(state["base_dir"]) / "hosts" / name
    return {
        "name": name,
        "netns": name,
        "ip": ip,
        "address": f"{SSH_USER}@{ip}",
        "user": SSH_USER,
        "port": SSH_PORT,
        "key": state["key"],
        "disk": str(host_dir / "disk"),
        "workdir": WORKDIR,
        "sshd_pid": None,
        "veth": _names(state["prefix"], i)["veth"],
        "host_dir": str(host_dir),
        "sshd_config": str(host_dir / "sshd_config"),
        "sshd_log": str(host_dir / "sshd.log"),
    }


def _make_netns(host: dict, names: dict[str, str], bridge: str) -> None:
    """The host's namespace, its veth pair into the bridge and its address."""
    name, ip = host["name"], host["ip"]
    _run(["ip", "netns", "add", name])
    _run(
        [
            "ip",
            "link",
            "add",
            names["veth"],
            "type",
            "veth",
            "peer",
            "name",
            names["peer"],
        ]
    )
    _run(["ip", "link", "set", names["peer"], "netns", name])
    _run(["ip", "-n", name, "link", "set", names["peer"], "name", HOST_IFNAME])
    _run(["ip", "-n", name, "addr", "add", f"{ip}/{PREFIX_LEN}", "dev", HOST_IFNAME])
    _run(["ip", "-n", name, "link", "set", HOST_IFNAME, "up"])
    _run(["ip", "-n", name, "link", "set", "lo", "up"])
    _run(["ip", "link", "set", names["veth"], "master", bridge])
    _run(["ip", "link", "set", names["veth"], "up"])
    # No default route on purpose: hosts reach the bridge address and each
    # other on the shared /24 (plain L2 bridging, no ip_forward needed)
    # and nothing else.


def _make_host_files(state: dict, host: dict, blank_disk: bool = True) -> str:
    """The host's blank disk, host key and sshd_config; its known_hosts line."""
    host_dir = Path(host["host_dir"])
    host_dir.mkdir(parents=True, exist_ok=True)
    host_dir.chmod(0o700)
    disk = Path(host["disk"])
    if blank_disk:
        if disk.exists():
            shutil.rmtree(disk)  # fresh cluster, blank disks
        disk.mkdir()
    host_key = host_dir / "ssh_host_ed25519_key"
    _keygen(host_key, f"fleetcv-testcluster-{host['name']}")
    _write_private(
        Path(host["sshd_config"]),
        SSHD_CONFIG_TEMPLATE.format(
            name=host["name"],
            ip=host["ip"],
            port=SSH_PORT,
            host_key=host_key,
            authorized_keys=Path(state["base_dir"]) / "authorized_keys",
        ),
    )
    pub = host_key.with_name(host_key.name + ".pub").read_text().strip()
    return f"{host['ip']} {pub}"


def _ssh_config_entry(host: dict, known_hosts: str) -> str:
    """The ``ssh_config`` block that reaches the host by name or address.

    Host keys are checked for real, against the cluster's own known_hosts
    (written as the hosts are made), as fleetcv reads it from here.
    """
    ip = host["ip"]
    return (
        f"Host {host['name']} {ip}\n"
        f"    HostName {ip}\n"
        f"    User {SSH_USER}\n"
        f"    Port {SSH_PORT}\n"
        f"    IdentityFile {host['key']}\n"
        "    IdentitiesOnly yes\n"
        "    StrictHostKeyChecking yes\n"
        f"    UserKnownHostsFile {known_hosts}\n"
        "    LogLevel ERROR\n"
        "    BatchMode yes\n"
    )


def _start_sshd(host: dict) -> subprocess.Popen:
    """Start the host's sshd in its namespace, with its disk bind-mounted."""
    # The private mount namespace makes the bind mount visible to this
    # sshd and everything started through it only.  unshare (without
    # --fork) and `sh -c exec` both exec, so the Popen pid *is* sshd, and
    # start_new_session makes it a process-group leader for killpg.
    inner = (
        f"mount --bind {shlex.quote(host['disk'])} {WORKDIR}"
        f" && exec {SSHD} -D -e -f {shlex.quote(host['sshd_config'])}"
    )
    cmd = [
        "ip",
        "netns",
        "exec",
        host["name"],
        *UNSHARE_PRIVATE_MOUNT,
        "sh",
        "-c",
        inner,
    ]
    # Truncate: the log tail quoted in errors must be from this run.
    with open(host["sshd_log"], "wb") as log:
        return subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )


def _ssh_cmd(state: dict, name: str, command: str) -> list[str]:
    return [
        "ssh",
        "-F",
        state["ssh_config"],
        "-o",
        f"ConnectTimeout={SSH_CONNECT_TIMEOUT}",
        name,
        command,
    ]


def _wait_ready(state: dict, procs: list[subprocess.Popen]) -> None:
    """Poll ``ssh NAME true`` on every host until all succeed or time runs out."""
    deadline = time.monotonic() + SSH_READY_TIMEOUT
    pending = list(zip(state["hosts"], procs, strict=True))
    last_err: dict[str, str] = {}
    while pending:
        for host, proc in pending:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"sshd of host {host['name']} exited with {proc.returncode}; "
                    f"log {host['sshd_log']}:\n{_log_tail(host['sshd_log'])}"
                )
        # Probe all pending hosts at once: each ssh costs a few hundred ms
        # (key exchange, root's shell startup).
        probes = [
            subprocess.Popen(
                _ssh_cmd(state, host["name"], "true"),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            for host, _ in pending
        ]
        still = []
        for (host, proc), probe in zip(pending, probes, strict=True):
            try:
                _, err = probe.communicate(timeout=SSH_CONNECT_TIMEOUT + 3)
                ok, last_err[host["name"]] = probe.returncode == 0, err.strip()
            except subprocess.TimeoutExpired:
                probe.kill()
                probe.communicate()
                ok, last_err[host["name"]] = False, "ssh timed out"
            if not ok:
                still.append((host, proc))
        pending = still
        if pending and time.monotonic() > deadline:
            host = pending[0][0]
            raise RuntimeError(
                f"host {host['name']} ({host['ip']}) did not accept ssh within "
                f"{SSH_READY_TIMEOUT:g}s; last ssh error: "
                f"{last_err.get(host['name'])!r}; "
                f"sshd log {host['sshd_log']}:\n{_log_tail(host['sshd_log'])}"
            )
        if pending:
            time.sleep(POLL_INTERVAL * 2)


def rekey(state: dict, name: str, timeout: float = SSH_READY_TIMEOUT) -> str:
    """Give host `name` a new host key, as a reinstalled machine would have.

    Its sshd is stopped (by pid), the key regenerated and sshd started
    again; established sessions (engines) are untouched. The cluster's
    known_hosts is *not* changed: a client that knew the old key sees a
    changed one.

    Returns
    -------
    str
        The host's new known_hosts line.
    """
    host = next(h for h in state["hosts"] if h["name"] == name)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(host["sshd_pid"], signal.SIGTERM)
    if _wait_dead([host["sshd_pid"]], timeout):
        raise RuntimeError(f"sshd of {name} (pid {host['sshd_pid']}) did not stop")
    line = _make_host_files(state, host, blank_disk=False)
    host["sshd_pid"] = _start_sshd(host).pid
    _write_state(state)
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((host["ip"], SSH_PORT), 1).close()
            return line
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"sshd of {name} did not listen again within {timeout:g} s; "
                    f"log {host['sshd_log']}:\n{_log_tail(host['sshd_log'])}"
                ) from None
            time.sleep(0.1)

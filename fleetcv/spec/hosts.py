"""hosts.yml: the cluster's controller and hosts, validated into dataclasses.

Runs on the driver (the laptop), and in fabfile.py, which reads the hosts'
settings (address, workdir, python, engines) to set them up over SSH.
`load_hosts` finds and reads the file; `parse_hosts` validates a mapping
already in memory (fleetcv/ec2 and the bench build theirs). Everything downstream receives a
`HostsConfig`, never raw YAML.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleetcv.errors import ConfigError
from fleetcv.spec.common import check_keys, err, expect_bool, read_yaml

#: Where a host keeps its venv, split files and engine pids when hosts.yml says nothing.
DEFAULT_WORKDIR = "~/.cache/fleetcv"
#: ipcontroller needs at least 14 ports with the default schedulers (18 seen on
#: ipyparallel 9.2); a 40-port range leaves room so it never falls back to
#: random ports, which a firewall would block.
DEFAULT_PORTS = (55000, 55039)
MIN_PORTS = 20
#: Environment variable naming the hosts file when --hosts-file is not given.
HOSTS_ENV = "FLEETCV_HOSTS"


@dataclass(frozen=True)
class ControllerSpec:
    """Where the ipyparallel controller listens and keeps its state."""

    ip: str = "127.0.0.1"
    ports: tuple[int, int] = DEFAULT_PORTS
    curve: bool = False
    #: Remote engines reach the controller through a reverse SSH tunnel that
    #: this machine opens to each host, so a laptop behind NAT can drive them.
    tunnel: bool = False
    allow_any_interface: bool = False
    #: Tasks queued ahead on each engine (ipyparallel's TaskScheduler.hwm):
    #: 1 balances best; 2 hides the round trip between tiny tasks.
    task_hwm: int = 1
    state_dir: str = "~/.cache/fleetcv/controller"
    #: The controller pings every engine every `heartbeat_seconds` and drops
    #: one that misses `heartbeat_misses` pings in a row: that is how a killed
    #: engine or a lost host is noticed (engines run without a nanny). The
    #: controller also admits a new engine only on a beat that hears it
    #: (ipyparallel's hub): a short period starts a cluster sooner (2 s took
    #: 2-4 s to register freshly forked engines, 0.5 s 0.5-1 s); 20 misses keep
    #: the 10 s of silence that drop an engine.
    heartbeat_seconds: float = 0.5
    heartbeat_misses: int = 20

    @property
    def state_path(self) -> Path:
        """The expanded state directory (profile, connection files, pids)."""
        return Path(os.path.expanduser(self.state_dir))


@dataclass(frozen=True)
class HostSpec:
    """One host of the cluster."""

    name: str
    local: bool = False
    address: str | None = None
    user: str | None = None
    port: int | None = None
    engines: int = 1
    #: `engines: auto` on a remote host: one per core of that host, counted there.
    engines_auto: bool = False
    #: BLAS/OpenMP threads per engine. 1 by default: the engines already
    #: fill the cores one each, so more threads would oversubscribe them.
    threads: int = 1
    workdir: str = DEFAULT_WORKDIR
    python: str = "python3"
    ssh_key: str | None = None
    #: What runs its engines (`fleetcv.backends.BACKENDS`): local or ssh.
    backend: str = "ssh"

    @property
    def host(self) -> str | None:
        """The bare host name or IP that SSH connects to."""
        if self.address is None:
            return None
        addr = self.address.split("@", 1)[-1]
        return addr.rsplit(":", 1)[0] if addr.count(":") == 1 else addr

    @property
    def workdir_path(self) -> str:
        """The workdir, with ~ expanded for local hosts (remote ones expand it)."""
        return os.path.expanduser(self.workdir) if self.local else self.workdir


@dataclass(frozen=True)
class HostsConfig:
    """A validated hosts.yml."""

    path: str
    controller: ControllerSpec
    hosts: tuple[HostSpec, ...]
    ssh_config: str | None = None
    #: How SSH host keys are checked: accept-new (trust on first use) or strict.
    host_keys: str = "accept-new"
    #: The known_hosts file; None: ssh_config's UserKnownHostsFile, else ~/.ssh/known_hosts.
    known_hosts: str | None = None

    @property
    def local_host(self) -> HostSpec | None:
        """The host marked `local: true`, if any."""
        return next((h for h in self.hosts if h.local), None)

    @property
    def remote_hosts(self) -> tuple[HostSpec, ...]:
        """The hosts of a backend other than this machine's (SSH's)."""
        return tuple(h for h in self.hosts if h.backend != "local")

    @property
    def n_engines(self) -> int:
        """The number of engines over all hosts."""
        return sum(h.engines for h in self.hosts)

    def only(self, names: str | None) -> tuple[HostSpec, ...]:
        """Return the hosts named in a comma-separated list (all when None)."""
        if not names:
            return self.hosts
        wanted = [n.strip() for n in names.split(",") if n.strip()]
        known = {h.name for h in self.hosts}
        for n in wanted:
            if n not in known:
                raise ConfigError(
                    f"--only: no host named {n!r} in {self.path}. Fix: use one "
                    f"of {', '.join(sorted(known))}"
                )
        return tuple(h for h in self.hosts if h.name in wanted)


DEFAULT_HOSTS = {
    "controller": {"ip": "127.0.0.1", "ports": list(DEFAULT_PORTS)},
    "hosts": [
        {
            "name": "localhost",
            "local": True,
            "engines": "auto",
            "workdir": DEFAULT_WORKDIR,
        }
    ],
}


#: Every host's name: short, and safe in file names and shell commands.
_HOST_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
#: A remote host's address: [user@]host[:port]. The parts are checked
#: further (`_host_address`): nothing here may start an ssh option or carry
#: shell syntax, since the address goes into ssh and rsync command lines.
_ADDRESS = re.compile(r"(?:([^@\s]+)@)?([^@:\s]+)(?::(\d+))?")
_USER = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
_DNS_NAME = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?")
#: hosts.yml's host_keys values (see fleetcv.backends.hostkeys).
HOST_KEY_POLICIES = ("accept-new", "strict")
#: The keys a host may have.
_HOST_KEYS = {
    "name",
    "local",
    "address",
    "user",
    "engines",
    "threads",
    "workdir",
    "python",
    "ssh_key",
    "backend",
    # Refused with its own message: passwords never go in hosts.yml.
    "password",
    # Written by `invoke ec2.up`: which instance this host is, for ec2.down.
    "ec2_instance_id",
}


def resolve_hosts_file(hosts_file: str | None) -> Path | None:
    """Pick the hosts file: the flag, then $FLEETCV_HOSTS, then ./hosts.yml.

    Parameters
    ----------
    hosts_file : str or None
        The --hosts-file flag, if given.

    Returns
    -------
    Path or None
        The file to read; None when none of them exists and none was asked
        for explicitly, meaning "this machine alone".
    """
    if hosts_file:
        return Path(hosts_file)
    if os.environ.get(HOSTS_ENV):
        return Path(os.environ[HOSTS_ENV])
    default = Path("hosts.yml")
    return default if default.is_file() else None


def load_hosts(hosts_file: str | os.PathLike | None = None) -> HostsConfig:
    """Load and validate a hosts file.

    Parameters
    ----------
    hosts_file : path or None
        The file; None means "resolve": $FLEETCV_HOSTS, then ./hosts.yml,
        then the built-in default (this machine alone, one engine per core).

    Returns
    -------
    HostsConfig

    Raises
    ------
    ConfigError
        On any problem, naming the file, key, value and fix.
    """
    path = resolve_hosts_file(os.fspath(hosts_file) if hosts_file else None)
    if path is None:
        return parse_hosts(DEFAULT_HOSTS, "<built-in default hosts>")
    return parse_hosts(read_yaml(path, "hosts"), str(path))


def parse_hosts(data: dict, where: str) -> HostsConfig:
    """Validate the already-parsed YAML of a hosts file (see `load_hosts`).

    Parameters
    ----------
    data : dict
        The file's top-level mapping.
    where : str
        What to name in messages: the file, or e.g. ``<built-in default hosts>``.

    Returns
    -------
    HostsConfig

    Raises
    ------
    ConfigError
        On the first problem, naming `where`, the key, the value and the fix.
    """
    check_keys(
        where,
        "",
        data,
        {"controller", "hosts", "ssh_config", "host_keys", "known_hosts"},
    )
    ssh_config = _parse_ssh_config(where, data.get("ssh_config"))
    host_keys = data.get("host_keys", HostsConfig.host_keys)
    if host_keys not in HOST_KEY_POLICIES:
        raise err(
            where,
            "host_keys",
            f"expected one of {', '.join(HOST_KEY_POLICIES)}, got {host_keys!r}",
            "write host_keys: accept-new (record a new host's key, refuse a changed "
            "one) or host_keys: strict (every host already in known_hosts)",
        )
    known_hosts = data.get("known_hosts")
    if known_hosts is not None and (
        not isinstance(known_hosts, str) or not known_hosts
    ):
        raise err(
            where,
            "known_hosts",
            f"expected a file path, got {known_hosts!r}",
            "write e.g. known_hosts: ~/.ssh/known_hosts, or drop the key",
        )
    controller = _parse_controller(where, data.get("controller"))
    hosts = _parse_host_list(where, data.get("hosts"))
    return HostsConfig(
        path=where,
        controller=controller,
        hosts=hosts,
        ssh_config=ssh_config,
        host_keys=host_keys,
        known_hosts=known_hosts,
    )


# --------------------------------------------------------------------------- checks
# Each takes (where, key, value) and returns the validated value.

_Check = Callable[[str, str, Any], Any]


def _positive_int(where: str, key: str, value: Any, allow_auto: bool = False) -> int:
    if allow_auto and value == "auto":
        return os.cpu_count() or 1
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        expected = (
            'a positive integer or "auto"' if allow_auto else "a positive integer"
        )
        raise err(
            where,
            key,
            f"expected {expected}, got {value!r}",
            f"set {key} to {expected}",
        )
    return value


def _positive_number(where: str, key: str, value: Any, minimum: float) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < minimum
    ):
        raise err(
            where,
            key,
            f"expected a number >= {minimum}, got {value!r}",
            f"set {key} to a number of seconds >= {minimum}",
        )
    return float(value)


def _heartbeat_seconds(where: str, key: str, value: Any) -> float:
    return _positive_number(where, key, value, minimum=0.1)


def _as_str(where: str, key: str, value: Any) -> str:
    return str(value)


def _controller_ip(where: str, key: str, value: Any) -> str:
    """An IP address (any spelling, written back canonical), or "*"."""
    if value == "*":
        return value
    try:
        return str(ipaddress.ip_address(value if isinstance(value, str) else ""))
    except ValueError:
        raise err(
            where,
            key,
            f"expected an IP address of this machine, got {value!r}",
            "write the address the engines connect to, e.g. ip: 10.0.0.5 "
            "(127.0.0.1 for this machine alone)",
        ) from None


def _flag(where: str, key: str, value: Any) -> bool:
    name = key.rsplit(".", 1)[-1]
    return expect_bool(where, key, value, f"write {name}: true or {name}: false")


def _port_range(where: str, key: str, ports: Any) -> tuple[int, int]:
    if (
        not isinstance(ports, list)
        or len(ports) != 2
        or not all(isinstance(p, int) and not isinstance(p, bool) for p in ports)
        or not 1024 <= ports[0] < ports[1] <= 65535
    ):
        raise err(
            where,
            key,
            f"expected [first, last] with 1024 <= first < last <= 65535, got {ports!r}",
            "write e.g. ports: [55000, 55039]",
        )
    if ports[1] - ports[0] + 1 < MIN_PORTS:
        raise err(
            where,
            key,
            f"{ports!r} holds {ports[1] - ports[0] + 1} ports, the controller needs "
            f"at least {MIN_PORTS}",
            f"widen the range, e.g. [{ports[0]}, {ports[0] + 39}]",
        )
    return (ports[0], ports[1])


# --------------------------------------------------------------------------- sections


def _parse_ssh_config(where: str, ssh_config: Any) -> str | None:
    if ssh_config is None:
        return None
    ssh_config = os.path.expanduser(str(ssh_config))
    if not os.path.isfile(ssh_config):
        raise err(
            where,
            "ssh_config",
            f"{ssh_config} does not exist",
            "point it at an ssh_config file, or drop the key to use ~/.ssh/config",
        )
    return ssh_config


#: controller.<key> -> (default, check), one per ControllerSpec field. The
#: checks run in this order, so of several bad keys the first is reported.
_CONTROLLER_FIELDS: dict[str, tuple[Any, _Check]] = {
    "ip": (ControllerSpec.ip, _controller_ip),
    "allow_any_interface": (ControllerSpec.allow_any_interface, _flag),
    "ports": (list(DEFAULT_PORTS), _port_range),
    "curve": (ControllerSpec.curve, _flag),
    "tunnel": (ControllerSpec.tunnel, _flag),
    "state_dir": (ControllerSpec.state_dir, _as_str),
    "task_hwm": (ControllerSpec.task_hwm, _positive_int),
    "heartbeat_seconds": (ControllerSpec.heartbeat_seconds, _heartbeat_seconds),
    "heartbeat_misses": (ControllerSpec.heartbeat_misses, _positive_int),
}


def _parse_controller(where: str, raw: Any) -> ControllerSpec:
    ctl = raw or {}
    if not isinstance(ctl, dict):
        raise err(
            where, "controller", f"expected a mapping, got {ctl!r}", "see README.md"
        )
    check_keys(where, "controller.", ctl, set(_CONTROLLER_FIELDS))
    values = {
        name: check(where, f"controller.{name}", ctl.get(name, default))
        for name, (default, check) in _CONTROLLER_FIELDS.items()
    }
    # The one rule that ties two keys, on the parsed values: "false" is no
    # true, and 0, "::0" or "0:0::0" are all of 0.0.0.0 or ::.
    ip = values["ip"]
    if ip == "*" or ipaddress.ip_address(ip).is_unspecified:
        if not values["allow_any_interface"]:
            raise err(
                where,
                "controller.ip",
                f"{ip} listens on every interface, so anyone who can reach this "
                "machine can reach the controller",
                "use the address engines connect to, or set "
                "controller.allow_any_interface: true if you really mean it",
            )
    return ControllerSpec(**values)


def _parse_host_list(where: str, raw_hosts: Any) -> tuple[HostSpec, ...]:
    if not isinstance(raw_hosts, list) or not raw_hosts:
        raise err(
            where,
            "hosts",
            f"expected a non-empty list, got {raw_hosts!r}",
            "list at least one host (see README.md)",
        )
    seen: set[str] = set()
    hosts = tuple(
        _parse_host(where, f"hosts[{i}]", h, seen) for i, h in enumerate(raw_hosts)
    )
    if sum(h.local for h in hosts) > 1:
        raise err(
            where,
            "hosts",
            "more than one host has local: true",
            "mark only this machine as local",
        )
    return hosts


def _parse_host(where: str, key: str, h: Any, seen: set[str]) -> HostSpec:
    """Validate hosts[i] (`key`); `seen` collects the names so far."""
    if not isinstance(h, dict):
        raise err(
            where,
            key,
            f"expected a mapping, got {h!r}",
            "write name/address/engines keys",
        )
    check_keys(where, f"{key}.", h, _HOST_KEYS)
    if "password" in h:
        raise err(
            where,
            f"{key}.password",
            "passwords are never read from hosts.yml",
            "use an SSH key or agent (ssh_key: ~/.ssh/id_ed25519)",
        )
    name = _host_name(where, f"{key}.name", h.get("name"), seen)
    local = _flag(where, f"{key}.local", h.get("local", False))
    address = h.get("address")
    user, port = _host_address(
        where, f"{key}.address", name, local, address, h.get("user")
    )
    raw_engines = h.get("engines", "auto" if local else 1)
    engines = _positive_int(where, f"{key}.engines", raw_engines, allow_auto=True)
    workdir = _host_workdir(where, f"{key}.workdir", h.get("workdir", DEFAULT_WORKDIR))
    return HostSpec(
        name=name,
        local=local,
        address=address,
        user=user,
        port=port,
        engines=engines,
        engines_auto=raw_engines == "auto" and not local,
        threads=_positive_int(
            where, f"{key}.threads", h.get("threads", HostSpec.threads)
        ),
        workdir=workdir,
        python=str(h.get("python", HostSpec.python)),
        ssh_key=os.path.expanduser(h["ssh_key"]) if h.get("ssh_key") else None,
        backend=_host_backend(where, f"{key}.backend", h.get("backend"), local),
    )


#: The backends a host may name (`fleetcv.backends.BACKENDS`; that package
#: is not imported here, and tests/test_backends.py checks the two agree).
HOST_BACKENDS = ("local", "ssh")


def _host_backend(where: str, key: str, value: Any, local: bool) -> str:
    """`backend:`: local for the local: true host, ssh (the default) for the others."""
    default = "local" if local else "ssh"
    if value is None:
        return default
    if value not in HOST_BACKENDS:
        raise err(
            where,
            key,
            f"{value!r} is not a backend fleetcv has",
            "write backend: " + " or backend: ".join(HOST_BACKENDS),
        )
    if value != default:
        raise err(
            where,
            key,
            f"backend {value} on a host with local: {str(local).lower()}",
            f"write backend: {default} (local: true is this machine, its backend local)",
        )
    return value


def _host_name(where: str, key: str, name: Any, seen: set[str]) -> str:
    if not isinstance(name, str) or not _HOST_NAME.fullmatch(name):
        raise err(
            where,
            key,
            f"expected a host name of letters, digits, '.', '_', '-', got {name!r}",
            "give every host a short unique name",
        )
    if name in seen:
        raise err(
            where,
            key,
            f"duplicate host name {name!r}",
            "give every host a unique name",
        )
    seen.add(name)
    return name


def _host_address(
    where: str, key: str, name: str, local: bool, address: Any, user: Any
) -> tuple[Any, int | None]:
    """The host's (user, port): from its address when remote, else (user, None)."""
    if local and address:
        raise err(
            where,
            key,
            f"a local host has no address, got {address!r}",
            "drop `local: true` or the address",
        )
    if local:
        return user, None
    if not isinstance(address, str) or not address:
        raise err(
            where,
            key,
            f"host {name!r} is not local and has no address",
            "add address: user@host[:port], or local: true for this machine",
        )
    m = _ADDRESS.fullmatch(address)
    if not m:
        raise err(
            where,
            key,
            f"expected [user@]host[:port], got {address!r}",
            "write e.g. ubuntu@10.0.0.11:22",
        )
    user = m.group(1) or user
    if user is not None and (not isinstance(user, str) or not _USER.fullmatch(user)):
        raise err(
            where,
            key,
            f"the user {user!r} is not a login name (letters, digits, '_', '.', '-', "
            "not starting with '-')",
            "write e.g. ubuntu@10.0.0.11:22",
        )
    if not _valid_host(m.group(2)):
        raise err(
            where,
            key,
            f"the host {m.group(2)!r} is neither an IP address nor a DNS name",
            "write e.g. ubuntu@10.0.0.11:22 or ubuntu@node1.example.org",
        )
    port = int(m.group(3)) if m.group(3) else None
    if port is not None and not 1 <= port <= 65535:
        raise err(
            where,
            key,
            f"port {port} is outside 1-65535",
            "write the host's SSH port, e.g. ubuntu@10.0.0.11:22",
        )
    return user, port


def _valid_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return bool(_DNS_NAME.fullmatch(host))


def _host_workdir(where: str, key: str, workdir: Any) -> str:
    if not isinstance(workdir, str) or not workdir:
        raise err(
            where,
            key,
            f"expected a path, got {workdir!r}",
            "write e.g. workdir: /mnt/fleetcv",
        )
    if not (workdir.startswith("/") or workdir == "~" or workdir.startswith("~/")):
        # Engines run in their workdir: a relative one would be resolved
        # a second time inside itself.
        raise err(
            where,
            key,
            f"expected an absolute path or one under ~, got {workdir!r}",
            f"write e.g. workdir: ~/{workdir} or /mnt/{workdir}",
        )
    return workdir

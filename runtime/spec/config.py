"""Load and validate fleetcv's two kinds of configuration: hosts.yml and search specs.

Runs on the laptop (driver side). Everything downstream receives the frozen
dataclasses built here, never raw YAML dicts, so every check on user input
lives in this one module and every message names the file, the key, the bad
value and the fix.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from runtime.errors import ConfigError

#: Where a host keeps its venv, split files and engine pids when hosts.yml says nothing.
DEFAULT_WORKDIR = "~/.cache/fleetcv"
#: ipcontroller needs at least 14 ports with the default schedulers (18 seen on
#: ipyparallel 9.2); a 40-port range leaves room so it never falls back to
#: random ports, which a firewall would block.
DEFAULT_PORTS = (55000, 55039)
MIN_PORTS = 20
#: Environment variable naming the hosts file when --hosts-file is not given.
HOSTS_ENV = "FLEETCV_HOSTS"

GRID_FUNCS = {"logspace", "linspace", "geomspace", "arange"}
DIST_FUNCS = {"loguniform", "uniform", "randint"}
_EXPR = re.compile(r"^\s*([A-Za-z_]\w*)\s*\((.*)\)\s*$")


def _err(where: str, key: str, problem: str, fix: str) -> ConfigError:
    return ConfigError(f"{where}: {key}: {problem}. Fix: {fix}")


def _read_yaml(path: Path, what: str) -> dict:
    if not path.is_file():
        raise ConfigError(
            f"{path}: {what} file not found. Fix: check the path, or create it "
            f"(see README.md)"
        )
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"{path}: not valid YAML ({exc}). Fix: correct the syntax"
        ) from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: expected a mapping at the top level, got "
            f"{type(data).__name__}. Fix: write `key: value` lines"
        )
    return data


def _check_keys(where: str, prefix: str, data: dict, allowed: set[str]) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise _err(
            where,
            f"{prefix}{unknown[0]}",
            "unknown key",
            f"use one of {', '.join(sorted(allowed))}",
        )


# --------------------------------------------------------------------------- hosts


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
    #: engine or a lost host is noticed (engines run without a nanny).
    heartbeat_seconds: float = 2.0
    heartbeat_misses: int = 5

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

    @property
    def local_host(self) -> HostSpec | None:
        """The host marked `local: true`, if any."""
        return next((h for h in self.hosts if h.local), None)

    @property
    def remote_hosts(self) -> tuple[HostSpec, ...]:
        """The hosts reached over SSH."""
        return tuple(h for h in self.hosts if not h.local)

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


def resolve_hosts_file(hosts_file: str | None) -> Path | None:
    """Pick the hosts file: the flag, then $FLEETCV_HOSTS, then ./hosts.yml.

    Returns None when none of them exists and none was asked for explicitly,
    meaning "this machine alone".
    """
    if hosts_file:
        return Path(hosts_file)
    if os.environ.get(HOSTS_ENV):
        return Path(os.environ[HOSTS_ENV])
    default = Path("hosts.yml")
    return default if default.is_file() else None


def _positive_int(where: str, key: str, value: Any, allow_auto: bool = False) -> int:
    if allow_auto and value == "auto":
        return os.cpu_count() or 1
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        expected = (
            'a positive integer or "auto"' if allow_auto else "a positive integer"
        )
        raise _err(
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
        raise _err(
            where,
            key,
            f"expected a number >= {minimum}, got {value!r}",
            f"set {key} to a number of seconds >= {minimum}",
        )
    return float(value)


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
    return parse_hosts(_read_yaml(path, "hosts"), str(path))


def parse_hosts(data: dict, where: str) -> HostsConfig:
    """Validate the already-parsed YAML of a hosts file (see `load_hosts`)."""
    _check_keys(where, "", data, {"controller", "hosts", "ssh_config"})
    ssh_config = data.get("ssh_config")
    if ssh_config is not None:
        ssh_config = os.path.expanduser(str(ssh_config))
        if not os.path.isfile(ssh_config):
            raise _err(
                where,
                "ssh_config",
                f"{ssh_config} does not exist",
                "point it at an ssh_config file, or drop the key to use ~/.ssh/config",
            )
    ctl = data.get("controller") or {}
    if not isinstance(ctl, dict):
        raise _err(
            where, "controller", f"expected a mapping, got {ctl!r}", "see README.md"
        )
    _check_keys(
        where,
        "controller.",
        ctl,
        {
            "ip",
            "ports",
            "curve",
            "tunnel",
            "allow_any_interface",
            "state_dir",
            "task_hwm",
            "heartbeat_seconds",
            "heartbeat_misses",
        },
    )
    ip = str(ctl.get("ip", "127.0.0.1"))
    allow_any = bool(ctl.get("allow_any_interface", False))
    if ip in ("0.0.0.0", "*", "::") and not allow_any:
        raise _err(
            where,
            "controller.ip",
            f"{ip} listens on every interface, so anyone who can reach this machine "
            "can reach the controller",
            "use the address engines connect to, or set "
            "controller.allow_any_interface: true if you really mean it",
        )
    ports = ctl.get("ports", list(DEFAULT_PORTS))
    if (
        not isinstance(ports, list)
        or len(ports) != 2
        or not all(isinstance(p, int) and not isinstance(p, bool) for p in ports)
        or not 1024 <= ports[0] < ports[1] <= 65535
    ):
        raise _err(
            where,
            "controller.ports",
            f"expected [first, last] with 1024 <= first < last <= 65535, got {ports!r}",
            "write e.g. ports: [55000, 55039]",
        )
    if ports[1] - ports[0] + 1 < MIN_PORTS:
        raise _err(
            where,
            "controller.ports",
            f"{ports!r} holds {ports[1] - ports[0] + 1} ports, the controller needs "
            f"at least {MIN_PORTS}",
            f"widen the range, e.g. [{ports[0]}, {ports[0] + 39}]",
        )
    for flag in ("curve", "tunnel"):
        if not isinstance(ctl.get(flag, False), bool):
            raise _err(
                where,
                f"controller.{flag}",
                f"expected true or false, got {ctl[flag]!r}",
                f"write {flag}: true or {flag}: false",
            )
    controller = ControllerSpec(
        ip=ip,
        ports=(ports[0], ports[1]),
        curve=bool(ctl.get("curve", False)),
        tunnel=bool(ctl.get("tunnel", False)),
        allow_any_interface=allow_any,
        state_dir=str(ctl.get("state_dir", ControllerSpec.state_dir)),
        task_hwm=_positive_int(where, "controller.task_hwm", ctl.get("task_hwm", 1)),
        heartbeat_seconds=_positive_number(
            where,
            "controller.heartbeat_seconds",
            ctl.get("heartbeat_seconds", ControllerSpec.heartbeat_seconds),
            minimum=0.1,
        ),
        heartbeat_misses=_positive_int(
            where,
            "controller.heartbeat_misses",
            ctl.get("heartbeat_misses", ControllerSpec.heartbeat_misses),
        ),
    )

    raw_hosts = data.get("hosts")
    if not isinstance(raw_hosts, list) or not raw_hosts:
        raise _err(
            where,
            "hosts",
            f"expected a non-empty list, got {raw_hosts!r}",
            "list at least one host (see README.md)",
        )
    hosts = []
    seen: set[str] = set()
    host_keys = {
        "name",
        "local",
        "address",
        "user",
        "engines",
        "threads",
        "workdir",
        "python",
        "ssh_key",
        "password",
        # Written by `invoke ec2.up`: which instance this host is, for ec2.down.
        "ec2_instance_id",
    }
    for i, h in enumerate(raw_hosts):
        key = f"hosts[{i}]"
        if not isinstance(h, dict):
            raise _err(
                where,
                key,
                f"expected a mapping, got {h!r}",
                "write name/address/engines keys",
            )
        _check_keys(where, f"{key}.", h, host_keys)
        if "password" in h:
            raise _err(
                where,
                f"{key}.password",
                "passwords are never read from hosts.yml",
                "use an SSH key or agent (ssh_key: ~/.ssh/id_ed25519)",
            )
        name = h.get("name")
        if not isinstance(name, str) or not re.fullmatch(
            r"[A-Za-z0-9][A-Za-z0-9_.-]*", name
        ):
            raise _err(
                where,
                f"{key}.name",
                f"expected a host name of letters, digits, '.', '_', '-', got {name!r}",
                "give every host a short unique name",
            )
        if name in seen:
            raise _err(
                where,
                f"{key}.name",
                f"duplicate host name {name!r}",
                "give every host a unique name",
            )
        seen.add(name)
        local = bool(h.get("local", False))
        address = h.get("address")
        user, port = h.get("user"), None
        if local and address:
            raise _err(
                where,
                f"{key}.address",
                f"a local host has no address, got {address!r}",
                "drop `local: true` or the address",
            )
        if not local:
            if not isinstance(address, str) or not address:
                raise _err(
                    where,
                    f"{key}.address",
                    f"host {name!r} is not local and has no address",
                    "add address: user@host[:port], or local: true for this machine",
                )
            m = re.fullmatch(r"(?:([^@\s]+)@)?([^@:\s]+)(?::(\d+))?", address)
            if not m:
                raise _err(
                    where,
                    f"{key}.address",
                    f"expected [user@]host[:port], got {address!r}",
                    "write e.g. ubuntu@10.0.0.11:22",
                )
            user = m.group(1) or user
            port = int(m.group(3)) if m.group(3) else None
        engines = _positive_int(
            where,
            f"{key}.engines",
            h.get("engines", "auto" if local else 1),
            allow_auto=True,
        )
        workdir = h.get("workdir", DEFAULT_WORKDIR)
        if not isinstance(workdir, str) or not workdir:
            raise _err(
                where,
                f"{key}.workdir",
                f"expected a path, got {workdir!r}",
                "write e.g. workdir: /mnt/fleetcv",
            )
        if not (workdir.startswith("/") or workdir == "~" or workdir.startswith("~/")):
            # Engines run in their workdir: a relative one would be resolved
            # a second time inside itself.
            raise _err(
                where,
                f"{key}.workdir",
                f"expected an absolute path or one under ~, got {workdir!r}",
                f"write e.g. workdir: ~/{workdir} or /mnt/{workdir}",
            )
        hosts.append(
            HostSpec(
                name=name,
                local=local,
                address=address,
                user=user,
                port=port,
                engines=engines,
                engines_auto=h.get("engines", "auto" if local else 1) == "auto"
                and not local,
                threads=_positive_int(
                    where, f"{key}.threads", h.get("threads", HostSpec.threads)
                ),
                workdir=workdir,
                python=str(h.get("python", "python3")),
                ssh_key=os.path.expanduser(h["ssh_key"]) if h.get("ssh_key") else None,
            )
        )
    if sum(h.local for h in hosts) > 1:
        raise _err(
            where,
            "hosts",
            "more than one host has local: true",
            "mark only this machine as local",
        )
    return HostsConfig(
        path=where, controller=controller, hosts=tuple(hosts), ssh_config=ssh_config
    )


# --------------------------------------------------------------------------- specs


@dataclass(frozen=True)
class Distribution:
    """A parameter distribution written as `name(args)` in a spec."""

    name: str
    args: tuple

    def frozen(self):
        """The scipy.stats frozen distribution that ParameterSampler draws from."""
        from scipy import stats

        a, b = self.args
        if self.name == "loguniform":
            return stats.loguniform(a, b)
        if self.name == "uniform":
            # Written as uniform(low, high), scipy wants (loc, scale).
            return stats.uniform(a, b - a)
        return stats.randint(a, b)


@dataclass(frozen=True)
class EstimatorSpec:
    """The estimator: one class, or a Pipeline of named steps."""

    steps: tuple[tuple[str, str, dict], ...]
    pipeline: bool = False

    def build(self):
        """Instantiate a fresh (unfitted) estimator."""
        objs = [(name, _import(path)(**params)) for name, path, params in self.steps]
        if not self.pipeline:
            return objs[0][1]
        from sklearn.pipeline import Pipeline

        return Pipeline(objs)


@dataclass(frozen=True)
class DataSpec:
    """Where the data comes from."""

    loader: str | None = None
    loader_params: dict = field(default_factory=dict)
    path: str | None = None
    target: str | int | None = None


@dataclass(frozen=True)
class CVSpec:
    """How the folds are drawn."""

    kind: str = "shuffle"
    n_splits: int = 5
    test_size: float | None = 0.25
    random_state: int | None = None
    stratified: bool = False

    def splitter(self):
        """The scikit-learn CV object these settings describe."""
        from sklearn import model_selection as ms

        if self.kind == "shuffle":
            cls = ms.StratifiedShuffleSplit if self.stratified else ms.ShuffleSplit
            return cls(
                n_splits=self.n_splits,
                test_size=self.test_size,
                random_state=self.random_state,
            )
        cls = ms.StratifiedKFold if self.stratified else ms.KFold
        shuffle = self.random_state is not None
        return cls(
            n_splits=self.n_splits, shuffle=shuffle, random_state=self.random_state
        )

    def as_dict(self) -> dict:
        """Plain-types form, part of the split digest."""
        return {
            "kind": self.kind,
            "n_splits": self.n_splits,
            "test_size": self.test_size,
            "random_state": self.random_state,
            "stratified": self.stratified,
        }


@dataclass(frozen=True)
class SearchSpec:
    """A validated search spec."""

    path: str
    name: str
    estimator: EstimatorSpec
    search: str
    params: tuple[dict, ...]
    n_iter: int | None
    random_state: int | None
    data: DataSpec
    cv: CVSpec
    scoring: str | None
    error_score: float | str
    return_train_score: bool
    raw: dict

    def candidates(self) -> list[dict]:
        """The parameter combinations to evaluate, in sklearn's order.

        A grid gives ParameterGrid's order; a random search (or a grid with
        n_iter) gives ParameterSampler's draw, so the same random_state gives
        the same candidates as RandomizedSearchCV.
        """
        from sklearn.model_selection import ParameterGrid, ParameterSampler

        if self.search == "grid" and self.n_iter is None:
            cands = list(ParameterGrid(list(self.params)))
        else:
            space = [
                {
                    k: (v.frozen() if isinstance(v, Distribution) else v)
                    for k, v in p.items()
                }
                for p in self.params
            ]
            cands = list(
                ParameterSampler(
                    space, n_iter=self.n_iter, random_state=self.random_state
                )
            )
        return [{k: _plain(v) for k, v in c.items()} for c in cands]

    def digest(self) -> str:
        """Digest of everything that decides the results (not the run's name)."""
        blob = json.dumps(self.raw, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _plain(v: Any) -> Any:
    """Numpy scalars to Python ones, so candidates round-trip through JSON exactly."""
    if isinstance(v, np.generic):
        return v.item()
    return v


def _import(path: str):
    mod, _, attr = path.rpartition(".")
    return getattr(importlib.import_module(mod), attr)


def _import_checked(where: str, key: str, path: Any, fix: str):
    if not isinstance(path, str) or "." not in path:
        raise _err(
            where,
            key,
            f"expected an import path like sklearn.svm.SVC, got {path!r}",
            fix,
        )
    try:
        return _import(path)
    except (ImportError, AttributeError) as exc:
        raise _err(where, key, f"cannot import {path!r} ({exc})", fix) from exc


def _parse_value_expr(where: str, key: str, text: str, search: str):
    m = _EXPR.match(text)
    if not m or m.group(1) not in GRID_FUNCS | DIST_FUNCS:
        raise _err(
            where,
            key,
            f"cannot read {text!r}",
            "write a list of values, or one of "
            + ", ".join(f"{f}(...)" for f in sorted(GRID_FUNCS | DIST_FUNCS)),
        )
    fname = m.group(1)
    try:
        args = ast.literal_eval(f"({m.group(2)},)") if m.group(2).strip() else ()
    except (ValueError, SyntaxError) as exc:
        raise _err(
            where,
            key,
            f"bad arguments in {text!r}",
            "use plain numbers, e.g. logspace(-1, 2, 4)",
        ) from exc
    if not all(isinstance(a, int | float) and not isinstance(a, bool) for a in args):
        raise _err(
            where,
            key,
            f"bad arguments in {text!r}",
            "use plain numbers, e.g. logspace(-1, 2, 4)",
        )
    if fname in GRID_FUNCS:
        try:
            values = list(getattr(np, fname)(*args))
        except TypeError as exc:
            raise _err(where, key, f"{text!r}: {exc}", f"see numpy.{fname}") from exc
        if not values:
            raise _err(
                where, key, f"{text!r} gives no values", "check the bounds and count"
            )
        return [_plain(v) for v in values]
    if search != "random":
        raise _err(
            where,
            key,
            f"{text!r} is a distribution, which a grid search cannot enumerate",
            "set `search: random` with n_iter, or give a list",
        )
    if len(args) != 2:
        raise _err(
            where,
            key,
            f"{fname} takes two numbers (low, high), got {text!r}",
            f"write e.g. {fname}(1, 10)",
        )
    low, high = args
    if not low < high or (fname == "loguniform" and low <= 0):
        raise _err(
            where,
            key,
            f"{text!r}: need {'0 < ' if fname == 'loguniform' else ''}low < high",
            f"write e.g. {fname}(1e-3, 1)"
            if fname != "randint"
            else "write e.g. randint(1, 10)",
        )
    if fname == "randint" and not all(isinstance(a, int) for a in args):
        raise _err(
            where, key, f"{text!r}: randint needs integers", "write e.g. randint(1, 10)"
        )
    return Distribution(fname, (low, high))


def _parse_space(
    where: str, raw: Any, search: str, valid: set[str]
) -> tuple[dict, ...]:
    grids = raw if isinstance(raw, list) else [raw]
    if not grids:
        raise _err(
            where,
            "params",
            "the parameter space is empty",
            "give at least one parameter with values",
        )
    out = []
    for gi, grid in enumerate(grids):
        gkey = "params" if not isinstance(raw, list) else f"params[{gi}]"
        if not isinstance(grid, dict) or not grid:
            raise _err(
                where,
                gkey,
                f"expected a non-empty mapping of parameter name to values, got {grid!r}",
                "write e.g. C: [0.1, 1, 10]",
            )
        space: dict[str, Any] = {}
        for name, values in grid.items():
            key = f"{gkey}.{name}"
            if name not in valid:
                close = [
                    v
                    for v in sorted(valid)
                    if v.split("__")[-1] == str(name).split("__")[-1]
                ]
                hint = (
                    f"did you mean {close[0]}?"
                    if close
                    else "use one of "
                    + ", ".join(sorted(v for v in valid if v.count("__") <= 1))
                )
                raise _err(where, key, f"the estimator has no parameter {name!r}", hint)
            if isinstance(values, str):
                values = _parse_value_expr(where, key, values, search)
            elif isinstance(values, list):
                if not values:
                    raise _err(
                        where, key, "empty list of values", "give at least one value"
                    )
                values = [
                    _parse_value_expr(where, key, v, "grid")[0]
                    if isinstance(v, str) and _EXPR.match(v)
                    else v
                    for v in values
                ]
            else:
                raise _err(
                    where,
                    key,
                    f"expected a list of values or an expression, got {values!r}",
                    f"write {name}: [{values!r}]",
                )
            space[name] = values
        out.append(space)
    return tuple(out)


def load_search_spec(
    spec_file: str | os.PathLike,
    n_iter: int | None = None,
    base_dir: str | os.PathLike | None = None,
) -> SearchSpec:
    """Load and validate a search spec.

    Parameters
    ----------
    spec_file : path
        The YAML spec (see README.md, "Writing a search spec").
    n_iter : int, optional
        Overrides the spec's n_iter; on a grid it samples that many
        candidates from the grid, as RandomizedSearchCV does with lists.

    base_dir : path, optional
        Folder that relative data paths are read from (default: the spec's
        folder); a run's spec copy keeps its original folder this way.

    Returns
    -------
    SearchSpec

    Raises
    ------
    ConfigError
        On any problem, naming the file, key, value and fix.
    """
    path = Path(spec_file)
    where = str(path)
    data = _read_yaml(path, "search spec")
    allowed = {
        "name",
        "estimator",
        "search",
        "params",
        "n_iter",
        "random_state",
        "data",
        "cv",
        "scoring",
        "error_score",
        "return_train_score",
    }
    _check_keys(where, "", data, allowed)

    est = _parse_estimator(where, data.get("estimator"))
    valid = set(est.build().get_params(deep=True))

    search = data.get("search", "grid")
    if search not in ("grid", "random"):
        raise _err(
            where,
            "search",
            f"expected grid or random, got {search!r}",
            "write search: grid or search: random",
        )
    if n_iter is not None:
        data = {**data, "n_iter": n_iter}
    raw_n_iter = data.get("n_iter")
    if search == "random" and raw_n_iter is None:
        raise _err(
            where,
            "n_iter",
            "a random search needs a budget",
            "add n_iter: 10 (or pass --n-iter)",
        )
    if raw_n_iter is not None and (
        isinstance(raw_n_iter, bool)
        or not isinstance(raw_n_iter, int)
        or raw_n_iter <= 0
    ):
        raise _err(
            where,
            "n_iter",
            f"expected a positive integer, got {raw_n_iter!r}",
            "set n_iter to the number of candidates to draw, e.g. 10",
        )
    rs = data.get("random_state")
    if rs is not None and (isinstance(rs, bool) or not isinstance(rs, int)):
        raise _err(
            where,
            "random_state",
            f"expected an integer or null, got {rs!r}",
            "write e.g. random_state: 0",
        )
    if "params" not in data:
        raise _err(
            where,
            "params",
            "missing",
            "add the parameter space, e.g. params: {C: [0.1, 1, 10]}",
        )
    params = _parse_space(where, data["params"], search, valid)

    scoring = data.get("scoring")
    if scoring is not None:
        from sklearn.metrics import get_scorer

        try:
            get_scorer(scoring)
        except (ValueError, TypeError) as exc:
            raise _err(
                where,
                "scoring",
                f"unknown scoring {scoring!r}",
                "use a name from sklearn.metrics.get_scorer_names(), e.g. accuracy, or null for the estimator's score",
            ) from exc
    error_score = data.get("error_score", "nan")
    if error_score == "raise":
        pass
    elif error_score in ("nan", None) or (
        isinstance(error_score, float) and math.isnan(error_score)
    ):
        error_score = float("nan")
    elif isinstance(error_score, int | float) and not isinstance(error_score, bool):
        error_score = float(error_score)
    else:
        raise _err(
            where,
            "error_score",
            f"expected a number, nan or raise, got {error_score!r}",
            "write error_score: nan",
        )
    rts = data.get("return_train_score", True)
    if not isinstance(rts, bool):
        raise _err(
            where,
            "return_train_score",
            f"expected true or false, got {rts!r}",
            "write return_train_score: true",
        )

    spec = SearchSpec(
        path=where,
        name=str(data.get("name") or path.stem),
        estimator=est,
        search=search,
        params=params,
        n_iter=raw_n_iter,
        random_state=rs,
        data=_parse_data(
            where, data.get("data"), Path(base_dir) if base_dir else path.parent
        ),
        cv=_parse_cv(where, data.get("cv")),
        scoring=scoring,
        error_score=error_score,
        return_train_score=rts,
        raw={k: v for k, v in data.items() if k != "name"},
    )
    if spec.n_iter is not None and spec.search == "grid":
        from sklearn.model_selection import ParameterGrid

        size = len(ParameterGrid(list(params)))
        if spec.n_iter > size:
            raise _err(
                where,
                "n_iter",
                f"{spec.n_iter} is more than the {size} candidates of the grid",
                f"use n_iter <= {size}, or drop it to run the whole grid",
            )
    return spec


def _parse_estimator(where: str, raw: Any) -> EstimatorSpec:
    fix = "write estimator: {class: sklearn.svm.SVC, params: {}} or estimator: {pipeline: [...]}"
    if isinstance(raw, str):
        raw = {"class": raw}
    if not isinstance(raw, dict):
        raise _err(where, "estimator", f"expected a mapping, got {raw!r}", fix)
    _check_keys(where, "estimator.", raw, {"class", "params", "pipeline"})
    if "pipeline" in raw:
        steps_raw = raw["pipeline"]
        if "class" in raw or not isinstance(steps_raw, list) or not steps_raw:
            raise _err(
                where,
                "estimator.pipeline",
                "expected a non-empty list of steps and no class",
                "write pipeline: [{name: scale, class: sklearn.preprocessing.StandardScaler}, ...]",
            )
        steps, names = [], set()
        for i, s in enumerate(steps_raw):
            key = f"estimator.pipeline[{i}]"
            if not isinstance(s, dict):
                raise _err(
                    where,
                    key,
                    f"expected a mapping with name and class, got {s!r}",
                    "write {name: svc, class: sklearn.svm.SVC}",
                )
            _check_keys(where, key + ".", s, {"name", "class", "params"})
            name = s.get("name")
            if not isinstance(name, str) or not name or "__" in name or name in names:
                raise _err(
                    where,
                    key + ".name",
                    f"expected a unique step name without '__', got {name!r}",
                    "name each step, e.g. name: svc",
                )
            names.add(name)
            steps.append((name, *_class_step(where, key, s)))
        spec = EstimatorSpec(steps=tuple(steps), pipeline=True)
    else:
        spec = EstimatorSpec(
            steps=(("estimator", *_class_step(where, "estimator", raw)),)
        )
    try:
        spec.build()
    except Exception as exc:  # noqa: BLE001 - any constructor error is the user's to fix
        raise _err(
            where,
            "estimator",
            f"cannot build the estimator ({exc})",
            "check the class and its params",
        ) from exc
    return spec


def _class_step(where: str, key: str, raw: dict) -> tuple[str, dict]:
    cls = _import_checked(
        where,
        f"{key}.class",
        raw.get("class"),
        "give the import path of an estimator class, e.g. sklearn.svm.SVC",
    )
    if not hasattr(cls, "get_params") or not hasattr(cls, "fit"):
        raise _err(
            where,
            f"{key}.class",
            f"{raw['class']!r} is not a scikit-learn estimator (no fit/get_params)",
            "use an estimator class",
        )
    params = raw.get("params") or {}
    if not isinstance(params, dict):
        raise _err(
            where,
            f"{key}.params",
            f"expected a mapping, got {params!r}",
            "write params: {kernel: rbf}",
        )
    valid = set(cls().get_params(deep=False)) if _no_required_args(cls) else None
    for p in params:
        if valid is not None and p not in valid:
            raise _err(
                where,
                f"{key}.params.{p}",
                f"{raw['class']} has no parameter {p!r}",
                "use one of " + ", ".join(sorted(valid)),
            )
    return raw["class"], dict(params)


def _no_required_args(cls) -> bool:
    try:
        cls()
    except TypeError:
        return False
    return True


def _parse_data(where: str, raw: Any, base: Path) -> DataSpec:
    fix = "write data: {loader: sklearn.datasets.load_digits} or data: {path: train.csv, target: label}"
    if not isinstance(raw, dict):
        raise _err(where, "data", f"expected a mapping, got {raw!r}", fix)
    _check_keys(where, "data.", raw, {"loader", "loader_params", "path", "target"})
    if ("loader" in raw) == ("path" in raw):
        raise _err(where, "data", "give exactly one of loader or path", fix)
    if "loader" in raw:
        _import_checked(
            where,
            "data.loader",
            raw["loader"],
            "give the import path of a loader, e.g. sklearn.datasets.load_digits",
        )
        lp = raw.get("loader_params") or {}
        if not isinstance(lp, dict):
            raise _err(
                where,
                "data.loader_params",
                f"expected a mapping, got {lp!r}",
                "write loader_params: {n_class: 10}",
            )
        return DataSpec(loader=raw["loader"], loader_params=dict(lp))
    p = Path(os.path.expanduser(str(raw["path"])))
    if not p.is_absolute():
        p = base / p
    if p.suffix not in (".npy", ".npz", ".csv"):
        raise _err(
            where,
            "data.path",
            f"unsupported file type {p.suffix!r} ({raw['path']})",
            "use a .npy, .npz or .csv file",
        )
    return DataSpec(path=str(p), target=raw.get("target"))


def _parse_cv(where: str, raw: Any) -> CVSpec:
    raw = raw or {}
    if not isinstance(raw, dict):
        raise _err(
            where,
            "cv",
            f"expected a mapping, got {raw!r}",
            "write cv: {n_splits: 5, test_size: 0.25, random_state: 42}",
        )
    _check_keys(
        where,
        "cv.",
        raw,
        {"kind", "n_splits", "test_size", "random_state", "stratified"},
    )
    kind = raw.get("kind", "shuffle")
    if kind not in ("shuffle", "kfold"):
        raise _err(
            where,
            "cv.kind",
            f"expected shuffle or kfold, got {kind!r}",
            "write kind: shuffle (ShuffleSplit) or kind: kfold (KFold)",
        )
    n_splits = raw.get("n_splits", 5)
    minimum = 2 if kind == "kfold" else 1
    if (
        isinstance(n_splits, bool)
        or not isinstance(n_splits, int)
        or n_splits < minimum
    ):
        raise _err(
            where,
            "cv.n_splits",
            f"expected an integer >= {minimum}, got {n_splits!r}",
            "write e.g. n_splits: 5",
        )
    test_size = raw.get("test_size", 0.25 if kind == "shuffle" else None)
    if kind == "kfold" and "test_size" in raw:
        raise _err(
            where,
            "cv.test_size",
            "KFold has no test_size (each fold holds 1/n_splits)",
            "drop test_size or use kind: shuffle",
        )
    if kind == "shuffle" and not (
        (isinstance(test_size, float) and 0 < test_size < 1)
        or (
            isinstance(test_size, int)
            and not isinstance(test_size, bool)
            and test_size > 0
        )
    ):
        raise _err(
            where,
            "cv.test_size",
            f"expected a fraction in (0, 1) or a positive count, got {test_size!r}",
            "write e.g. test_size: 0.25",
        )
    rs = raw.get("random_state")
    if rs is not None and (isinstance(rs, bool) or not isinstance(rs, int)):
        raise _err(
            where,
            "cv.random_state",
            f"expected an integer or null, got {rs!r}",
            "write e.g. random_state: 42",
        )
    strat = raw.get("stratified", False)
    if not isinstance(strat, bool):
        raise _err(
            where,
            "cv.stratified",
            f"expected true or false, got {strat!r}",
            "write stratified: true",
        )
    return CVSpec(
        kind=kind,
        n_splits=n_splits,
        test_size=test_size,
        random_state=rs,
        stratified=strat,
    )


# --------------------------------------------------------------------------- data


def load_data(spec: SearchSpec) -> tuple[np.ndarray, np.ndarray]:
    """Load and check the spec's data set.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features), float64, C-contiguous
    y : ndarray of shape (n_samples,)

    Raises
    ------
    ConfigError
        If the data cannot be read, or is unfit for the search (NaN/inf,
        non-numeric columns, X/y length mismatch, fewer samples than folds,
        a single class for a classifier).
    """
    where, d = spec.path, spec.data
    if d.loader:
        try:
            out = _import(d.loader)(**d.loader_params)
        except Exception as exc:  # noqa: BLE001 - loader errors are reported, not crashed on
            raise _err(
                where,
                "data.loader",
                f"{d.loader} failed: {exc}",
                "check the loader and its loader_params",
            ) from exc
        if isinstance(out, tuple) and len(out) == 2:
            X, y = out
        elif hasattr(out, "data") and hasattr(out, "target"):
            X, y = out.data, out.target
        else:
            raise _err(
                where,
                "data.loader",
                f"{d.loader} returned {type(out).__name__}",
                "use a loader that returns (X, y) or a Bunch with data and target",
            )
        key = "data.loader"
    else:
        X, y = _read_data_file(where, d)
        key = "data.path"
    return _check_xy(where, key, X, y, spec)


def _read_data_file(where: str, d: DataSpec) -> tuple[Any, Any]:
    p = Path(d.path)
    key = "data.path"
    if not p.is_file():
        raise _err(
            where,
            key,
            f"{p} does not exist",
            "check the path (relative paths are read from the spec's folder)",
        )
    try:
        if p.suffix == ".npz":
            with np.load(p, allow_pickle=False) as z:
                names = list(z.keys())
                xk = "X" if "X" in names else None
                yk = d.target if d.target in names else ("y" if "y" in names else None)
                if xk is None or yk is None:
                    raise _err(
                        where,
                        key,
                        f"{p} holds arrays {names}, expected X and y",
                        "save with np.savez(path, X=X, y=y), or set data.target to the name of the target array",
                    )
                return z[xk], z[yk]
        if p.suffix == ".npy":
            arr = np.load(p, allow_pickle=False)
            header = None
        else:
            with open(p) as f:
                first = f.readline()
            cells = [c.strip() for c in first.split(",")]
            has_header = any(not _is_number(c) for c in cells if c)
            header = cells if has_header else None
            arr = np.genfromtxt(
                p, delimiter=",", skip_header=1 if has_header else 0, dtype=float
            )
            if arr.ndim == 1:
                arr = arr.reshape(-1, len(cells))
    except ConfigError:
        raise
    except (OSError, ValueError) as exc:
        raise _err(
            where,
            key,
            f"cannot read {p}: {exc}",
            "check that the file is a valid .npy/.npz/.csv",
        ) from exc
    if arr.ndim != 2 or arr.shape[1] < 2:
        raise _err(
            where,
            key,
            f"{p} has shape {arr.shape}, expected a 2-D table with features and a target column",
            "save features and target as columns of one table",
        )
    col = _target_column(where, d.target, header, arr.shape[1], p)
    y = arr[:, col]
    X = np.delete(arr, col, axis=1)
    return X, y


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def _target_column(
    where: str, target: Any, header: list[str] | None, ncols: int, p: Path
) -> int:
    if target is None:
        return ncols - 1
    if isinstance(target, int) and not isinstance(target, bool):
        if -ncols <= target < ncols:
            return target % ncols
        raise _err(
            where,
            "data.target",
            f"column {target} is out of range for {ncols} columns in {p}",
            f"use an index in [0, {ncols - 1}]",
        )
    if header is not None and target in header:
        return header.index(target)
    raise _err(
        where,
        "data.target",
        f"no column named {target!r} in {p}",
        f"use one of {header}"
        if header
        else "this file has no header: give the column index",
    )


def _check_xy(
    where: str, key: str, X: Any, y: Any, spec: SearchSpec
) -> tuple[np.ndarray, np.ndarray]:
    try:
        X = np.ascontiguousarray(X, dtype=np.float64)
    except (ValueError, TypeError) as exc:
        raise _err(
            where,
            key,
            f"X has non-numeric values ({exc})",
            "encode categorical columns as numbers before the search",
        ) from exc
    y = np.asarray(y)
    if X.ndim != 2:
        raise _err(
            where,
            key,
            f"X has shape {X.shape}, expected (n_samples, n_features)",
            "give a 2-D feature table",
        )
    if y.ndim != 1 or len(y) != len(X):
        raise _err(
            where,
            key,
            f"X has {len(X)} rows but y has shape {y.shape}",
            "give one target value per row of X",
        )
    if not np.isfinite(X).all():
        bad = int((~np.isfinite(X)).sum())
        raise _err(
            where,
            key,
            f"X holds {bad} NaN or infinite values",
            "impute or drop them before the search",
        )
    if y.dtype.kind == "f" and not np.isfinite(y).all():
        raise _err(
            where,
            key,
            "y holds NaN or infinite values",
            "drop the rows without a target",
        )
    est = spec.estimator.build()
    from sklearn.base import is_classifier

    if is_classifier(est):
        if y.dtype.kind == "f" and np.all(y == np.round(y)):
            y = y.astype(np.int64)
        if len(np.unique(y)) < 2:
            raise _err(
                where,
                key,
                f"y has a single class ({np.unique(y)[0]!r})",
                "a classifier needs at least two classes in the target",
            )
    n_test = spec.cv.test_size if spec.cv.kind == "shuffle" else None
    if len(X) < spec.cv.n_splits or (isinstance(n_test, int) and n_test >= len(X)):
        raise _err(
            where,
            "cv.n_splits",
            f"{len(X)} samples are too few for {spec.cv.n_splits} folds",
            "use fewer folds or more data",
        )
    return X, y

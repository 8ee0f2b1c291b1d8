"""Backends: what runs engines on a host, one module each behind one contract.

Runs on the driver. `fleetcv.backends.base` writes the contract down
(`Backend`); `local` (this machine) and `ssh` (hosts reached over SSH,
EC2's among them) keep it. hosts.yml's ``backend:`` picks a host's
(default: ``local`` for the ``local: true`` host, ``ssh`` for the others).
`Backends` is what the driver holds: the contract over hosts of several
backends at once, each host sent to its own. A new backend is a module
here plus one entry in `BACKENDS`.
"""

from __future__ import annotations

import importlib

from fleetcv.backends.base import Backend, HostResults, print_results

#: Backend name -> "module:class" (imported on first use: Fabric and
#: paramiko load only when a host is reached over SSH).
BACKENDS = {
    "local": "fleetcv.backends.local:LocalBackend",
    "ssh": "fleetcv.backends.ssh:SshBackend",
}


def backend(name: str) -> Backend:
    """The backend called `name` (a key of `BACKENDS`)."""
    module, cls = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module), cls)()


class Backends:
    """The `Backend` contract over hosts of any backends: each host goes to its own.

    Parameters
    ----------
    overrides : dict, optional
        Backend name -> object keeping the contract, used instead of the
        registry's (a test's or the bench's).
    """

    def __init__(self, overrides: dict | None = None):
        self._made: dict[str, Backend] = dict(overrides or {})

    def of(self, name: str) -> Backend:
        """The backend called `name`, made once."""
        if name not in self._made:
            self._made[name] = backend(name)
        return self._made[name]

    def _each(self, hosts, call) -> HostResults:
        """`call(backend, its hosts)` for every backend among `hosts`; the results merged."""
        groups: dict[str, list] = {}
        for host in hosts:
            groups.setdefault(host.backend, []).append(host)
        res = HostResults()
        for name, group in groups.items():
            res.update(call(self.of(name), group))
        return res

    def start_engines(self, cfg, hosts, count=None) -> HostResults:
        """See `fleetcv.backends.base`."""
        return self._each(hosts, lambda b, hs: b.start_engines(cfg, hs, count=count))

    def stop_engines(self, cfg, hosts) -> HostResults:
        """See `fleetcv.backends.base`."""
        return self._each(hosts, lambda b, hs: b.stop_engines(cfg, hs))

    def engine_status(self, cfg, hosts) -> HostResults:
        """See `fleetcv.backends.base`."""
        return self._each(hosts, lambda b, hs: b.engine_status(cfg, hs))

    def replace_engine(self, cfg, host, pid: int) -> str:
        """See `fleetcv.backends.base`."""
        return self.of(host.backend).replace_engine(cfg, host, pid)

    def push_splits(self, cfg, split_path, hosts) -> HostResults:
        """See `fleetcv.backends.base`."""
        return self._each(hosts, lambda b, hs: b.push_splits(cfg, split_path, hs))

    def push_run_files(self, cfg, path, subdir: str, hosts) -> HostResults:
        """See `fleetcv.backends.base`."""
        return self._each(hosts, lambda b, hs: b.push_run_files(cfg, path, subdir, hs))

    def install(self, cfg, hosts, wheelhouse=None) -> HostResults:
        """See `fleetcv.backends.base`."""
        return self._each(hosts, lambda b, hs: b.install(cfg, hs, wheelhouse))

    def run_command(self, cfg, command: str, hosts) -> HostResults:
        """See `fleetcv.backends.base`."""
        return self._each(hosts, lambda b, hs: b.run_command(cfg, command, hs))

    print_results = staticmethod(print_results)

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(
                name
            )  # never the SSH backend's privates (copy, pickle)
        # What only the SSH backend has (its tunnels, fetching a host's
        # folders back) is asked of it directly.
        return getattr(self.of("ssh"), name)


__all__ = ["BACKENDS", "Backend", "Backends", "HostResults", "backend", "print_results"]

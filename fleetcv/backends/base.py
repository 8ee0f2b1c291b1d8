"""The Backend contract: what fleetcv asks of whatever runs engines on a host.

Runs on the driver. A backend is one module in this package holding one
class that keeps this contract for the hosts of its kind (hosts.yml's
``backend:``; `fleetcv.backends.BACKENDS` names them). The controller is
not a backend's: it always runs on the driver's machine
(`fleetcv.dispatch.cluster`), and a backend's engines register with it.

The contract, for every method taking ``hosts`` (a list of `HostSpec` of
this backend): it acts on all of them at once and returns a `HostResults`
with exactly one entry per host, in ``ok`` (a short value) or in ``failed``
(the cause, naming what to fix); one host's failure never stops or hides
another's, and nothing raises for a host's fault. Every wait is bounded.

- ``start_engines(cfg, hosts, count=None)``: start ``count`` engines (None:
  each host's ``engines``) that register with ``cfg``'s controller; ok value
  the number started. Their pids are recorded on the host, so that
- ``stop_engines(cfg, hosts)`` stops exactly those (never another process),
  waits until they are gone, and is idempotent; ok value a line saying how
  many stopped.
- ``engine_status(cfg, hosts)``: ok value the number of recorded engines
  alive on the host.
- ``replace_engine(cfg, host, pid)``: stop engine ``pid`` of ``host`` (a
  fit past its timeout) and start one in its place; returns a line for the
  log; raises a `HostError` when the host cannot do it.
- ``push_splits(cfg, split_path, hosts)`` and ``push_run_files(cfg, path,
  subdir, hosts)``: make the digest-named folder ``path`` (folds, a code
  snapshot, a wheelhouse) present and verified (its SHA256SUMS) at
  ``<workdir>/<subdir>/<digest>`` of every host, sending nothing a host
  already holds intact.
- ``install(cfg, hosts, wheelhouse=None)``: make the host able to run
  fleetcv's engines (the host package and its pinned dependencies).
- ``run_command(cfg, command, hosts)``: run a shell command in the host's
  environment; ok value its output, a non-zero exit a failure.

`tests/test_backends.py` runs one contract test on every backend.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from fleetcv.errors import SshError


@dataclass
class HostResults:
    """One result per host: `ok[name] = value`, `failed[name] = cause`."""

    ok: dict = field(default_factory=dict)
    failed: dict = field(default_factory=dict)

    def raise_if_failed(self, what: str) -> None:
        """Raise one error naming every failed host and its cause."""
        if self.failed:
            causes = "; ".join(f"{h}: {e}" for h, e in sorted(self.failed.items()))
            raise SshError(f"{what} failed on {len(self.failed)} host(s): {causes}")

    def update(self, other: HostResults) -> None:
        """Take in another backend's results (hosts are never in two backends)."""
        self.ok.update(other.ok)
        self.failed.update(other.failed)


def print_results(res: HostResults, out=sys.stdout) -> None:
    """Print `[host] value` lines, then `[host] FAILED: cause` lines."""
    for h, v in sorted(res.ok.items()):
        for line in str(v).splitlines() or [""]:
            print(f"[{h}] {line}", file=out)
    for h, e in sorted(res.failed.items()):
        print(f"[{h}] FAILED: {e}", file=out)


@runtime_checkable
class Backend(Protocol):
    """The contract of the module docstring, as a type."""

    name: str

    def start_engines(self, cfg, hosts, count: int | None = None) -> HostResults:
        """Start engines that register with the controller; ok: how many."""

    def stop_engines(self, cfg, hosts) -> HostResults:
        """Stop exactly the engines recorded on each host, and wait; idempotent."""

    def engine_status(self, cfg, hosts) -> HostResults:
        """How many recorded engines are alive on each host."""

    def replace_engine(self, cfg, host, pid: int) -> str:
        """Stop engine `pid` of `host` and start one in its place."""

    def push_splits(self, cfg, split_path, hosts) -> HostResults:
        """Make the folds present and verified at workdir/splits/<digest>."""

    def push_run_files(self, cfg, path, subdir: str, hosts) -> HostResults:
        """Make a digest-named folder present and verified at workdir/subdir/<digest>."""

    def install(self, cfg, hosts, wheelhouse=None) -> HostResults:
        """Make each host able to run fleetcv's engines."""

    def run_command(self, cfg, command: str, hosts) -> HostResults:
        """Run a shell command on each host; ok: its output."""


__all__ = ["Backend", "HostResults", "print_results"]

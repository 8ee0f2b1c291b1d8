"""The local backend: engines on the driver's own machine (``local: true``).

Runs on the driver. Keeps the contract of `fleetcv.backends.base.Backend`
for the one host that is this machine: engines are forked by the same
launcher as on remote hosts (`fleetcv.dispatch.cluster.start_local_engines`),
their pids recorded in the controller's state folder; staged folders are
copied (or, when already where the host reads them, verified) under the
host's workdir; nothing is installed, since the engines run in the driver's
own environment; commands run in a local shell.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from fleetcv.backends.base import HostResults, print_results
from fleetcv.dispatch import cluster as cl
from runtime.digestdir import SUMS, publish, sha256_file
from runtime.folds import SPLITS_SUBDIR

#: Seconds a `run_command` may take before it counts as failed.
COMMAND_TIMEOUT = 600.0


def _intact(folder: Path) -> bool:
    """Whether `folder` holds exactly the files its SHA256SUMS lists, unchanged."""
    try:
        lines = (folder / SUMS).read_text().splitlines()
    except OSError:
        return False
    listed = {}
    for line in lines:
        digest, _, name = line.partition("  ")
        listed[name] = digest
    present = {
        str(p.relative_to(folder))
        for p in folder.rglob("*")
        if p.is_file() and p.name != SUMS
    }
    if present != set(listed):
        return False
    return all(sha256_file(folder / name) == d for name, d in listed.items())


class LocalBackend:
    """The `Backend` contract on this machine."""

    name = "local"
    print_results = staticmethod(print_results)

    def start_engines(self, cfg, hosts, count=None) -> HostResults:
        """Start engines here (count, else the host's `engines`); ok: how many."""
        res = HostResults()
        for host in hosts:
            n = count if count is not None else host.engines
            try:
                before = len(cl.local_engine_pids(cfg))
                cl.start_local_engines(cfg, n)
                res.ok[host.name] = len(cl.local_engine_pids(cfg)) - before
            except Exception as exc:  # noqa: BLE001 - one entry per host, by contract
                res.failed[host.name] = str(exc)
        return res

    def stop_engines(self, cfg, hosts) -> HostResults:
        """Stop the engines recorded here; ok: a line with how many."""
        res = HostResults()
        for host in hosts:
            res.ok[host.name] = f"{cl.stop_local_engines(cfg)} engines stopped"
        return res

    def engine_status(self, cfg, hosts) -> HostResults:
        """How many recorded engines are alive here."""
        n = len(cl.local_engine_pids(cfg))
        return HostResults(ok={host.name: n for host in hosts})

    def replace_engine(self, cfg, host, pid: int) -> str:
        """SIGKILL engine `pid` if it is one of ours and start one in its place."""
        if not cl.stop_local_engine(cfg, pid):
            return f"[{host.name}] engine pid {pid} was already gone"
        cl.start_local_engines(cfg, 1)
        return f"[{host.name}] engine pid {pid} stopped, a new engine started"

    def push_splits(self, cfg, split_path, hosts) -> HostResults:
        """The folds at workdir/splits/<digest>: verified there, else copied."""
        return self.push_run_files(cfg, split_path, SPLITS_SUBDIR, hosts)

    def push_run_files(self, cfg, path, subdir: str, hosts) -> HostResults:
        """A digest-named folder at workdir/subdir/<digest>, verified by its SHA256SUMS."""
        src = Path(path)
        res = HostResults()
        for host in hosts:
            dest = Path(host.workdir_path) / subdir / src.name
            try:
                if _intact(dest):
                    res.ok[host.name] = f"{src.name}: already there and verified"
                    continue
                if dest.exists():
                    # Damaged or incomplete: a new copy replaces it whole.
                    shutil.rmtree(dest)
                publish(dest, lambda tmp: shutil.copytree(src, tmp, dirs_exist_ok=True))
                res.ok[host.name] = f"{src.name}: copied"
            except OSError as exc:
                res.failed[host.name] = f"cannot stage {src} at {dest}: {exc}"
        return res

    def install(self, cfg, hosts, wheelhouse=None) -> HostResults:
        """Nothing to install: this machine's engines run in the driver's environment."""
        return HostResults(
            ok={
                h.name: "the driver's own environment: nothing to install"
                for h in hosts
            }
        )

    def run_command(self, cfg, command: str, hosts) -> HostResults:
        """Run `command` in a shell here (in the host's workdir); ok: its output."""
        res = HostResults()
        for host in hosts:
            workdir = Path(host.workdir_path)
            workdir.mkdir(parents=True, exist_ok=True)
            try:
                proc = subprocess.run(
                    command,
                    shell=True,
                    cwd=workdir,
                    capture_output=True,
                    text=True,
                    timeout=COMMAND_TIMEOUT,
                )
            except subprocess.TimeoutExpired:
                res.failed[host.name] = f"no exit after {COMMAND_TIMEOUT:g} s"
                continue
            out = (proc.stdout + proc.stderr).rstrip("\n")
            if proc.returncode:
                res.failed[host.name] = f"exit {proc.returncode}: {out[-300:]}"
            else:
                res.ok[host.name] = out
        return res

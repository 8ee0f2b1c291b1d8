"""Command-line plumbing shared by every Invoke task module (tasks.py, assess_tasks.py).

Runs on the laptop: the task decorator that turns user-fixable errors into
one line, flag parsing, and the cluster lifecycle a search or a curve goes
through (start if none runs, push the folds, stop what was started).
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from invoke import Exit, task

from runtime.dispatch import cluster as cl
from runtime.dispatch.lifecycle import pid_alive
from runtime.dispatch.probes import engines_by_host
from runtime.dispatch.search import SearchError
from runtime.spec import ConfigError, HostsConfig

DEFAULT_SPEC = "searches/digits_svc.yml"
HOSTS_HELP = (
    "hosts file (default: $FLEETCV_HOSTS, else ./hosts.yml, else this machine alone)"
)


def fleet_task(*args, **kwargs):
    """`@task`, turning the errors a user can fix into one line and exit status 2."""

    def deco(fn):
        @functools.wraps(fn)
        def body(*a, **kw):
            try:
                return fn(*a, **kw)
            except (ConfigError, cl.ClusterError, SearchError) as exc:
                raise Exit(f"error: {exc}", code=2) from None
            except Exception as exc:
                if not host_or_engine_failure(exc):
                    raise
                # The message names the host (or engine) and the cause; a
                # traceback would add nothing a user can act on.
                raise Exit(f"error: {type(exc).__name__}: {exc}", code=1) from None

        # Short flags would clash (-h is --help) and shift as flags are added.
        kwargs.setdefault("auto_shortflags", False)
        return task(*args, **kwargs)(body)

    return deco


def host_or_engine_failure(exc: Exception) -> bool:
    """Whether exc is a failure on a host or an engine (reported without a traceback)."""
    from ipyparallel.error import RemoteError as EngineSideError

    # fabfile is imported lazily; if it never was, this is not its error.
    fab = sys.modules.get("fabfile")
    return isinstance(exc, EngineSideError | TimeoutError) or (
        fab is not None and isinstance(exc, fab.RemoteError)
    )


def remote():
    """The fabfile module, imported on first use."""
    # fabfile pulls in Fabric/paramiko; only multi-host commands need it.
    import fabfile

    return fabfile


def check_reachable(cfg: HostsConfig, hosts) -> None:
    """Refuse remote hosts that could not reach the controller's address.

    A loopback address is this machine's own: engines on another host would
    dial their own loopback and wait there until they time out.
    """
    import ipaddress

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


def start_cluster(cfg: HostsConfig, engines: int | None) -> None:
    """Start the controller, this machine's engines and every remote host's engines."""
    check_reachable(cfg, cfg.hosts)
    info = cl.start(cfg, n_local=engines)
    print(
        f"controller: pid {info['controller_pid']} on {cfg.controller.ip}, profile {info['profile_dir']}"
    )
    if info["local_engines"]:
        print(f"localhost: {info['local_engines']} engines started")
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
        fab = remote()
        res = fab.start_engines(cfg, cfg.remote_hosts)
        fab.print_results(res)
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


def stop_cluster(cfg: HostsConfig) -> bool:
    """Stop remote engines (every host tried) and the controller; fail naming unstoppable hosts."""
    failed = {}
    if cfg.remote_hosts:
        fab = remote()
        res = fab.stop_engines(cfg, cfg.remote_hosts)
        fab.print_results(res)
        failed = res.failed
    stopped = cl.stop(cfg)
    if failed:
        raise Exit(
            f"could not stop the engines on {', '.join(sorted(failed))}: they may still run there. "
            f"Try: invoke cluster.stop again once the host is reachable",
            code=1,
        )
    return stopped


def push(cfg: HostsConfig, split_path: Path, client) -> None:
    """Push the folds to every remote host; refuse to search on a host that lacks them."""
    fab = remote()
    res = fab.push_splits(cfg, split_path, cfg.remote_hosts)
    fab.print_results(res)
    if not res.failed:
        return
    with_engines = set(engines_by_host(client)) & set(res.failed)
    if with_engines:
        raise Exit(
            f"the folds could not be pushed to {', '.join(sorted(with_engines))}, which run engines: "
            f"their tasks would fail. Fix the host (see above), or remove it from {cfg.path} and "
            f"restart the cluster",
            code=1,
        )
    print(
        f"warning: no folds on {', '.join(sorted(res.failed))} (no engines run there)",
        file=sys.stderr,
    )


#: Whether a pid is a live process (pid 0 and zombies are not).
alive = pid_alive


def int_flag(flag: str, value, minimum: int = 1) -> int | None:
    """Parse an integer flag (None stays None), or a ConfigError naming the flag."""
    if value is None:
        return None
    try:
        v = int(value)
    except (TypeError, ValueError):
        v = None
    if v is None or v < minimum:
        raise ConfigError(
            f"{flag}: expected an integer >= {minimum}, got {value!r}. Fix: pass e.g. {flag} {max(minimum, 2)}"
        )
    return v


@contextlib.contextmanager
def cluster_client(
    cfg: HostsConfig, split_path: Path, engines: int | None, keep_cluster: bool
) -> Iterator:
    """A client of the running cluster with the folds pushed; started (and then stopped) if needed."""
    started = not cl.is_running(cfg)
    if not started and engines is not None:
        print(
            "note: a cluster is already running; --engines applies only when the task starts one",
            file=sys.stderr,
        )
    try:
        # Inside the try: a start that fails half-way is still stopped.
        if started:
            start_cluster(cfg, engines)
        client = cl.connect(cfg)
        try:
            if cfg.remote_hosts:
                push(cfg, split_path, client)
            if not client.ids:
                cl.wait_for_engines(client, 1)
            yield client
        finally:
            client.close()
    finally:
        if started and not keep_cluster:
            stop_cluster(cfg)


def finish_run(rdir: Path, job, what: str, resume_cmd: str) -> None:
    """Print a finished (or stopped) run's report, write its report.html and plots.

    Exits 130 when the run was aborted (Ctrl-C, search.abort) and 1 when it
    ended with holes, naming the command that resumes it.
    """
    from runtime.report.html import finish_run as write_report
    from runtime.rundir import journal as jn

    print()
    print(job.report())
    out = write_report(rdir)
    print(f"\nwrote {rdir}/{{{jn.JOURNAL},{jn.RESULTS},{jn.REPORT}}}")
    print(f"wrote {out['report']} and {len(out['plots'])} plots")
    if job.status != "finished":
        raise Exit(
            f"{what} {job.status}. Resume with: {resume_cmd}",
            code=130 if job.status == "aborted" else 1,
        )


def run_flags(engines, max_retries) -> tuple[int | None, int]:
    """--engines and --max-retries (default 2) of the tasks that run on the cluster, checked."""
    return (
        int_flag("--engines", engines),
        int_flag("--max-retries", 2 if max_retries is None else max_retries, minimum=0),
    )

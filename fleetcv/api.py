"""The run lifecycle from Python: what `invoke search` and `invoke curves.*` do, as functions.

Runs on the driver (a script or a notebook). Each function goes through the
same lifecycle as the command line (`fleetcv.dispatch.lifecycle`): validate,
persist the folds, create or resume the run directory, start or reuse the
cluster, push, warm, submit and collect, write results and the report, and
returns the ended job (`job.status` says finished, incomplete or aborted;
`job.results_`, and a search's `cv_results_` and `best_params_`)::

    from fleetcv import api
    search = api.search("searches/digits_svc.yml")
    search.best_params_

The cluster itself, as `invoke cluster.*` and `invoke probe.memory`::

    api.start_cluster(engines=2)
    print(api.cluster_status())
    print(api.format_probe(api.probe_memory()))
    api.stop_cluster()

A run's results from its directory alone, as FleetSearchCV gives them
(parameter values with their types)::

    api.read_results("runs/digits_svc-20261207-101500").best_params_

Hosts are reached through their backends (`fleetcv.backends`: this
machine's, SSH's); Fabric is imported only when a host is an SSH one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from fleetcv.backends import Backends
from fleetcv.dispatch import cluster as cl
from fleetcv.dispatch import fleet
from fleetcv.dispatch import lifecycle as lc
from fleetcv.dispatch.job import Job
from fleetcv.dispatch.probes import format_probe, probe_cluster
from fleetcv.errors import ConfigError, RunStopped
from fleetcv.kinds import SEARCH_KINDS, kind_of
from fleetcv.kinds.curve_flags import DEFAULT_TRAIN_SIZES, learning_job, validation_job
from fleetcv.kinds.search import best_of
from fleetcv.rundir import journal as jn
from fleetcv.rundir import run as rd
from fleetcv.rundir.results import sklearn_cv_results
from fleetcv.spec import HostsConfig, load_hosts, load_search_spec


def search(
    spec: str | os.PathLike,
    *,
    hosts_file: str | os.PathLike | None = None,
    n_iter: int | None = None,
    run_dir: str | os.PathLike | None = None,
    runs_root: str | os.PathLike = lc.DEFAULT_RUNS_ROOT,
    resume: str | os.PathLike | None = None,
    remote=None,
    **options,
) -> Job:
    """Run (or, with `resume`, finish) the grid or randomized search of a spec file.

    Parameters
    ----------
    spec : path
        The search spec (YAML).
    hosts_file : path, optional
        The cluster; default as on the command line ($FLEETCV_HOSTS,
        ./hosts.yml, else this machine alone).
    n_iter : int, optional
        Candidates to draw (randomized search; on a grid, a random subset).
    run_dir, runs_root : path, optional
        Where the run directory goes.
    resume : path, optional
        A run directory to finish instead of starting a new run.
    remote : object, optional
        Serves the SSH hosts instead of `fleetcv.backends.ssh` (keeping the
        `fleetcv.backends.base.Backend` contract: a test's, the bench's).
    **options
        `fleetcv.dispatch.lifecycle.RunOptions` fields: engines,
        max_retries, progress, keep_cluster, reuse.

    Returns
    -------
    Job
        A `DistributedSearch`-like job, ended.
    """
    cfg = load_hosts(hosts_file)
    if resume:
        plan = lc.plan_resume(resume, cfg, SEARCH_KINDS, spec_file=spec, n_iter=n_iter)
    else:
        s = load_search_spec(spec, n_iter=n_iter)
        plan = lc.plan_new(
            s, lc.search_job_of(s), cfg, runs_root=runs_root, run_dir=run_dir
        )
    return _run(cfg, plan, backends(remote), options)


def learning_curve(
    spec: str | os.PathLike,
    train_sizes: str = ",".join(map(str, DEFAULT_TRAIN_SIZES)),
    params: str | None = None,
    *,
    hosts_file: str | os.PathLike | None = None,
    runs_root: str | os.PathLike = lc.DEFAULT_RUNS_ROOT,
    remote=None,
    **options,
) -> Job:
    """A new learning curve of the spec's estimator, as `invoke curves.learning`.

    `train_sizes` and `params` are read as the flags are (e.g. "0.1,1.0";
    a JSON object or "best"); `hosts_file`, `runs_root`, `remote` and
    `**options` as for `search`. A curve run is resumed with
    `invoke curves.learning --resume RUN_DIR`.
    """
    cfg = load_hosts(hosts_file)
    s = load_search_spec(spec)
    job = learning_job(s, train_sizes, params, runs_root=runs_root)
    return _run(
        cfg, lc.plan_new(s, job, cfg, runs_root=runs_root), backends(remote), options
    )


def validation_curve(
    spec: str | os.PathLike,
    param: str,
    param_range: str | None = None,
    params: str | None = None,
    *,
    hosts_file: str | os.PathLike | None = None,
    runs_root: str | os.PathLike = lc.DEFAULT_RUNS_ROOT,
    remote=None,
    **options,
) -> Job:
    """A new validation curve of one parameter, as `invoke curves.validation`.

    `param_range` and `params` are read as the flags are; `hosts_file`,
    `runs_root`, `remote` and `**options` as for `search`.
    """
    cfg = load_hosts(hosts_file)
    s = load_search_spec(spec)
    job = validation_job(s, param, param_range, params, runs_root=runs_root)
    return _run(
        cfg, lc.plan_new(s, job, cfg, runs_root=runs_root), backends(remote), options
    )


def start_cluster(
    hosts_file: str | os.PathLike | None = None,
    *,
    engines: int | None = None,
    remote=None,
    log=print,
) -> None:
    """Start the controller and every host's engines, as `invoke cluster.start`.

    Parameters
    ----------
    hosts_file : path, optional
        The cluster (default as on the command line).
    engines : int, optional
        Engines on this machine (default: the local host's `engines`).
    remote : object, optional
        Serves the SSH hosts instead of `fleetcv.backends.ssh` (keeping the
        `fleetcv.backends.base.Backend` contract: a test's, the bench's).
    log : callable
        Gets the lines saying what started.
    """
    fleet.start_cluster(load_hosts(hosts_file), engines, backends(remote), log=log)


def stop_cluster(hosts_file: str | os.PathLike | None = None, *, remote=None) -> bool:
    """Stop every engine and the controller, as `invoke cluster.stop`.

    Returns
    -------
    bool
        False when no cluster was running.
    """
    return fleet.stop_cluster(load_hosts(hosts_file), backends(remote))


def cluster_status(hosts_file: str | os.PathLike | None = None, *, remote=None) -> str:
    """The controller and, per host, engines registered vs. running (`invoke cluster.status`).

    Raises
    ------
    HostError
        When no cluster is running.
    """
    return "\n".join(fleet.status_lines(load_hosts(hosts_file), backends(remote)))


def probe_memory(hosts_file: str | os.PathLike | None = None, *, remote=None) -> dict:
    """Per-host available memory and per-engine RSS/USS/PSS (`invoke probe.memory --json`).

    `format_probe(probe)` gives the command line's table.

    Returns
    -------
    dict
        {"engines": {id: probe}, "hosts": {host: {available, total, engines,
        sum_rss, sum_uss, sum_pss}}}, in bytes.
    """
    client = cl.connect(load_hosts(hosts_file))
    try:
        return probe_cluster(client)
    finally:
        client.close()


@dataclass(frozen=True)
class RunResults:
    """A search run's results as FleetSearchCV gives them (`read_results`).

    Attributes
    ----------
    run_dir : Path
        The run directory.
    status : str
        finished, running, aborted, incomplete, interrupted...
    cv_results_ : dict
        scikit-learn's `cv_results_`: the parameter values as they were
        given (tuples, numpy scalars, estimators), masked `param_<name>`
        arrays, NaN for splits not scored yet.
    best_index_, best_params_, best_score_
        As a fitted search's (None while there is no best).
    """

    run_dir: Path
    status: str
    cv_results_: dict
    best_index_: int | None
    best_params_: dict | None
    best_score_: float | None


def read_results(run_dir: str | os.PathLike) -> RunResults:
    """The results of a search run from its directory alone (no cluster, no spec).

    Rebuilt from the journal, as `invoke report` does, so a run still going
    or interrupted reads as far as it got.

    Raises
    ------
    ConfigError
        When `run_dir` is not a run directory, or is a curve's (no cv_results_).
    """
    path = Path(run_dir)
    meta = rd.read_meta(path)
    kind = kind_of(meta)
    if kind.style != "search":
        raise ConfigError(
            f"{path}: a {kind.name.replace('_', ' ')} run, which has no cv_results_. "
            f"Fix: read its curve from {path / jn.RESULTS}, or pass a search's run"
        )
    results = kind.results(meta, meta["n_folds"], jn.read_journal(path / jn.JOURNAL))
    idx, _, score = best_of(meta, results)
    cv_results = sklearn_cv_results(results)
    return RunResults(
        run_dir=path,
        status=rd.status_of(meta),
        cv_results_=cv_results,
        best_index_=idx,
        best_params_=None if idx is None else cv_results["params"][idx],
        best_score_=score,
    )


def backends(remote=None) -> Backends:
    """The driver's backends; `remote`, when given, serves the SSH hosts (a test's, the bench's)."""
    if isinstance(remote, Backends):
        return remote
    return Backends({"ssh": remote} if remote is not None else None)


def _run(cfg: HostsConfig, plan: lc.Plan, remote, options: dict) -> Job:
    job = lc.execute(plan, cfg, remote, lc.RunOptions(**options))
    try:
        lc.finish(plan, job)
    except RunStopped:
        pass  # job.status says how it ended; the run stays resumable
    return job


__all__ = [
    "cluster_status",
    "format_probe",
    "backends",
    "learning_curve",
    "probe_memory",
    "read_results",
    "search",
    "start_cluster",
    "stop_cluster",
    "validation_curve",
]

"""The one run lifecycle: every job kind, from flags to exit status.

Runs on the driver. Whatever the kind (search, learning or validation curve,
and the kinds to come), a run goes:

1. validate: the caller turns its flags into a spec and a job description
   (`search_job_of`, `fleetcv.kinds.curves.curve_job`);
2. prepare folds (`prepare_splits`: persisted once per data + CV digest);
3. create the run directory (`plan_new`) or resume one (`plan_resume`:
   same spec, same folds, a kind the caller runs);
4. start or reuse the cluster, push the folds (`fleetcv.dispatch.fleet`),
   refuse engines of another fleetcv version (`fleetcv.dispatch.versions`);
5. cancel a dead driver's queued tasks, warm the page cache, submit and
   collect through the one task runner (`run_job`); Ctrl-C aborts queued
   tasks and keeps what finished;
6. finalize and write results.json and report.txt (`fleetcv.rundir.run`),
   then report.html and the plots (`finish`), and say how it ended:
   `RunStopped` carries the exit status of an aborted or incomplete run.

The Invoke tasks (tasks.py) and the Python API (`fleetcv.api`) both go
through `plan_new`/`plan_resume`, `execute` and `finish`.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fleetcv.dispatch import cluster as cl
from fleetcv.dispatch import fleet
from fleetcv.dispatch import requirements as reqs
from fleetcv.dispatch.byvalue import register_user_modules
from fleetcv.dispatch.job import Job, budget_line, job_for
from fleetcv.dispatch.probes import NO_ANSWER, engines_by_host
from fleetcv.dispatch.refit import refit_best
from fleetcv.dispatch.rejoin import HostRejoin
from fleetcv.dispatch.versions import check_engine_versions
from fleetcv.errors import ConfigError, EnginesLost, HostError, RunStopped, SearchError
from fleetcv.kinds import KINDS, Kind, kind_of
from fleetcv.rundir import journal as jn
from fleetcv.rundir import run as rd
from fleetcv.rundir.lock import lock_run, unlock_run
from fleetcv.spec import HostsConfig, SearchSpec, load_dataset
from fleetcv.spec.inline import SOURCE, InlineSpec
from runtime import usercode
from runtime.build import comparable
from runtime.folds import (
    FORMAT_VERSION,
    MANIFEST,
    SPLITS_SUBDIR,
    SplitSet,
    load_split_set,
    persist_splits,
)
from runtime.worker import warm_fold_cache

DEFAULT_RUNS_ROOT = rd.DEFAULT_RUNS_ROOT


@dataclass(frozen=True)
class RunOptions:
    """How to run a planned job (the flags every run task shares).

    Attributes
    ----------
    engines : int, optional
        Engines on this machine when the run starts the cluster.
    max_retries : int
        Resubmissions of a task whose engine died.
    progress : bool
        Show a progress bar.
    keep_cluster : bool
        Leave a cluster that the run started running.
    reuse : bool
        Take fits that earlier runs already made (searches).
    warm : bool
        Read every fold once per host before submitting.
    task_timeout : float, optional
        Seconds a fit may run (the --task-timeout flag); None: the spec's
        task_timeout, if any.
    on_launch : callable, optional
        Called with the Job once its tasks are submitted: a handle on a
        running fit for its caller (FleetSearchCV.fit_async's report()).
    """

    engines: int | None = None
    max_retries: int = 2
    progress: bool = True
    keep_cluster: bool = False
    reuse: bool = False
    warm: bool = True
    on_launch: Callable[[Job], None] | None = None
    task_timeout: float | None = None


@dataclass(frozen=True)
class Plan:
    """A validated run, its folds on disk and its run directory made: ready to execute."""

    spec: SearchSpec
    split: SplitSet
    run_dir: Path
    meta: dict

    @property
    def kind(self) -> Kind:
        """The run's job kind."""
        return kind_of(self.meta)

    @property
    def resume_command(self) -> str:
        """The command that resumes this run."""
        return f"invoke {self.kind.command} --resume {self.run_dir}"


def staging_workdir(cfg: HostsConfig) -> Path:
    """Where this machine writes split files: the local host's workdir."""
    local = cfg.local_host
    path = local.workdir_path if local else os.path.expanduser("~/.cache/fleetcv")
    return Path(path)


def prepare_code(
    spec: SearchSpec, cfg: HostsConfig, log: Callable[[str], None] = print
) -> dict | None:
    """Snapshot the spec's `code:` into the local workdir; what meta.json records of it.

    Returns
    -------
    dict or None
        ``digest``, ``ref`` (the snapshot relative to a host's workdir, what
        the engines import from) and ``entries``; None without code.
    """
    entries = getattr(spec, "code", ())
    if not entries:
        return None
    snap = usercode.snapshot(list(entries), staging_workdir(cfg))
    loaded = getattr(spec, "code_digest", None)
    if loaded is not None and snap.name != loaded:
        # Edited between the spec's load (its digest) and now: which is it?
        raise ConfigError(
            f"{spec.path}: code: changed while the run was being prepared (digest "
            f"{loaded}, now {snap.name}). Fix: run it again once the files are saved"
        )
    log(f"code: {', '.join(p.name for p in entries)} as {snap}")
    return {
        "digest": snap.name,
        "ref": f"{usercode.CODE_SUBDIR}/{snap.name}",
        "entries": [p.name for p in entries],
    }


def prepare_requirements(
    spec: SearchSpec, cfg: HostsConfig, log: Callable[[str], None] = print
) -> dict | None:
    """The wheelhouse of the spec's `requirements:` in the local workdir; what meta.json records.

    Returns
    -------
    dict or None
        ``digest``, ``ref`` (relative to a host's workdir) and ``lines``;
        None without requirements.
    """
    lines = tuple(getattr(spec, "requirements", ()))
    if not lines:
        return None
    wheels = reqs.prepare(lines, staging_workdir(cfg), log=log)
    return {
        "digest": wheels.name,
        "ref": f"{reqs.REQS_SUBDIR}/{wheels.name}",
        "lines": [Path(x).name if x.endswith(".whl") else x for x in lines],
    }


def run_files(plan: Plan, cfg: HostsConfig) -> tuple:
    """The run's folders pushed with its folds: (path here, workdir subfolder) pairs."""
    out = []
    for key, subdir in (
        ("code", usercode.CODE_SUBDIR),
        ("requirements", reqs.REQS_SUBDIR),
    ):
        entry = plan.meta.get(key)
        if entry:
            out.append((staging_workdir(cfg) / entry["ref"], subdir))
    return tuple(out)


def prepare_splits(
    spec: SearchSpec, cfg: HostsConfig, log: Callable[[str], None] = print
) -> SplitSet:
    """Load the data and persist the folds (reused when the digest exists)."""
    data = spec.dataset() if isinstance(spec, InlineSpec) else load_dataset(spec)
    workdir = staging_workdir(cfg)
    start = time.perf_counter()
    split = persist_splits(
        data.X,
        data.y,
        spec.cv.splitter(),
        spec.cv.as_dict(),
        workdir,
        groups=data.groups,
        fit_params=data.fit_params,
    )
    log(
        f"splits: {split.n_folds} folds of {data.describe()} in {split.path} "
        f"({time.perf_counter() - start:.1f} s)"
    )
    m = split.manifest
    own = m.get("nbytes", 0) - m.get("shared_bytes", 0)
    if own > 0:
        log(
            f"note: {own / 1e3:,.0f} kB of the data (strings, categories, objects) "
            "cannot be memory-mapped: each engine holds its own copy of a fold's share"
        )
    return split


#: Seconds the page-cache warm-up may take on all hosts together.
WARM_TIMEOUT = 600.0


def warm_page_cache(client, split: SplitSet, timeout: float = WARM_TIMEOUT) -> dict:
    """Read every fold once on one engine per host (the notebook's trick).

    Raises
    ------
    HostError
        Naming the hosts that did not finish within `timeout` seconds.
    """
    refs = [split.relative(k) for k in range(split.n_folds)]
    by_host = engines_by_host(client)
    ars = {
        h: client[eids[0]].apply_async(warm_fold_cache, fold_refs=refs)
        for h, eids in by_host.items()
        if h != NO_ANSWER
    }
    deadline = time.monotonic() + timeout
    out, late = {}, []
    for h, ar in ars.items():
        try:
            out[h] = ar.get(max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            late.append(h)
    if late:
        raise HostError(
            f"reading the folds into the page cache did not finish within {timeout:g} s "
            f"on {', '.join(sorted(late))} (a slow or failing disk?). Fix: check those "
            "hosts, or remove them from the hosts file and resume"
        )
    return out


def abort_orphans(client, run_dir: Path, meta: dict) -> int:
    """Cancel the tasks this run's previous driver left queued, if it died.

    A driver killed mid-run (laptop closed, SIGKILL) leaves its queued tasks
    on the controller: they would run for nobody and hold up the resume's
    own. The run directory lists the message id of every task message its
    drivers sent (`journal.SUBMITTED`); those of them that the controller
    still holds queued are cancelled, nobody else's. Tasks already running
    finish (ipyparallel cannot stop them); their results are simply lost.

    Returns
    -------
    int
        How many task messages were cancelled.
    """
    path = run_dir / jn.SUBMITTED
    if rd.pid_alive(meta.get("driver_pid")) or not path.exists():
        return 0
    ours = set(path.read_text().split())
    qs = client.queue_status(verbose=True)
    queued = list(qs.get("unassigned", []))
    for v in qs.values():
        if isinstance(v, dict):
            queued += v.get("queue", []) + v.get("tasks", [])
    orphans = [m for m in queued if m in ours]
    if orphans:
        client.abort(orphans, block=True)
    return len(orphans)


def start_run(
    client, run_dir: Path, split: SplitSet, meta: dict, warm: bool, log
) -> None:
    """What every run does before it submits (searches and curves alike).

    Cancels what a dead earlier driver of this run left queued
    (`abort_orphans`), warms the hosts' page cache with the folds, and
    records this process in meta.json.
    """
    # Before anything: a second driver of this run would cancel the first's
    # tasks as orphans, submit the same pairs and overwrite its meta.json.
    lock_run(run_dir)
    # Cancel first: the warm-up's tasks would queue behind the orphans.
    cancelled = abort_orphans(client, run_dir, meta)
    if cancelled:
        log(
            f"cancelled {cancelled} tasks that the run's previous driver (gone) had left queued"
        )
    if warm:
        warmed = warm_page_cache(client, split)
        log(
            "page cache: "
            + ", ".join(
                f"{h} {w['bytes'] / 1e6:.1f} MB in {w['seconds']:.2f} s"
                for h, w in warmed.items()
            )
        )
    rd.set_status(run_dir, "running", driver_pid=os.getpid())


def search_job_of(spec: SearchSpec) -> dict | Callable[[SplitSet], dict]:
    """The job description of the spec's search, made by its kind (`SpecSection.job_of`).

    A kind whose job depends on the folds (a halving search's resources on
    the data's rows and classes) gives a function of them, which `plan_new`
    calls. Every search's job has its evaluation key and budget.
    """
    kind = KINDS[spec.search].spec
    budget = {k: v for k, v in spec.budget.items() if v is not None}
    extra = {"evaluation_key": rd.evaluation_key(spec)}
    if budget:
        extra["budget"] = budget

    def make(split: SplitSet | None = None) -> dict:
        return {**kind.job_of(spec, split), **extra}

    return make if kind.needs_split else make()


def create_run(
    spec: SearchSpec,
    split: SplitSet,
    job: dict,
    *,
    runs_root: str | os.PathLike = DEFAULT_RUNS_ROOT,
    run_dir: str | os.PathLike | None = None,
    command: str = "",
) -> Path:
    """Create the run directory of a new job (meta.json = the job + the common keys).

    Raises
    ------
    ConfigError
        When `run_dir` exists and is not empty (nothing in it is touched).
    """
    kind = kind_of(job)
    return rd.create_run(
        spec,
        split,
        runs_root,
        run_dir,
        kind.run_name(spec.name, job),
        f"invoke {kind.command}",
        command,
        **job,
    )


def plan_new(
    spec: SearchSpec,
    job: dict | Callable[[SplitSet], dict],
    cfg: HostsConfig,
    *,
    runs_root: str | os.PathLike = DEFAULT_RUNS_ROOT,
    run_dir: str | os.PathLike | None = None,
    command: str = "",
    log: Callable[[str], None] = print,
) -> Plan:
    """Prepare the folds and create the run directory of a new job.

    `job` is the job description, or a function of the folds that makes it
    (a learning curve's sizes are fractions of the first training fold).
    """
    split = prepare_splits(spec, cfg, log=log)
    if callable(job):
        job = job(split)
    for key, prepared in (
        ("code", prepare_code(spec, cfg, log=log)),
        ("requirements", prepare_requirements(spec, cfg, log=log)),
    ):
        if prepared:
            job = {**job, key: prepared}
    rdir = create_run(
        spec, split, job, runs_root=runs_root, run_dir=run_dir, command=command
    )
    return Plan(spec, split, rdir, rd.read_meta(rdir))


def plan_resume(
    run_dir: str | os.PathLike,
    cfg: HostsConfig,
    kinds: tuple[str, ...],
    *,
    spec_file: str | None = None,
    n_iter: int | None = None,
    log: Callable[[str], None] = print,
) -> Plan:
    """Check that `run_dir` can be resumed by a task of `kinds`, and prepare its folds.

    Raises
    ------
    ConfigError
        When it is not a run, of another kind, from another spec, or its
        data or CV changed.
    """
    path = Path(run_dir)
    check_kind(path, rd.read_meta(path), kinds)
    if rd.read_meta(path).get("source") == SOURCE:
        raise ConfigError(
            f"--resume {path}: this run was made in Python by FleetSearchCV. Fix: "
            f"resume it there: FleetSearchCV(..., resume={str(path)!r}).fit(X, y)"
        )
    spec, meta = rd.load_resume(path, spec_file, n_iter=n_iter)
    split = prepare_splits(spec, cfg, log=log)
    prepare_code(spec, cfg, log=log)  # the same digest: load_resume checked it
    prepare_requirements(spec, cfg, log=log)
    if split.digest != meta["split_digest"]:
        old = staging_workdir(cfg) / SPLITS_SUBDIR / meta["split_digest"]
        fmt = (
            load_split_set(old).manifest.get("format")
            if (old / MANIFEST).is_file()
            else None
        )
        if fmt is not None and fmt != FORMAT_VERSION:
            raise ConfigError(
                f"--resume {path}: the run was made by an older fleetcv, whose folds "
                f"(format {fmt}) this one (format {FORMAT_VERSION}) cannot continue. Fix: "
                f"start a new run (invoke report {path} still reads this one)"
            )
        raise ConfigError(
            f"--resume {path}: the data or CV changed since the run started (splits "
            f"{split.digest} != {meta['split_digest']}). Fix: restore the data, or start a new run"
        )
    return Plan(spec, split, path, meta)


def plan_resume_inline(
    spec: InlineSpec,
    run_dir: str | os.PathLike,
    cfg: HostsConfig,
    log: Callable[[str], None] = print,
) -> Plan:
    """Check that a FleetSearchCV run can be finished by this search, and prepare its folds.

    Raises
    ------
    ConfigError
        When it is not such a run, or its candidates, data or folds differ.
    """
    path = Path(run_dir)
    meta = rd.read_meta(path)
    if meta.get("source") != SOURCE:
        raise ConfigError(
            f"resume={str(path)!r}: not a run of FleetSearchCV. Fix: resume it with "
            f"invoke {kind_of(meta).command} --resume {path}"
        )
    # A halving search's random flavour drew as many as its run has.
    # A search over drawn candidates (a halving search's random flavour)
    # drew as many as its run has.
    drawn = spec.settings is not None and spec.flavour == "random"
    again = spec.candidates(n_iter=len(meta.get("candidates") or []) if drawn else None)
    if comparable(meta.get("candidates")) != comparable(again):
        raise ConfigError(
            f"resume={str(path)!r}: the run searched other candidates (param grid, "
            "n_iter or random_state differ). Fix: the same FleetSearchCV, or no resume"
        )
    split = prepare_splits(spec, cfg, log=log)
    if split.digest != meta["split_digest"]:
        raise ConfigError(
            f"resume={str(path)!r}: the data or the folds changed since the run "
            "started. Fix: fit on the same X, y and cv, or start a new run"
        )
    code = prepare_code(spec, cfg, log=log)
    if (code or {}).get("digest") != (meta.get("code") or {}).get("digest"):
        raise ConfigError(
            f"resume={str(path)!r}: the code= modules changed since the run started: "
            "resuming would mix results of two versions of them. Fix: restore them, "
            "or start a new run"
        )
    prepare_requirements(spec, cfg, log=log)
    return Plan(spec, split, path, meta)


def check_kind(path: Path, meta: dict, kinds: tuple[str, ...]) -> None:
    """Refuse to resume a run of another kind than `kinds`, naming the task that can."""
    kind = kind_of(meta)
    if kind.name in kinds:
        return
    nouns = {KINDS[k].noun for k in kinds}
    label = kind.name.replace("_", " ")
    if nouns == {"search"}:
        raise ConfigError(
            f"--resume {path}: this is a {label} run, not a search. "
            f"Fix: invoke {kind.command} --resume {path}"
        )
    raise ConfigError(
        f"--resume {path}: a {label} run, not a {'/'.join(sorted(nouns))}. Fix: resume "
        f"it with invoke {kind.command} --resume {path}"
    )


def execute(
    plan: Plan,
    cfg: HostsConfig,
    remote,
    options: RunOptions = RunOptions(),
    log: Callable[[str], None] = print,
    early: fleet.EarlyStart | None = None,
) -> Job:
    """Run a planned job on the cluster (started for it if none runs) and return it, ended.

    Parameters
    ----------
    plan : Plan
        From `plan_new` or `plan_resume`.
    cfg : HostsConfig
        The cluster.
    remote : module or object
        The backends (`fleetcv.backends.Backends`) of the hosts other than this machine.
    options : RunOptions
        Engines, retries, progress, keep_cluster, reuse.
    log : callable
        Where progress lines go.
    early : fleet.EarlyStart, optional
        The cluster's start, begun before the run was planned.

    Returns
    -------
    Job
        Finished, incomplete, or aborted (Ctrl-C, `invoke search.abort`).
    """
    with fleet.cluster_client(
        cfg,
        plan.split.path,
        options.engines,
        options.keep_cluster,
        remote,
        log,
        extra=run_files(plan, cfg),
        early=early,
    ) as client:
        # Before anything is warmed or submitted: an engine of another
        # fleetcv would compute with other code. (The built-in default
        # hosts have no file to name in the fix.)
        named = None if cfg.path.startswith("<") else cfg.path
        local = {h.name for h in cfg.hosts if h.local}
        check_engine_versions(client, hosts_file=named, local=local)
        # Before any task: a host that cannot install them stops the run here.
        reqs.install(client, plan.meta, log=log)
        job = run_job(
            client,
            plan,
            options,
            log,
            health=[cl.controller_watch(cfg)]
            + ([HostRejoin(cfg, remote, client)] if cfg.remote_hosts else []),
            on_timeout=fleet.engine_replacer(cfg, remote),
        )
        if job.kind.style == "search":
            try:
                refit_best(client, plan, job, log)
            except (SearchError, EnginesLost) as exc:
                # The search's results stand: report them, then say it failed
                # (the error's cause is what the estimator raised on the engine).
                job.refit_error = exc
        return job


def run_job(
    client,
    plan: Plan,
    options: RunOptions = RunOptions(),
    log=print,
    health=(),
    on_timeout=None,
) -> Job:
    """Run (or resume) the job of `plan.run_dir` on `client`'s engines.

    With `options.reuse`, fits already made by earlier runs under the same
    runs/ root (same estimator, scoring, params and fold) are copied in
    first. `health` are the runner's checks (`TaskRunner.health`), e.g. that
    the controller still runs; `on_timeout` replaces the engine of a fit
    past the task timeout (`TaskRunner`).
    """
    run_dir, meta, split = plan.run_dir, plan.meta, plan.split
    if options.reuse and kind_of(meta).planner is not None:
        # Its rows are fits on subsamples or with set resources, decided
        # by its own results: an earlier run's fit of the same params is not one.
        log(f"reuse: a {kind_of(meta).name} search reuses no fits of earlier runs")
    elif options.reuse:
        rd.reuse_results(run_dir, meta, log=log)
    start_run(client, run_dir, split, meta, options.warm, log)
    search = kind_of(meta).style == "search"
    estimator = plan.spec.estimator.build()
    # The user's classes from the spec's code (or a notebook) travel by value:
    # an engine unpickles its task before it can import the run's code.
    register_user_modules(estimator, plan.spec.scoring)
    job = job_for(
        client.load_balanced_view(),
        estimator,
        meta,
        # A curve plots one metric: with several, the one that ranks.
        scoring=plan.spec.scoring if search else plan.spec.ranking_scoring,
        error_score=plan.spec.error_score,
        run_dir=run_dir,
        max_retries=options.max_retries,
        task_timeout=options.task_timeout or getattr(plan.spec, "task_timeout", None),
        on_timeout=on_timeout,
    )
    job.runner.health.extend(health)
    already = job.n_done
    try:
        job.launch(
            split, expected_times=rd.previous_expected_times(run_dir, meta) or None
        )
        log(_launch_line(job, run_dir, split, len(client.ids), already))
        if options.on_launch is not None:
            options.on_launch(job)
        job.wait(progress=options.progress)
    except KeyboardInterrupt:
        print(
            "\ninterrupted: cancelling queued tasks, waiting for running ones...",
            file=sys.stderr,
        )
        job.abort()
    finally:
        try:
            rd.set_status(run_dir, job.status)
        except OSError:
            # A full disk: meta.json keeps "running" with this driver's pid,
            # which reads as interrupted, resumable, once this process ends.
            pass
        finally:
            unlock_run(run_dir)
    return job


def _launch_line(
    job: Job, run_dir: Path, split: SplitSet, engines: int, already: int
) -> str:
    """The line that says what a run starts: rows x folds, on how many engines."""
    if job.kind.planner is not None:
        # Rows come as results do: say where it starts and its most.
        what = (
            f"a {job.kind.name} search, {len(job.candidates)} {job.kind.rows} x "
            f"{split.n_folds} folds to start, {job.runner.expected_tasks} fits at most"
        )
    else:
        what = (
            f"{len(job.candidates)} {job.kind.rows} x {split.n_folds} folds = "
            f"{job.n_tasks} fits"
        )
    return f"run {run_dir}: {what} on {engines} engines" + (
        f" ({already} already in the journal)" if already else ""
    )


def finish(plan: Plan, job: Job, log: Callable[[str], None] = print) -> None:
    """Print the report, start drawing report.html and the plots; raise `RunStopped` unless finished.

    Raises
    ------
    RunStopped
        Exit status 130 when the run was aborted (Ctrl-C, search.abort), 1
        when it ended with holes, naming the command that resumes it.
    """
    from fleetcv.report import background

    rdir = plan.run_dir
    log("")
    log(job.report())
    log(f"\nwrote {rdir}/{{{jn.JOURNAL},{jn.RESULTS},{jn.REPORT}}}")
    # matplotlib and the figures take longer than a small search's fits: a
    # process of their own draws them, and this command ends now.
    try:
        pid = background.start(rdir)
        log(
            f"drawing {rdir}/report.html and the plots in the background (pid {pid}, "
            f"log {rdir}/{background.LOG_FILE})"
        )
    except OSError as exc:  # no process to spare: the results stand without pictures
        log(
            f"could not start drawing report.html and the plots ({exc}). Fix: "
            f"invoke plot {rdir}"
        )
    refit_error = job.refit_error
    if job.status == "finished" and refit_error:
        raise RunStopped(f"{plan.kind.noun} finished, but {refit_error}", exit_code=1)
    if job.status != "finished":
        raise RunStopped(
            f"{plan.kind.noun} {job.status}. Resume with: {plan.resume_command}",
            exit_code=130 if job.status == "aborted" else 1,
        )


def rebuild(run_dir: str | os.PathLike, top_k: int | None = None) -> str:
    """Rebuild results.json and report.txt of any run from its journal; return the report."""
    path = Path(run_dir)
    meta = rd.read_meta(path)
    kind = kind_of(meta)
    records = jn.read_journal(path / jn.JOURNAL)
    res = kind.results(meta, meta["n_folds"], records)
    n_tasks = kind.n_tasks(meta, meta["n_folds"])
    n_done = sum(res["n_finished_splits"])
    status = rd.status_of(meta)
    text = kind.report(meta, res, n_tasks, n_done, status=status, top_k=top_k)
    fields = {
        **kind.summary(meta, res),
        "status": status,
        "n_tasks": n_tasks,
        "n_done": n_done,
    }
    # What only the driver knew: the budget that ended the run.
    stopped_by = rd.read_results_field(path, "stopped_by")
    if stopped_by:
        fields["stopped_by"] = stopped_by
        text += budget_line(stopped_by, meta, n_done)
    rd.write_results(path, res, text, **fields)
    return text


#: How long `abort` waits for the driver to write its results.
ABORT_WAIT = 30.0


def abort(
    run_dir: str | os.PathLike | None, runs_root: str | os.PathLike = DEFAULT_RUNS_ROOT
) -> str:
    """Abort a running run from another process, as Ctrl-C does; return what to print.

    The driver handles SIGINT like Ctrl-C: queued tasks are cancelled,
    finished ones kept, results written, and the run stays resumable.

    Raises
    ------
    ConfigError
        When no run is running under `runs_root` (and none is named).
    HostError
        When the named run has no live driver.
    """
    rdir = Path(run_dir) if run_dir else _latest_running(runs_root)
    meta = rd.read_meta(rdir)
    pid = meta.get("driver_pid")
    if meta.get("status") != "running" or not rd.pid_alive(pid):
        raise HostError(
            f"{rdir}: no search is running there (status {meta.get('status')!r})"
        )
    os.kill(pid, signal.SIGINT)
    deadline = time.monotonic() + ABORT_WAIT
    while rd.read_meta(rdir).get("status") == "running":
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)
    status = rd.read_meta(rdir).get("status")
    return (
        f"{rdir}: {status}. Resume with: invoke {kind_of(meta).command} --resume {rdir}"
    )


def _latest_running(root: str | os.PathLike) -> Path:
    found = rd.latest_run(root, lambda m: m.get("status") == "running")
    if found is None:
        raise ConfigError(
            f"{root}: no running search found. Fix: pass --run-dir RUN_DIR"
        )
    return found


def running_split_dirs(cfg: HostsConfig, runs_root: str | os.PathLike) -> list[Path]:
    """Split directories of the runs under `runs_root` whose driver is alive."""
    out = []
    for meta in _running_metas(runs_root):
        path = staging_workdir(cfg) / "splits" / meta["split_digest"]
        if path.is_dir() and path not in out:
            out.append(path)
    return out


def running_code_dirs(cfg: HostsConfig, runs_root: str | os.PathLike) -> list[tuple]:
    """The code snapshots of those runs: (path here, workdir subfolder) pairs."""
    out = []
    for meta in _running_metas(runs_root):
        code = meta.get("code")
        path = staging_workdir(cfg) / code["ref"] if code else None
        if (
            path is not None
            and path.is_dir()
            and (path, usercode.CODE_SUBDIR) not in out
        ):
            out.append((path, usercode.CODE_SUBDIR))
    return out


def _running_metas(runs_root: str | os.PathLike) -> list[dict]:
    return [
        meta
        for _, meta in rd.run_metas(runs_root)
        if meta.get("status") == "running" and rd.pid_alive(meta.get("driver_pid"))
    ]

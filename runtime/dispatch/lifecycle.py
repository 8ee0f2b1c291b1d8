"""One search from spec to run directory: the sequence behind `invoke search`.

Runs on the driver. Validates, persists the folds, hands them to a `push`
callback (fabfile's rsync for remote hosts; nothing in local mode), warms the
page cache on one engine per host, runs `DistributedSearch` with progress,
and writes the run directory. Ctrl-C aborts queued tasks, keeps what
finished, and leaves a run that `resume` completes.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

from runtime.dispatch.search import DistributedSearch
from runtime.engine.folds import SplitSet, persist_splits
from runtime.rundir import journal as jn
from runtime.spec import (
    ConfigError,
    HostsConfig,
    SearchSpec,
    load_data,
    load_search_spec,
)

DEFAULT_RUNS_ROOT = "runs"


def staging_workdir(cfg: HostsConfig) -> Path:
    """Where this machine writes split files: the local host's workdir."""
    local = cfg.local_host
    path = local.workdir_path if local else os.path.expanduser("~/.cache/fleetcv")
    return Path(path)


def prepare_splits(
    spec: SearchSpec, cfg: HostsConfig, log: Callable[[str], None] = print
) -> SplitSet:
    """Load the data and persist the folds (reused when the digest exists)."""
    X, y = load_data(spec)
    workdir = staging_workdir(cfg)
    start = time.perf_counter()
    split = persist_splits(X, y, spec.cv.splitter(), spec.cv.as_dict(), workdir)
    log(
        f"splits: {split.n_folds} folds of {X.shape[0]} x {X.shape[1]} in {split.path} "
        f"({time.perf_counter() - start:.1f} s)"
    )
    return split


def warm_page_cache(client, split: SplitSet) -> dict:
    """Read every fold once on one engine per host (the notebook's trick)."""
    from runtime.dispatch.probes import engines_by_host
    from runtime.engine.worker import warm_fold_cache

    refs = [split.relative(k) for k in range(split.n_folds)]
    by_host = engines_by_host(client)
    ars = {
        h: client[eids[0]].apply_async(warm_fold_cache, fold_refs=refs)
        for h, eids in by_host.items()
    }
    return {h: ar.get() for h, ar in ars.items()}


def create_run(
    spec: SearchSpec,
    split: SplitSet,
    runs_root: str | os.PathLike,
    run_dir: str | os.PathLike | None,
    name: str,
    resume_command: str,
    command: str,
    **meta_extra,
) -> Path:
    """Create a run directory (searches and curves alike) with meta.json and a copy of the spec.

    Parameters
    ----------
    spec : SearchSpec
        Copied into the run as spec.yml.
    split : SplitSet
        The folds the run uses (their digest goes into meta.json).
    runs_root : path
        Where a new run directory is made when `run_dir` is None.
    run_dir : path, optional
        An explicit run directory; it must be new or empty.
    name : str
        Run directory name prefix when `run_dir` is None.
    resume_command : str
        The task that resumes such a run, named in the error for a used `run_dir`.
    command : str
        The command line that started the run (for report.html).
    **meta_extra
        Keys of meta.json beside the common ones (candidates, kind, ...).

    Returns
    -------
    Path
        The run directory.
    """
    if run_dir is not None:
        path = Path(run_dir)
        if path.exists() and any(path.iterdir()):
            raise ConfigError(
                f"--run-dir: {path} already exists and is not empty. Fix: pick a new "
                f"directory, or resume it with: {resume_command} --resume {path}"
            )
        path.mkdir(parents=True, exist_ok=True)
        os.chmod(path, 0o700)
    else:
        path = jn.new_run_dir(runs_root, name)
    shutil.copyfile(spec.path, path / jn.SPEC_COPY)
    meta = {
        "run_id": path.name,
        "spec_name": spec.name,
        "spec_digest": spec.digest(),
        "split_digest": split.digest,
        "n_folds": split.n_folds,
        # Relative data paths of the spec copy are read from the original folder.
        "spec_dir": str(Path(spec.path).resolve().parent),
        "command": command,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "status": "created",
        **meta_extra,
    }
    jn.write_json(path / jn.META, meta)
    return path


def new_run(
    spec: SearchSpec,
    runs_root: str | os.PathLike,
    run_dir: str | os.PathLike | None,
    split: SplitSet,
    command: str,
) -> Path:
    """Create a search's run directory with meta.json and a copy of the spec."""
    return create_run(
        spec,
        split,
        runs_root,
        run_dir,
        spec.name,
        "invoke search",
        command,
        evaluation_key=evaluation_key(spec),
        candidates=spec.candidates(),
        return_train_score=spec.return_train_score,
        n_iter=spec.raw.get("n_iter"),
    )


def read_meta(run_dir: str | os.PathLike) -> dict:
    """meta.json of a run, or a ConfigError saying the directory is not a run."""
    path = Path(run_dir)
    if not jn.is_run_dir(path):
        raise ConfigError(
            f"{path}: not a fleetcv run directory (no {jn.META}). Fix: pass a "
            f"directory under runs/, e.g. the one `invoke search` printed"
        )
    try:
        return json.loads((path / jn.META).read_text())
    except ValueError as exc:
        raise ConfigError(
            f"{path / jn.META}: unreadable ({exc}). Fix: restore it or start a new run"
        ) from exc


def load_resume(
    run_dir: str | os.PathLike,
    spec_file: str | None = None,
    n_iter: int | None = None,
    curve: bool = False,
) -> tuple[SearchSpec, dict]:
    """The spec and meta of a run to resume; refuses a different spec.

    `curve` says the caller resumes a learning/validation curve (which
    checks the kind itself); a search refuses curve runs.
    """
    path = Path(run_dir)
    meta = read_meta(path)
    if not curve and meta.get("kind") in ("learning_curve", "validation_curve"):
        kind = meta["kind"].split("_")[0]
        raise ConfigError(
            f"--resume {path}: this is a {kind} curve run, not a search. Fix: invoke "
            f"curves.{kind} --resume {path}"
        )
    # The run keeps the n_iter and the spec folder it started with, so the
    # resume command it prints works as printed.
    if (
        n_iter is not None
        and meta.get("n_iter") is not None
        and n_iter != meta["n_iter"]
    ):
        raise ConfigError(
            f"--n-iter {n_iter}: the run was started with --n-iter {meta['n_iter']}. Fix: "
            f"resume without --n-iter"
        )
    n_iter = meta.get("n_iter", n_iter)
    spec = load_search_spec(
        path / jn.SPEC_COPY, n_iter=n_iter, base_dir=meta.get("spec_dir")
    )
    if spec_file is not None:
        other = load_search_spec(spec_file, n_iter=n_iter)
        if other.digest() != meta["spec_digest"]:
            raise ConfigError(
                f"--spec {spec_file}: differs from the spec this run was started with "
                f"({path / jn.SPEC_COPY}), so its journal cannot be reused. Fix: resume "
                f"without --spec, or start a new run"
            )
    if spec.digest() != meta["spec_digest"]:
        raise ConfigError(
            f"{path / jn.SPEC_COPY}: changed since the run started (digest "
            f"{spec.digest()} != {meta['spec_digest']}). Fix: restore it, or start a new run"
        )
    return spec, meta


def evaluation_key(spec: SearchSpec) -> str:
    """Digest of what decides a fit's scores besides params and fold: estimator, scoring, error_score."""
    import hashlib

    est = spec.estimator.build()
    blob = json.dumps(
        {
            "estimator": type(est).__module__ + "." + type(est).__qualname__,
            "params": {
                k: repr(v) for k, v in sorted(est.get_params(deep=True).items())
            },
            "scoring": spec.scoring,
            "error_score": repr(spec.error_score),
            "train": spec.return_train_score,
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def reuse_results(run_dir: Path, meta: dict, log: Callable[[str], None] = print) -> int:
    """Copy into this run's journal the fits that earlier runs already made.

    A fit is the same when the estimator/scoring (`evaluation_key`), the
    params and the fold (split digest + fold index) are. Looks at every
    sibling run under the same runs/ root; returns how many were taken.
    """
    from runtime.rundir.results import latest_records

    key = meta.get("evaluation_key")
    wanted = {
        json.dumps(c, sort_keys=True): i for i, c in enumerate(meta["candidates"])
    }
    have = set(latest_records(jn.read_journal(run_dir / jn.JOURNAL)))
    taken: dict[tuple[int, int], dict] = {}
    for sibling, other in _sibling_runs(run_dir):
        if (
            other.get("evaluation_key") != key
            or other.get("split_digest") != meta["split_digest"]
        ):
            continue
        for (c, k), rec in latest_records(
            jn.read_journal(sibling / jn.JOURNAL)
        ).items():
            if c >= len(other["candidates"]):
                continue
            mine = wanted.get(json.dumps(other["candidates"][c], sort_keys=True))
            if mine is not None and (mine, k) not in have and (mine, k) not in taken:
                taken[(mine, k)] = {
                    **rec,
                    "candidate": mine,
                    "params": meta["candidates"][mine],
                    "reused_from": other["run_id"],
                }
    if taken:
        journal = jn.Journal(run_dir / jn.JOURNAL)
        try:
            for rec in taken.values():
                journal.append(rec)
        finally:
            journal.close()
        log(f"reuse: {len(taken)} fits taken from earlier runs under {run_dir.parent}")
    return len(taken)


def _sibling_runs(run_dir: Path):
    """(directory, meta) of every other readable run next to `run_dir`, by name."""
    for m in sorted(run_dir.parent.glob(f"*/{jn.META}")):
        if m.parent == run_dir:
            continue
        try:
            yield m.parent, json.loads(m.read_text())
        except (OSError, ValueError):
            continue


def previous_expected_times(run_dir: Path, meta: dict) -> dict[int, float]:
    """Per-candidate task durations from earlier runs of the same spec and folds.

    Sibling run directories whose candidates, spec and fold digests match
    this run's; their journals say how long each candidate took, so this run
    can start the slowest first.
    """
    from runtime.rundir.results import expected_times

    records: list[dict] = []
    for sibling, other in _sibling_runs(run_dir):
        same = all(
            other.get(k) == meta.get(k)
            for k in ("spec_digest", "split_digest", "candidates")
        )
        if same:
            records += jn.read_journal(sibling / jn.JOURNAL)
    return expected_times(records)


def set_status(run_dir: Path, status: str, **extra) -> None:
    """Record the run's status (and e.g. the driver pid) in meta.json."""
    meta = read_meta(run_dir)
    meta.update(status=status, **extra)
    jn.write_json(run_dir / jn.META, meta)


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
    if pid_alive(meta.get("driver_pid")) or not path.exists():
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


def pid_alive(pid) -> bool:
    """Whether pid is a live process on this machine (none, 0 and zombies are not)."""
    if not pid or int(pid) <= 0:
        return False
    try:
        os.kill(int(pid), 0)
        with open(f"/proc/{int(pid)}/stat") as f:
            return f.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except (ProcessLookupError, FileNotFoundError):
        return False
    except PermissionError:
        return True


def start_run(
    client, run_dir: Path, split: SplitSet, meta: dict, warm: bool, log
) -> None:
    """What every run does before it submits (searches and curves alike).

    Cancels what a dead earlier driver of this run left queued
    (`abort_orphans`), warms the hosts' page cache with the folds, and
    records this process in meta.json.
    """
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
    set_status(run_dir, "running", driver_pid=os.getpid())


def run(
    spec: SearchSpec,
    cfg: HostsConfig,
    client,
    run_dir: Path,
    split: SplitSet,
    meta: dict,
    progress: bool = True,
    max_retries: int = 2,
    warm: bool = True,
    log: Callable[[str], None] = print,
    reuse: bool = False,
) -> DistributedSearch:
    """Run (or resume) the search of `run_dir` on `client`'s engines.

    With `reuse`, fits already made by earlier runs under the same runs/
    root (same estimator, scoring, params and fold) are copied in first.

    Returns
    -------
    DistributedSearch
        Finished, or aborted (Ctrl-C, `search.abort`) with a resumable run.
    """
    if reuse:
        reuse_results(run_dir, meta, log=log)
    start_run(client, run_dir, split, meta, warm, log)
    view = client.load_balanced_view()
    search = DistributedSearch(
        view,
        spec.estimator.build(),
        candidates=meta["candidates"],
        scoring=spec.scoring,
        error_score=spec.error_score,
        return_train_score=spec.return_train_score,
        run_dir=run_dir,
        max_retries=max_retries,
    )
    already = search.n_done
    try:
        search.launch(
            split, expected_times=previous_expected_times(run_dir, meta) or None
        )
        log(
            f"run {run_dir}: {len(meta['candidates'])} candidates x {split.n_folds} folds = "
            f"{search.n_tasks} fits on {len(client.ids)} engines"
            + (f" ({already} already in the journal)" if already else "")
        )
        search.wait(progress=progress)
    except KeyboardInterrupt:
        print(
            "\ninterrupted: cancelling queued tasks, waiting for running ones...",
            file=sys.stderr,
        )
        search.abort()
    finally:
        set_status(run_dir, search.status)
    return search

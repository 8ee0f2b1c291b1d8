"""A run directory's life on disk: create, read and update meta.json, resume, reuse, results.

Runs on the driver, with or without a cluster. A run directory
(`runs/<run-id>/`) holds meta.json (what the run is: its kind, spec digest,
fold digest, candidates, status, driver pid), spec.yml (the spec it was
started from), journal.jsonl (every finished task), submitted.txt (the
message ids its drivers sent), and what is derived from the journal:
results.json (written only by `write_results`) and report.txt.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from fleetcv.rundir import journal as jn
from fleetcv.rundir.results import expected_times, latest_records
from fleetcv.spec import ConfigError, SearchSpec, load_search_spec
from fleetcv.spec.code import parse_code
from fleetcv.spec.common import read_yaml
from runtime.folds import SplitSet
from runtime.pids import pid_alive
from runtime.usercode import code_digest

DEFAULT_RUNS_ROOT = "runs"


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
    if hasattr(spec, "write_copy"):
        spec.write_copy(path / jn.SPEC_COPY)  # a search from Python: no file to copy
    else:
        shutil.copyfile(spec.path, path / jn.SPEC_COPY)
    meta = {
        "run_id": path.name,
        "spec_name": spec.name,
        "spec_digest": spec.digest(),
        "split_digest": split.digest,
        "n_folds": split.n_folds,
        # What the engines of a host share (memory-mapped) and what each holds.
        "data": {
            k: split.manifest.get(k) for k in ("X_kind", "nbytes", "shared_bytes")
        },
        # Relative data paths of the spec copy are read from the original folder.
        "spec_dir": str(Path(spec.path).resolve().parent),
        "command": command,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "status": "created",
        **meta_extra,
    }
    jn.write_json(path / jn.META, meta)
    return path


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
) -> tuple[SearchSpec, dict]:
    """The spec and meta of a run to resume; refuses a different spec.

    The caller checks that the run is of a kind it resumes
    (`fleetcv.dispatch.lifecycle.plan_resume`).

    Raises
    ------
    ConfigError
        When the directory is not a run, `n_iter` or `spec_file` differ from
        the run's, or its spec copy changed.
    """
    path = Path(run_dir)
    meta = read_meta(path)
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
    _check_code_unchanged(path, meta)
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


def _check_code_unchanged(path: Path, meta: dict) -> None:
    """Refuse, before importing any of it, a run whose spec's code: changed since it started.

    Raises
    ------
    ConfigError
        Naming both digests.
    """
    started = (meta.get("code") or {}).get("digest")
    if started is None:
        return
    raw = read_yaml(path / jn.SPEC_COPY, "search spec")
    base = Path(meta.get("spec_dir") or path)
    now = code_digest(list(parse_code(str(path / jn.SPEC_COPY), raw.get("code"), base)))
    if now != started:
        raise ConfigError(
            f"{path}: the spec's code: changed since the run started (code digest "
            f"{now} != {started}): resuming would mix results of two versions of it. "
            "Fix: restore the code, or start a new run"
        )


def evaluation_key(spec: SearchSpec) -> str:
    """Digest of what decides a fit's scores besides params and fold: estimator, scoring, error_score."""
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
            # Other code, other fits (absent without code: keys stay as before).
            **(
                {"code": spec.code_digest} if getattr(spec, "code_digest", None) else {}
            ),
        },
        sort_keys=True,
        default=repr,  # a scorer object given from Python
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def reuse_results(run_dir: Path, meta: dict, log: Callable[[str], None] = print) -> int:
    """Copy into this run's journal the fits that earlier runs already made.

    A fit is the same when the estimator/scoring (`evaluation_key`), the
    params and the fold (split digest + fold index) are. Looks at every
    sibling run under the same runs/ root; returns how many were taken.
    """
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


def run_metas(root: str | os.PathLike, newest_first: bool = False):
    """(directory, meta) of every readable run under `root`: by name, or newest first.

    A run whose meta.json cannot be read (being written, damaged) is left out.
    """
    metas = Path(root).glob(f"*/{jn.META}")
    if newest_first:
        metas = sorted(metas, key=lambda p: p.stat().st_mtime, reverse=True)
    else:
        metas = sorted(metas)
    for m in metas:
        try:
            yield m.parent, json.loads(m.read_text())
        except (OSError, ValueError):
            continue


def _sibling_runs(run_dir: Path):
    """(directory, meta) of every other readable run next to `run_dir`, by name."""
    for path, meta in run_metas(run_dir.parent):
        if path != run_dir:
            yield path, meta


def previous_expected_times(run_dir: Path, meta: dict) -> dict[int, float]:
    """Per-candidate task durations from earlier runs of the same spec and folds.

    Sibling run directories whose candidates, spec and fold digests match
    this run's; their journals say how long each candidate took, so this run
    can start the slowest first.
    """
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
    update_meta(run_dir, status=status, **extra)


def update_meta(run_dir: Path, **fields) -> None:
    """Set keys of meta.json (written whole, atomically)."""
    meta = read_meta(run_dir)
    meta.update(fields)
    jn.write_json(run_dir / jn.META, meta)


def status_of(meta: dict) -> str:
    """The run's status; a run whose driver died while running is "interrupted"."""
    status = meta.get("status", "running")
    if status == "running" and not pid_alive(meta.get("driver_pid") or 0):
        return "interrupted"
    return status


def write_results(
    run_dir: str | os.PathLike, results: dict, report: str, **fields
) -> dict:
    """Write results.json and report.txt: the one writer of both.

    Parameters
    ----------
    run_dir : path
        The run directory.
    results : dict
        The kind's results (a search's cv_results_, a curve's arrays).
    report : str
        The text report (report.txt).
    **fields
        Top-level keys beside the results: the kind's summary (best_*),
        status, n_tasks, n_done, counters.

    Returns
    -------
    dict
        What results.json holds.
    """
    path = Path(run_dir)
    out = {**results, **fields}
    jn.write_json(path / jn.RESULTS, out)
    jn.write_text(path / jn.REPORT, report + "\n")
    return out


def read_results_field(run_dir: str | os.PathLike, key: str):
    """One top-level key of a run's results.json (None when absent or unreadable)."""
    try:
        return json.loads((Path(run_dir) / jn.RESULTS).read_text()).get(key)
    except (OSError, ValueError):
        return None


def latest_run(root: str | os.PathLike, accept: Callable[[dict], bool]) -> Path | None:
    """The newest run directory under `root` whose meta.json `accept`s, or None."""
    return next(
        (path for path, meta in run_metas(root, newest_first=True) if accept(meta)),
        None,
    )

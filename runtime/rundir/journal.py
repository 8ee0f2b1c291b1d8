"""The run directory and its append-only journal of finished tasks.

Runs on the driver. `runs/<run-id>/journal.jsonl` gets one flat JSON object
per finished task, written as results arrive, so a run killed at any moment
keeps everything that finished before; a torn last line (the process died
mid-write) is ignored on read. `meta.json` holds what a resume needs (the
spec digest, the candidates, the folds); results.json and report.txt are
derived from the journal and can be rebuilt at any time.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

JOURNAL = "journal.jsonl"
META = "meta.json"
RESULTS = "results.json"
REPORT = "report.txt"
SPEC_COPY = "spec.yml"
#: The ipyparallel message id of every task message the run's drivers sent,
#: one per line: what a resume cancels if its previous driver died.
SUBMITTED = "submitted.txt"
#: fsync at most this often: one fsync per task would cap dispatch at the
#: disk's sync rate, while a second of results is cheap to recompute.
FSYNC_INTERVAL = 1.0


class Journal:
    """Append-only JSONL writer, safe to call from several threads.

    Parameters
    ----------
    path : path
        The journal file; created if missing, appended to otherwise.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._lock = threading.Lock()
        # A torn last line from an earlier crash would glue onto the next
        # record: start on a fresh line.
        needs_newline = False
        if self.path.exists() and self.path.stat().st_size:
            with open(self.path, "rb") as f:
                f.seek(-1, os.SEEK_END)
                needs_newline = f.read(1) != b"\n"
        self._f = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        if needs_newline:
            self._f.write("\n")
        self._last_sync = time.monotonic()

    def append(self, record: dict) -> None:
        """Write one record as one line; fsync at most every FSYNC_INTERVAL."""
        line = json.dumps(record, default=_json_default) + "\n"
        with self._lock:
            self._f.write(line)
            self._f.flush()
            now = time.monotonic()
            if now - self._last_sync >= FSYNC_INTERVAL:
                os.fsync(self._f.fileno())
                self._last_sync = now

    def close(self) -> None:
        """Flush, fsync and close."""
        with self._lock:
            if not self._f.closed:
                self._f.flush()
                os.fsync(self._f.fileno())
                self._f.close()


def _json_default(o):
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def read_journal(path: str | os.PathLike) -> list[dict]:
    """Read every complete record; a torn or garbled line is skipped."""
    records = []
    p = Path(path)
    if not p.exists():
        return records
    with open(p, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict):
                records.append(rec)
    return records


def write_json(path: str | os.PathLike, obj) -> None:
    """Write JSON atomically (temp file + rename), so readers never see half a file."""
    p = Path(path)
    tmp = p.with_name(f".{p.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=_json_default))
    os.replace(tmp, p)


def new_run_dir(runs_root: str | os.PathLike, name: str) -> Path:
    """Create `runs/<name>-<timestamp>/` (suffixed if taken) and return it."""
    root = Path(runs_root)
    root.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for i in range(1000):
        d = root / (f"{name}-{stamp}" + (f"-{i}" if i else ""))
        try:
            d.mkdir()
        except FileExistsError:
            continue
        # Results can be private data: keep the run to its owner.
        os.chmod(d, 0o700)
        return d
    raise RuntimeError(f"cannot create a run directory under {root}")


def is_run_dir(path: str | os.PathLike) -> bool:
    """Whether a directory looks like a fleetcv run (has meta.json)."""
    return (Path(path) / META).is_file()

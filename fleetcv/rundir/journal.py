"""The run directory and its append-only journal of finished tasks.

Runs on the driver. `runs/<run-id>/journal.jsonl` gets one flat JSON object
per finished task, written as results arrive, so a run killed at any moment
keeps everything that finished before; a torn last line (the process died
mid-write) is ignored on read. `meta.json` holds what a resume needs (the
spec digest, the candidates, the folds); results.json and report.txt are
derived from the journal and can be rebuilt at any time.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
import time
import warnings
from pathlib import Path

JOURNAL = "journal.jsonl"
META = "meta.json"
RESULTS = "results.json"
REPORT = "report.txt"
SPEC_COPY = "spec.yml"
#: The ipyparallel message id of every task message the run's drivers sent,
#: one per line: what a resume cancels if its previous driver died.
SUBMITTED = "submitted.txt"
#: Every record is on disk (fsynced) at most this long after it was written:
#: one fsync per task would cap dispatch at the disk's sync rate, while a
#: second of results is cheap to recompute.
FSYNC_INTERVAL = 1.0


class Journal:
    """Append-only JSONL writer, safe to call from several threads.

    A timer thread fsyncs what was appended within `FSYNC_INTERVAL`, so a
    record never waits for the next one to reach the disk.

    Parameters
    ----------
    path : path
        The journal file; created if missing, appended to otherwise.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._lock = threading.Lock()
        # A torn last line (a crash or a full disk mid-write) is no record:
        # cut it off, so the next record starts on a line of its own.
        if self.path.exists() and self.path.stat().st_size:
            _cut_torn_tail(self.path)
        self._f = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self._dirty = False
        #: The error of the last fsync that failed (a full disk), else None.
        self.sync_error: OSError | None = None
        self._stop = threading.Event()
        self._syncer = threading.Thread(
            target=self._sync_loop, name="fleetcv-journal-fsync", daemon=True
        )
        self._syncer.start()

    def append(self, record: dict) -> None:
        """Write one record as one line (flushed now, fsynced within FSYNC_INTERVAL)."""
        line = json.dumps(record, default=_json_default) + "\n"
        with self._lock:
            self._f.write(line)
            self._f.flush()
            self._dirty = True

    def _sync_loop(self) -> None:
        while not self._stop.wait(FSYNC_INTERVAL):
            with self._lock:
                if self._dirty and not self._f.closed:
                    try:
                        os.fsync(self._f.fileno())
                        self._dirty = False
                    except OSError as exc:
                        self.sync_error = exc

    def abandon(self) -> None:
        """Stop writing after a write failed (a full disk): close without flushing again."""
        self._stop.set()
        with self._lock:
            if not self._f.closed:
                # A flush would fail again (and might add half a line later).
                with contextlib.suppress(OSError):
                    os.close(self._f.fileno())
                with contextlib.suppress(OSError, ValueError):
                    self._f.close()

    def close(self) -> None:
        """Flush, fsync and close."""
        self._stop.set()
        with self._lock:
            if not self._f.closed:
                try:
                    self._f.flush()
                    os.fsync(self._f.fileno())
                finally:
                    self._f.close()


def _cut_torn_tail(path: Path) -> None:
    """Truncate a file after its last newline (nothing when it ends with one)."""
    with open(path, "rb+") as f:
        size = f.seek(0, os.SEEK_END)
        f.seek(max(0, size - 1))
        if f.read(1) == b"\n":
            return
        # Walk back in blocks to the last newline.
        end, block = size, 65536
        while end > 0:
            start = max(0, end - block)
            f.seek(start)
            chunk = f.read(end - start)
            i = chunk.rfind(b"\n")
            if i >= 0:
                f.truncate(start + i + 1)
                return
            end = start
        f.truncate(0)


def _json_default(o):
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def read_journal(
    path: str | os.PathLike, required: tuple[str, ...] = ("candidate", "fold")
) -> list[dict]:
    """Read every complete record; a torn or garbled line is skipped.

    The last line may be torn by a crash mid-write, which is expected; any
    other garbled line is skipped with a warning naming it, since something
    else damaged the file. A line counts when it is a JSON object with every
    key of `required` (a task record by default; the memory probes' samples
    ask for theirs).
    """
    records = []
    p = Path(path)
    if not p.exists():
        return records
    bad = []
    with open(p, encoding="utf-8", errors="replace") as f:
        lines = f.read().split("\n")
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line:
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            rec = None
        if isinstance(rec, dict) and all(k in rec for k in required):
            records.append(rec)
        else:
            bad.append(number)
    last = max((i for i, ln in enumerate(lines, 1) if ln.strip()), default=0)
    middle = [n for n in bad if n != last]
    if middle:
        warnings.warn(
            f"{p}: skipped {len(middle)} garbled line(s) (line "
            f"{', '.join(map(str, middle[:10]))}{', ...' if len(middle) > 10 else ''}); "
            "their tasks count as not done and run again on a resume",
            stacklevel=2,
        )
    return records


def write_json(path: str | os.PathLike, obj) -> None:
    """Write JSON atomically (temp file + rename), so readers never see half a file."""
    write_text(path, json.dumps(obj, indent=1, default=_json_default))


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write a text file atomically, through a temp file of its own (0600) and a rename.

    A unique temp name: two writers never share (and tear) one temp file;
    a failed write (a full disk) leaves the old file whole and no temp.
    """
    p = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, p)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


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

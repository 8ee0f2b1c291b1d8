"""The task runner: submit (candidate, fold) tasks, collect, retry, abort, journal.

Runs on the driver. One runner serves every job kind: the kind says what a
task is (its worker arguments) and the runner how it travels. Every
(candidate, fold) is a task on a LoadBalancedView, one `apply_async` each
unless an earlier run's timings show them short (then several go in one
message, see `chunks`); each finished task is appended to the journal by a
collector thread as it arrives, so the result loop never blocks on the disk
and a killed driver loses nothing that finished. An engine that dies has
its tasks resubmitted (up to `max_retries`); an exception raised by `fit` is
a result, not a retry.
"""

from __future__ import annotations

import contextlib
import enum
import math
import queue
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from fleetcv.dispatch.live import LiveView
from fleetcv.rundir import journal as jn
from fleetcv.rundir.results import latest_records
from runtime import record
from runtime.folds import SplitSet, load_split_set
from runtime.worker import evaluate_many

#: How long Ctrl-C or abort() waits for tasks already running on engines.
ABORT_GRACE = 10.0
#: Tasks go several to a message when an earlier run's timings say they are
#: short: every ipyparallel message costs an engine about 10 ms between two
#: tasks (its kernel's reply, the scheduler's hand-over, the next request;
#: measured in `invoke bench`), about 3% of a 0.3 s fit. A message carries at
#: most CHUNK_SECONDS of expected work and MAX_CHUNK tasks, so Ctrl-C loses
#: little, progress stays live and a lost engine's retry is short, and at
#: most the work still to do / (BALANCE x engines), so the last messages are
#: single tasks and the engines finish together (guided self-scheduling).
CHUNK_SECONDS = 2.0
MAX_CHUNK = 64
BALANCE = 2
#: Fold files at least this big go fold by fold (see TaskRunner):
#: below it, a second fold mapped for a moment costs less than idle engines.
FOLD_BY_FOLD_BYTES = 32 * 2**20
#: An empty cluster for this long means every engine is gone.
NO_ENGINES_TIMEOUT = 15.0
#: Seconds between two runs of the health checks in `TaskRunner.wait`.
WATCH_INTERVAL = 1.0


class Outcome(enum.Enum):
    """Why a run stopped before its end (`TaskRunner.outcome`): one error class each.

    A budget, an abort or Ctrl-C are no outcome here: the run ends as
    planned (`stopped_by`) or aborted (`status`), resumable either way.
    """

    #: A fit raised (or timed out) and error_score is 'raise': the user's.
    FIT_RAISED = "fit raised"
    #: No engine registered for NO_ENGINES_TIMEOUT: the hosts' fault.
    ENGINES_LOST = "engines lost"
    #: A health check found the controller gone.
    CLUSTER_LOST = "cluster lost"
    #: The journal's disk refused a write.
    DISK_FULL = "disk full"
    #: The collector thread died of an unexpected error.
    COLLECTOR_FAILED = "collector failed"


class TaskRunner:
    """Runs the tasks of one job on a LoadBalancedView and journals their records.

    Parameters
    ----------
    view : ipyparallel.LoadBalancedView
        Where tasks go.
    n_candidates : int
        Rows of the job; tasks are (candidate, fold) for every fold.
    task_args : callable
        candidate index -> its worker arguments besides the fold (`params`,
        and e.g. `train_size`), from the job's kind.
    common : dict
        Worker arguments shared by every task (estimator, scoring,
        error_score, return_train_score).
    worker : callable
        The engine function a message runs (`Kind.worker`): called as
        `worker(tasks=[...], **common)`, one record per task back.
    run_dir : path, optional
        Where journal.jsonl and submitted.txt go; None keeps records in
        memory only. Records already in the journal count as done.
    max_retries : int
        How often a task whose engine died is resubmitted.
    fold_by_fold : bool, optional
        Finish every task of a fold before any task of the next starts, so
        the engines of a host share one fold's pages instead of mapping two
        folds (two copies of the data) at fold changes. None (default):
        only when a fold file is at least `FOLD_BY_FOLD_BYTES`, where memory
        matters more than the few idle seconds at each fold change.

    task_timeout : float, optional
        Seconds a task may run. One that runs longer has its engine stopped
        and replaced (`on_timeout`: ipyparallel cannot interrupt a task)
        and is recorded as a failed fit, "timed out after N s", never
        retried; the other tasks of its message go again.
    on_timeout : callable, optional
        ``on_timeout(host, pid)`` stops that engine and starts another on
        the host; returns a line saying what it did.
    budget : dict, optional
        ``max_fits`` (the (row, fold) fits of the whole run, journaled ones
        included: a row's tasks go only when all of them fit) and
        ``time_budget`` (seconds of this driver's run: then queued tasks
        are cancelled and running ones finish). Either ends the run as
        finished, `stopped_by` saying which.

    Attributes
    ----------
    health : list of callable
        Checks run every `WATCH_INTERVAL` s while waiting: each returns None
        while all is well, else why the run cannot go on (the controller is
        gone), which stops it as `fatal` with a resumable run directory.
    """

    def __init__(
        self,
        view,
        *,
        n_candidates: int,
        task_args: Callable[[int], dict],
        common: dict,
        worker: Callable[..., list[dict]] = evaluate_many,
        run_dir: str | Path | None = None,
        max_retries: int = 2,
        fold_by_fold: bool | None = None,
        task_timeout: float | None = None,
        on_timeout: Callable[[str, int], str] | None = None,
        budget: dict | None = None,
    ):
        self.view = view
        self.n_candidates = n_candidates
        self.task_args = task_args
        self.common = common
        self.worker = worker
        self.error_score = common.get("error_score")
        self.run_dir = Path(run_dir) if run_dir else None
        self.max_retries = max_retries
        self.fold_by_fold = fold_by_fold
        self._waiting_folds: list[list[list[tuple[int, int]]]] = []
        #: ipyparallel messages submitted (a message carries one or more tasks).
        self.n_messages = 0
        self._submitted = None

        self.split: SplitSet | None = None
        self.status = "new"
        #: Why the run stopped before its end (the message), or None.
        self.fatal: str | None = None
        #: Which of the `Outcome`s that was, or None.
        self.outcome: Outcome | None = None
        self.counters = {
            "retried tasks": 0,
            "task errors": 0,
            "lost engines": 0,
            "timed out fits": 0,
        }
        self.records: list[dict] = []
        self._done: set[tuple[int, int]] = set()
        self._pending: dict[str, tuple] = {}
        self._queue: queue.Queue = queue.Queue()
        self._lock = threading.RLock()
        self._aborting = False
        self._journal: jn.Journal | None = None
        self._collector: threading.Thread | None = None
        self._dead_engines: set[int | str] = set()
        self.health: list[Callable[[], str | None]] = []
        self.task_timeout = task_timeout
        self.on_timeout = on_timeout
        if task_timeout:
            # Each task says when it starts and where (runtime.worker).
            self.common = {**common, "announce": True}
        #: (message id, task index) -> when the driver first saw it running.
        self._started: dict[tuple[str, int], float] = {}
        #: message id -> (task index, host, pid) of a task past its timeout.
        self._timed_out: dict[str, tuple[int, str, int]] = {}
        #: A job whose rows depend on results (a halving search) sets this:
        #: called, lock held, when a row has every fold scored; returns how
        #: many rows there are now, and `grow` submits the new ones' tasks.
        self.on_row_done: Callable[[], int] | None = None
        #: The tasks of the whole job when more rows are to come (the
        #: progress bar's total); None: `n_tasks`.
        self.expected_tasks: int | None = None
        self.budget = {k: v for k, v in (budget or {}).items() if v is not None}
        #: The budget that ended the run ("max_fits", "time_budget"), or None.
        self.stopped_by: str | None = None
        #: (row, fold) pairs submitted by this driver (max_fits counts them).
        self._budgeted: set[tuple[int, int]] = set()
        self._deadline: float | None = None
        if self.run_dir is not None:
            self.records = jn.read_journal(self.run_dir / jn.JOURNAL)
            self._done = set(latest_records(self.records))

    @property
    def n_tasks(self) -> int:
        """Candidates x folds."""
        return self.n_candidates * (self.split.n_folds if self.split else 0)

    @property
    def n_done(self) -> int:
        """(candidate, fold) pairs with a score (including failed fits)."""
        with self._lock:
            return len(self._done)

    def snapshot(self) -> list[dict]:
        """The records so far (a copy, safe while the collector appends)."""
        with self._lock:
            return list(self.records)

    def launch(
        self,
        split_dir: str | Path | SplitSet,
        expected_times: dict[int, float] | None = None,
    ) -> TaskRunner:
        """Submit every (candidate, fold) not already in the journal.

        Tasks go fold by fold, so engines running at the same time mostly
        map the same fold file and share its pages.

        Parameters
        ----------
        split_dir : path or SplitSet
            The split directory (under a workdir: tasks then carry the path
            relative to it, resolved by each engine against its own host's
            workdir; elsewhere the absolute path is used).
        expected_times : dict, optional
            Seconds per task of each candidate index, e.g. from an earlier
            run (`fleetcv.rundir.results.expected_times`). Tasks then start
            longest first, which keeps one slow fit from running alone at
            the end, and short ones go several to a message (`chunks`);
            candidates without a figure go first, one task a message.

        Returns
        -------
        self
        """
        self.split = (
            split_dir if isinstance(split_dir, SplitSet) else load_split_set(split_dir)
        )
        if self.run_dir is not None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self._journal = jn.Journal(self.run_dir / jn.JOURNAL)
            self._submitted = open(self.run_dir / jn.SUBMITTED, "a")  # noqa: SIM115 - closed in close()
        self.status = "running"
        self._collector = threading.Thread(
            target=self._collect, name="fleetcv-collector", daemon=True
        )
        self._collector.start()
        todo = [
            (c, k)
            for k in range(self.split.n_folds)
            for c in range(self.n_candidates)
            if (c, k) not in self._done
        ]
        todo = self._within_budget(todo)
        if "time_budget" in self.budget:
            self._deadline = time.monotonic() + self.budget["time_budget"]
        if expected_times:
            # Stable sort: equal durations keep the fold-by-fold order.
            todo.sort(key=lambda ck: -expected_times.get(ck[0], math.inf))
        if self.fold_by_fold is None:
            self.fold_by_fold = self._big_folds()
        if self.fold_by_fold:
            # One fold in flight at a time, longest tasks first within it: a
            # host then never maps two folds at once (each holds all the
            # rows), at the cost of engines idling while a fold's last
            # (shortest) tasks finish.
            by_fold: dict[int, list] = {}
            for c, k in todo:
                by_fold.setdefault(k, []).append((c, k))
            waiting = []
            for _, pairs in sorted(by_fold.items()):
                # Chunked per fold: only one fold's tasks are in flight.
                waiting.append(self.chunks(pairs, expected_times))
            with self._lock:
                self._waiting_folds = waiting
                self._next_fold()
            return self
        for chunk in self.chunks(todo, expected_times):
            if self._aborting:
                break
            self._submit(chunk, attempt=0)
        return self

    def grow(self, n_candidates: int) -> None:
        """Rows up to `n_candidates` exist now: submit the tasks of the new ones.

        Before `launch`, only counts them (launch submits every row). One
        task a message, fold by fold: the new rows' timings are unknown.
        """
        with self._lock:
            old = self.n_candidates
            if n_candidates <= old:
                return
            self.n_candidates = n_candidates
            if self.split is None or self._aborting or self.stopped_by:
                return
            todo = [
                (c, k)
                for k in range(self.split.n_folds)
                for c in range(old, n_candidates)
                if (c, k) not in self._done
            ]
            for pair in self._within_budget(todo):
                self._submit([pair], attempt=0)

    def _within_budget(self, pairs: list[tuple[int, int]]) -> list[tuple[int, int]]:
        """The pairs of the rows whose missing fits all fit in max_fits (whole rows, in row order)."""
        if "max_fits" not in self.budget:
            return pairs
        with self._lock:
            left = self.budget["max_fits"] - len(self._done | self._budgeted)
            by_row: dict[int, list] = {}
            for c, k in pairs:
                by_row.setdefault(c, []).append((c, k))
            kept = set()
            for c in sorted(by_row):
                if len(by_row[c]) > left:
                    # Later rows are not taken either: the search stops here.
                    self.stopped_by = "max_fits"
                    break
                kept.update(by_row[c])
                left -= len(by_row[c])
            self._budgeted |= kept
            return [p for p in pairs if p in kept]

    def _completes_a_row(self, recs: list[dict]) -> bool:
        """Whether one of `recs` gave its row its last missing fold (call with the lock)."""
        n_folds = self.split.n_folds if self.split else 0
        rows = {r["candidate"] for r in recs if record.is_finished(r)}
        return any(all((c, k) in self._done for k in range(n_folds)) for c in rows)

    def _big_folds(self) -> bool:
        """Whether the fold files are big enough to go fold by fold (auto mode)."""
        try:
            size = self.split.fold_path(0).stat().st_size
        except (OSError, IndexError):
            return False
        return size >= FOLD_BY_FOLD_BYTES

    def _next_fold(self) -> None:
        """Submit the next waiting fold's tasks (call with the lock held)."""
        while self._waiting_folds and not self._aborting:
            chunks = self._waiting_folds.pop(0)
            for chunk in chunks:
                self._submit(chunk, attempt=0)
            if chunks:
                return

    def chunks(
        self, pairs: list[tuple[int, int]], expected_times: dict[int, float] | None
    ) -> list[list[tuple[int, int]]]:
        """Group `pairs` (already in submission order) into messages.

        One pair per message without timings. With them, consecutive pairs
        go together while their expected seconds fit the smaller of
        CHUNK_SECONDS and the remaining work / (BALANCE x engines).
        """
        if not expected_times:
            return [[p] for p in pairs]
        n_engines = max(
            1, len(getattr(self.view, "targets", None) or self.view.client.ids)
        )
        # A candidate without a figure is assumed long: it goes alone.
        cost = [expected_times.get(c, math.inf) for c, _ in pairs]
        remaining = sum(t for t in cost if math.isfinite(t))
        chunks: list[list[tuple[int, int]]] = []
        i = 0
        while i < len(pairs):
            budget = min(CHUNK_SECONDS, remaining / (BALANCE * n_engines))
            chunk, seconds = [pairs[i]], cost[i]
            i += 1
            while (
                i < len(pairs)
                and len(chunk) < MAX_CHUNK
                and seconds + cost[i] <= budget
            ):
                chunk.append(pairs[i])
                seconds += cost[i]
                i += 1
            if math.isfinite(seconds):
                remaining -= seconds
            # One engine runs them in turn: in fold order, its one-fold
            # cache (runtime.worker) maps each fold once per message.
            chunks.append(sorted(chunk, key=lambda p: p[1]))
        return chunks

    def _fold_ref(self, k: int) -> str:
        path = self.split.fold_path(k)
        # Relative only when the split directory sits in a workdir's splits/
        # folder, the layout every host shares.
        if path.parent.parent.name == "splits":
            return self.split.relative(k)
        return str(path.resolve())

    def _task_kwargs(self, c: int, k: int) -> dict:
        """Arguments of `evaluate` for one (candidate, fold)."""
        return {
            **self.task_args(c),
            "fold_ref": self._fold_ref(k),
            "candidate": c,
            "fold": k,
        }

    def _submit(self, pairs: list[tuple[int, int]], attempt: int) -> None:
        """One message for `pairs` (one pair, or several short ones, see `chunks`)."""
        ar = self.view.apply_async(
            self.worker,
            tasks=[self._task_kwargs(c, k) for c, k in pairs],
            **self.common,
        )
        with self._lock:
            self.n_messages += 1
            self._pending[ar.msg_ids[0]] = (ar, pairs, attempt)
            if self._submitted is not None:
                # No fsync: a lost line only leaves a task for the cluster
                # to finish for nobody, as before this list existed.
                with contextlib.suppress(OSError):  # a full disk: as a lost line
                    self._submitted.write(ar.msg_ids[0] + "\n")
                    self._submitted.flush()
        ar.add_done_callback(lambda f, p=pairs, a=attempt: self._queue.put((f, p, a)))

    # ---------------------------------------------------------------- collect
    def _collect(self) -> None:
        try:
            self._collect_loop()
        except BaseException as exc:  # noqa: BLE001 - a dead collector must not leave wait() hanging
            # The first reason stays: a dead controller, say, is what the user
            # must read, not what it broke afterwards.
            self._stop(
                Outcome.COLLECTOR_FAILED,
                f"the result collector failed: {type(exc).__name__}: {exc}",
                keep_first=True,
            )

    def _collect_loop(self) -> None:
        # ipyparallel takes half a second to import: the command line loads it
        # only for the tasks that reach the cluster, not for `invoke --list`.
        from ipyparallel.error import EngineError, TaskAborted

        while True:
            item = self._queue.get()
            if item is None:
                return
            ar, pairs, attempt = item
            recs: list[dict] = []
            try:
                res = get_result(ar)
            except TaskAborted:
                pass
            except EngineError as exc:
                if ar.msg_ids[0] in self._timed_out:
                    with self._lock:
                        recs = self._timed_out_records(
                            ar.msg_ids[0], pairs, attempt, ar
                        )
                    self._journal_records(ar, recs)
                    continue
                # The client forgets a dead engine's id as soon as it hears of
                # the loss; the uuid in the reply's metadata stays.
                eid = ar.metadata.get("engine_uuid") or getattr(ar, "engine_id", None)
                with self._lock:
                    if eid is not None and eid not in self._dead_engines:
                        self._dead_engines.add(eid)
                        self.counters["lost engines"] += 1
                with self._lock:
                    # Under the lock: abort() snapshots _pending under it too,
                    # so a retry is either cancelled by it or never submitted.
                    retry = attempt < self.max_retries and not self._aborting
                    if retry:
                        self.counters["retried tasks"] += len(pairs)
                        # One message each: the retries spread over the
                        # engines left rather than queue on one.
                        for p in pairs:
                            self._submit([p], attempt + 1)
                if not retry:
                    recs = [
                        self._error_record(c, k, attempt, ar, f"engine lost: {exc}")
                        for c, k in pairs
                    ]
            except Exception as exc:  # noqa: BLE001 - any remote error is recorded, not raised here
                error = _remote_traceback(exc)
                recs = [self._error_record(c, k, attempt, ar, error) for c, k in pairs]
                if self.error_score == "raise":
                    self._stop(
                        Outcome.FIT_RAISED,
                        f"a fit raised and error_score is 'raise':\n{error}",
                    )
                    self.abort(wait=False)
            else:
                for r in res:
                    # The tasks of one message share its id.
                    recs.append(
                        record.stamp(
                            r,
                            engine=getattr(ar, "engine_id", None),
                            message=ar.msg_ids[0],
                            attempt=attempt,
                        )
                    )
            self._journal_records(ar, recs)

    def _journal_records(self, ar, recs: list[dict]) -> None:
        """Journal a message's records, then let the message leave `_pending`."""
        with self._lock:
            self._timed_out.pop(ar.msg_ids[0], None)
            for rec in recs:
                # Journal before the task leaves _pending: close() closes
                # the journal only once nothing is pending.
                self._append(rec)
                self.records.append(rec)
                if record.is_finished(rec):
                    self._done.add((rec["candidate"], rec["fold"]))
                else:
                    self.counters["task errors"] += 1
            if self.on_row_done is not None and self._completes_a_row(recs):
                # Before the message leaves _pending, as for the next fold.
                self.grow(self.on_row_done())
            if self._waiting_folds and len(self._pending) == 1:
                # This was the current fold's last task: start the next
                # fold before the task leaves _pending, so wait() never
                # sees nothing pending while folds still wait.
                self._next_fold()
            self._pending.pop(ar.msg_ids[0], None)

    def _append(self, rec: dict) -> None:
        """Journal one record; a disk that cannot take it stops the run (call with the lock)."""
        if self._journal is None:
            return
        error = self._journal.sync_error
        if error is None:
            try:
                self._journal.append(rec)
                return
            except OSError as exc:
                error = exc
        # What reached the journal before stays: its lines are whole, and a
        # line torn by the full disk is skipped on read. Nothing more is
        # written; the run stops, resumable once there is room.
        path = self._journal.path
        self._journal.abandon()
        self._journal = None
        self._stop(
            Outcome.DISK_FULL,
            f"cannot write the journal {path}: {error.strerror or error}. The run "
            f"stopped; the {len(self._done)} results journaled before are kept. Fix: "
            "free space on that disk (or move the run directory), then resume the run.",
        )
        self.abort(wait=False)

    def _error_record(self, c: int, k: int, attempt: int, ar, error: str) -> dict:
        return record.stamp(
            record.error_record(
                candidate=c, fold=k, params=self.task_args(c).get("params"), error=error
            ),
            engine=getattr(ar, "engine_id", None),
            message=ar.msg_ids[0],
            attempt=attempt,
        )

    # ------------------------------------------------------------ wait/abort
    def wait(
        self,
        timeout: float | None = None,
        progress: bool = False,
        report_every: float | None = None,
        postfix: Callable[[], str] = str,
        report: Callable[[], str] = str,
        desc: str = "search",
    ) -> bool:
        """Block until every task is accounted for, the run cannot go on, or `timeout`.

        Parameters
        ----------
        timeout : float, optional
            Seconds; None waits until the end.
        progress : bool
            Show a progress bar on stderr (`postfix()` beside it) and
            `report()` every `report_every` seconds (`fleetcv.dispatch.live`:
            under the bar, or in place in a notebook).
        report_every : float, optional
            Seconds between two reports (default: the live view's).
        postfix, report : callable
            The job's short summary and its text report, asked as the bar
            moves.
        desc : str
            The bar's label.

        Returns
        -------
        bool
            False when `timeout` passed first. Otherwise True: nothing is
            pending, `status` says finished or incomplete, or `fatal` says
            why the run stopped (every engine gone, a fit raised with
            error_score="raise").
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        view = (
            LiveView(
                self.expected_tasks or self.n_tasks,
                self.n_done,
                desc,
                report,
                report_every,
            )
            if progress
            else None
        )
        empty_since = None
        next_watch = time.monotonic() + WATCH_INTERVAL
        try:
            while True:
                with self._lock:
                    outstanding = len(self._pending) + len(self._waiting_folds)
                if view is not None:
                    view.update(self.n_done, postfix)
                if outstanding == 0 or self.fatal:
                    break
                if deadline is not None and time.monotonic() > deadline:
                    return False
                if time.monotonic() >= next_watch:
                    next_watch = time.monotonic() + WATCH_INTERVAL
                    self._watch()
                    self._check_timeouts()
                    if self.fatal:
                        continue
                empty_since = self._check_engines(empty_since)
                time.sleep(0.05)
            self._drain()
        finally:
            if view is not None:
                view.close(self.n_done)
        if self.status == "running" and not self.fatal:
            # Tasks that ended in an error (fold missing on a host, retries
            # used up) leave holes: say so rather than rank partial means.
            # A budget that ended the run is its planned end.
            done = self.n_done == self.n_tasks or self.stopped_by
            self.status = "finished" if done else "incomplete"
        if view is not None:
            view.final()
        return True

    def _stop_for_time(self) -> None:
        """time_budget is spent: no new task; queued ones cancelled, running ones finish."""
        with self._lock:
            self.stopped_by = "time_budget"
            self._waiting_folds = []
            msg_ids = [m for ar, _, _ in self._pending.values() for m in ar.msg_ids]
        _say(
            f"time_budget of {self.budget['time_budget']:g} s spent: cancelling "
            "queued fits, the running ones finish"
        )
        if msg_ids:
            with contextlib.suppress(Exception):  # tasks already done are fine
                self.view.client.abort(msg_ids)

    def _watch(self) -> None:
        """Run the health checks; the first that fails stops the run. Spend time_budget."""
        if self._deadline is not None and time.monotonic() > self._deadline:
            self._deadline = None
            self._stop_for_time()
        for check in self.health:
            why = check()
            if why:
                self._stop(
                    Outcome.CLUSTER_LOST,
                    f"{why} ({self.n_done}/{self.n_tasks} tasks finished and "
                    "journaled). Start the cluster again (invoke cluster.start) and "
                    "resume the run.",
                )
                # Nothing to cancel on a dead controller, nothing to wait for.
                with self._lock:
                    self._aborting = True
                    self._waiting_folds = []
                    self.status = "aborted"
                    self._pending.clear()
                return

    def _check_timeouts(self) -> None:
        """Stop the engine of every task running past `task_timeout` (see there)."""
        if not self.task_timeout:
            return
        from runtime.worker import RUNNING_KEY

        metadata = self.view.client.metadata
        now = time.monotonic()
        with self._lock:
            pending = list(self._pending.items())
        for msg_id, (_, pairs, _) in pending:
            md = metadata.get(msg_id)
            running = (md or {}).get("data", {}).get(RUNNING_KEY)
            if not running or msg_id in self._timed_out:
                continue
            index, host, pid = running
            started = self._started.setdefault((msg_id, index), now)
            if now - started <= self.task_timeout:
                continue
            with self._lock:
                self._timed_out[msg_id] = (index, host, pid)
                self.counters["timed out fits"] += 1
            c, k = pairs[index]
            _say(
                f"fit of candidate {c} on fold {k} ran past its {self.task_timeout:g} s "
                f"timeout on {host} (engine pid {pid}): stopping and replacing that engine"
            )
            # SSH to a host takes a while: the results keep coming meanwhile.
            threading.Thread(
                target=self._replace_engine, args=(host, pid), daemon=True
            ).start()

    def _replace_engine(self, host: str, pid: int) -> None:
        if self.on_timeout is None:
            _say(f"cannot stop engine pid {pid} on {host}: no way to reach it here")
            return
        try:
            _say(self.on_timeout(host, pid))
        except Exception as exc:  # noqa: BLE001 - reported; the run goes on without it
            _say(f"replacing the engine pid {pid} on {host} failed: {exc}")

    def _timed_out_records(self, msg_id: str, pairs, attempt: int, ar) -> list[dict]:
        """Records for a message whose engine was stopped for a timeout; resubmit the rest."""
        from runtime.build import is_multimetric, metric_names

        index, host, pid = self._timed_out.pop(msg_id)
        c, k = pairs[index]
        scoring = self.common.get("scoring")
        rec = record.timed_out_record(
            candidate=c,
            fold=k,
            params=self.task_args(c).get("params"),
            seconds=self.task_timeout,
            error_score=math.nan if self.error_score == "raise" else self.error_score,
            metrics=metric_names(scoring) if is_multimetric(scoring) else None,
            return_train_score=bool(self.common.get("return_train_score")),
            host=host,
            pid=pid,
        )
        if self.error_score == "raise":
            self._stop(
                Outcome.FIT_RAISED,
                f"the fit of candidate {c} on fold {k} timed out after "
                f"{self.task_timeout:g} s and error_score is 'raise'",
            )
            self.abort(wait=False)
        elif not self._aborting:
            # The message's other tasks (done but unreported, or not begun)
            # go again; they did nothing wrong, so it is no retry.
            for p in pairs:
                if p != (c, k):
                    self._submit([p], attempt)
        return [record.stamp(rec, engine=None, message=msg_id, attempt=attempt)]

    def _check_engines(self, empty_since: float | None) -> float | None:
        client = getattr(self.view, "client", None)
        if client is None or client.ids:
            return None
        now = time.monotonic()
        if empty_since is None:
            return now
        if now - empty_since > NO_ENGINES_TIMEOUT:
            self._stop(
                Outcome.ENGINES_LOST,
                f"every engine is gone ({self.n_done}/{self.n_tasks} tasks finished). "
                "Start engines again and resume the run.",
            )
            self.abort(wait=False)
        return empty_since

    def _stop(self, outcome: Outcome, why: str, keep_first: bool = False) -> None:
        """Record why the run stops (with `keep_first`, only if nothing did yet)."""
        if not keep_first or self.fatal is None:
            self.fatal, self.outcome = why, outcome

    def _drain(self) -> None:
        """Let the collector catch up with callbacks already queued."""
        for _ in range(200):
            if self._queue.empty():
                break
            time.sleep(0.01)

    def abort(self, wait: bool = True, grace: float = ABORT_GRACE) -> None:
        """Cancel queued tasks; wait up to `grace` s for running ones.

        Tasks that finish during the grace period are journaled; the others
        are simply not in the journal, so a resume runs them again. The
        caller then writes the results (`Job.abort`).
        """
        with self._lock:
            self._aborting = True
            self._waiting_folds = []
            self.status = "aborted"
            ars = [v[0] for v in self._pending.values()]
        msg_ids = [m for ar in ars for m in ar.msg_ids]
        if msg_ids:
            try:
                self.view.client.abort(msg_ids)
            except Exception:  # noqa: BLE001 - aborting is best effort: tasks already gone are fine
                pass
        if wait:
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline:
                with self._lock:
                    if not self._pending:
                        break
                time.sleep(0.05)
            self._drain()

    def close(self) -> bool:
        """Close the journal, submitted.txt and the collector once nothing is pending.

        Returns
        -------
        bool
            Whether they were closed (False while tasks are still pending).
        """
        with self._lock:
            if self._pending:
                return False
            # Under the lock: after a lost cluster `_pending` is cleared while
            # the collector may still be journaling a late reply.
            if self._journal is not None:
                self._journal.close()
                self._journal = None
            if self._submitted is not None:
                with contextlib.suppress(OSError):
                    self._submitted.close()
                self._submitted = None
        if self._collector is not None:
            self._queue.put(None)
            self._collector = None
        return True


def _say(line: str) -> None:
    """A line for the user while the run goes on (beside the progress bar)."""
    print(line, file=sys.stderr, flush=True)


def get_result(ar, timeout: float | None = 0):
    """ar.get(timeout), raising EngineError for a task whose engine died.

    The task scheduler reports such a task with an error *reply*, which the
    client raises as a RemoteError named EngineError, not as EngineError.
    """
    from ipyparallel.error import EngineError, RemoteError  # see _collect_loop

    try:
        return ar.get(timeout)
    except RemoteError as exc:
        if exc.ename == "EngineError":
            raise EngineError(exc.evalue) from exc
        raise


def _remote_traceback(exc: BaseException) -> str:
    tb = getattr(exc, "traceback", None)
    return tb if isinstance(tb, str) and tb else f"{type(exc).__name__}: {exc}"

"""Rows decided as results come in, in no order known in advance (Optuna, ASHA).

Runs on the driver. A halving search's rows follow from its results alone;
a model-based search's or an asynchronous one's depend also on what was
in flight when each result came back. Such a planner writes every row it
makes to rows.jsonl before its tasks go (`RowLog`), so a resumed run has
the very rows, indices and parameters again, and finishes the unfinished
ones instead of asking new ones. Results are built from the journal alone:
every record carries its row's parameters and tags (`row`: trial number,
rung, resources), so a report needs no rows file.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from fleetcv.rundir import journal as jn
from fleetcv.rundir import results as rs

#: The rows file of a run with such a planner.
ROWS = "rows.jsonl"


class RowLog:
    """The rows a planner made, in order: rows.jsonl in the run directory (or memory only)."""

    def __init__(self, run_dir: Path | None):
        self.path = Path(run_dir) / ROWS if run_dir is not None else None

    def read(self) -> list[dict]:
        """The rows written so far (none without a run directory)."""
        if self.path is None or not self.path.exists():
            return []
        return jn.read_journal(self.path, required=("params",))

    def append(self, row: dict) -> None:
        """Write one row before its tasks are submitted (flushed, not fsynced).

        A row lost with the machine has no task either: nothing of it is in
        the journal, and the resumed run asks another in its place.
        """
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as f:
            f.write(json.dumps(row, sort_keys=True) + "\n")


def row_args(row: dict) -> dict:
    """A row's worker arguments: its params (and subsample), its tags echoed back."""
    args = {"params": row["params"], "row": row.get("tags", {})}
    if "subsample" in row:
        args["subsample"] = row["subsample"]
    return args


def row_mean(latest: dict, c: int, n_folds: int) -> float | None:
    """Row `c`'s mean test score once every fold has one (NaN: a failed fit), else None.

    `latest` is `latest_records(records)`. numpy's mean of the fold scores
    in fold order, as ``cross_val_score(...).mean()`` computes it.
    """
    scores = []
    for k in range(n_folds):
        rec = latest.get((c, k))
        if rec is None:
            return None
        s = rec.get("test_score")
        scores.append(math.nan if s is None else s)
    return float(np.mean(np.array(scores, dtype=np.float64)))


def rows_in_journal(records) -> tuple[list[int], dict[int, dict]]:
    """The row indices that have records (sorted), and each one's params and tags."""
    seen: dict[int, dict] = {}
    for r in records:
        c = r.get("candidate")
        if c is None or c in seen or r.get("params") is None:
            continue
        seen[int(c)] = {"params": r["params"], "tags": r.get("row") or {}}
    return sorted(seen), seen


def journal_results(
    job: dict, n_folds: int, records, tag_columns: tuple[str, ...]
) -> dict:
    """cv_results_ of the rows in the journal, in row order, with their tags as columns.

    Rows are renumbered 0..n-1 (a row asked but never journaled leaves no
    hole); `row_index` gives each one's index in the run.
    """
    order, rows = rows_in_journal(records)
    position = {c: i for i, c in enumerate(order)}
    renumbered = [
        {**r, "candidate": position[int(r["candidate"])]}
        for r in records
        if r.get("candidate") is not None and int(r["candidate"]) in position
    ]
    out = rs.build_cv_results(
        [rows[c]["params"] for c in order],
        n_folds,
        renumbered,
        job.get("return_train_score", True),
    )
    for column in tag_columns:
        out[column] = [rows[c]["tags"].get(column) for c in order]
    out["row_index"] = order
    return out

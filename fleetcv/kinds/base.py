"""What a job kind is: the few things that differ between a search, a curve, a refit...

Runs on the driver. A kind says what its rows (candidates) are, what each
task asks the worker to do, how the journal's records fold into its results
and how those read as text. Everything else (folds, run directory, cluster,
submission, retries, abort, journal, results.json, report.html) is the one
lifecycle's and the one task runner's, as scikit-learn's
`BaseSearchCV._run_search(evaluate_candidates)` separates what to evaluate
from how.

A job is described by plain data (`job`: the dict that meta.json holds, with
at least `kind`; a search's has `candidates` and `return_train_score`, a
curve's has `curve`), so a run directory alone says how to rebuild its
results, with no cluster and no estimator.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from runtime.worker import evaluate_many


@dataclass(frozen=True)
class PlanContext:
    """What a planner (`Kind.planner`) knows of the run besides its job.

    Attributes
    ----------
    n_folds : int
        The folds each row is scored on.
    n_engines : int
        Engines at launch (how many rows a planner keeps in flight).
    run_dir : Path, optional
        The run directory (a planner's own files), None in memory.
    """

    n_folds: int
    n_engines: int = 1
    run_dir: Path | None = None


def grid_flavour(settings: dict | None) -> str:
    """Read `params` as a grid (lists and grid expressions)."""
    return "grid"


def no_check(where: str, settings, params, scoring, refit):
    """Settings that ask nothing of params and scoring, as they are."""
    return settings


@dataclass(frozen=True)
class SpecSection:
    """How a search kind reads a spec (`search: NAME` and its own section) and makes its job.

    The spec loader (`fleetcv.spec.search.load_search_spec`) reads what every
    search shares (estimator, params, data, cv, scoring, refit) and hands the
    kind its section; the lifecycle asks it for the run's job.

    Attributes
    ----------
    section : str or None
        The spec's key holding the kind's settings (``halving:``), None for
        a kind without settings. Its keys are the parser's to check.
    parse : callable
        ``(where, raw, estimator, random_state) -> settings``: the section as
        written (None when absent), validated, with defaults. Raises a
        ConfigError naming ``<section>.<key>``.
    flavour : callable
        ``settings -> "grid" | "random"``: how `params` is read (grid lists
        and expressions, or distributions to sample).
    check : callable
        ``(where, settings, params, scoring, refit) -> settings``: what the
        settings ask of the parsed params and scoring (e.g. one metric),
        and the settings completed from them.
    job_of : callable
        ``(spec, split) -> job``: the job description (meta.json) of a run
        of the spec on its folds; `split` is None when `needs_split` is False.
    needs_split : bool
        Whether the job depends on the folds (resources on the rows).
    budget : str or None
        The setting that draws the candidates instead of n_iter (e.g.
        "halving.n_candidates"), None for a kind that takes n_iter.
    needs_n_iter : bool
        Whether the spec must give n_iter (a random search's budget).
    """

    section: str | None
    job_of: Callable
    parse: Callable | None = None
    flavour: Callable[[dict | None], str] = grid_flavour
    check: Callable = no_check
    needs_split: bool = False
    budget: str | None = None
    needs_n_iter: bool = False


@dataclass(frozen=True)
class Kind:
    """One kind of job.

    Attributes
    ----------
    name : str
        Its `kind` in meta.json.
    command : str
        The invoke task that runs and resumes it (e.g. "search",
        "curves.learning").
    noun : str
        What a run of this kind is called in messages ("search", "curve").
    rows : str
        What one candidate is called in the log ("candidates", "sizes").
    style : str
        The report family its results belong to: "search" (cv_results_:
        boxplots, heatmaps, the top-k table) or "curve" (a curve plot and
        table).
    candidates : callable
        job -> the list of rows (dicts), in order.
    task_args : callable
        (job, candidate index) -> the worker arguments of that row besides
        the fold (`params`, and e.g. `train_size`).
    train_scores : callable
        job -> whether tasks also score the training rows.
    results : callable
        (job, n_folds, records) -> the results (dict of plain types).
    summary : callable
        (job, results) -> the top-level keys beside them in results.json (a
        search's best_index, best_params, best_score).
    report : callable
        (job, results, n_tasks, n_done, status, extra, top_k) -> the text
        report.
    postfix : callable
        (job, results) -> the progress bar's short summary items (e.g.
        best=0.99).
    run_name : callable
        (spec name, job) -> the prefix of a new run directory's name.
    search : str, optional
        The spec's ``search:`` value that runs this kind (grid, random,
        halving...), None for a kind no spec names (curves).
    spec : SpecSection, optional
        How such a spec is read and its job made (kinds with `search`).
    worker : callable
        The engine function one message runs: `worker(tasks=[...], **common)`
        returns one journal record (`runtime.record`) per task, in
        order. Default `runtime.worker.evaluate_many` (fit and score
        on a fold); a kind that does other work on the engines (a refit on
        all rows, say) names its own.
    """

    name: str
    command: str
    noun: str
    rows: str
    style: str
    candidates: Callable[[dict], list[dict]]
    task_args: Callable[[dict, int], dict]
    train_scores: Callable[[dict], bool]
    results: Callable[[dict, int, list], dict]
    summary: Callable[[dict, dict], dict]
    report: Callable[..., str]
    postfix: Callable[[dict, dict], list[str]]
    run_name: Callable[[str, dict], str]
    worker: Callable[..., list[dict]] = evaluate_many
    planner: Callable[[dict, PlanContext], Callable[[list], list[dict]]] | None = None
    row_args: Callable[[dict], dict] | None = None
    expected_tasks: Callable[[dict, int], int] | None = None
    search: str | None = None
    spec: SpecSection | None = None

    def n_tasks(self, job: dict, n_folds: int) -> int:
        """Rows x folds (with a planner: of the whole run, where known)."""
        if self.expected_tasks is not None:
            return self.expected_tasks(job, n_folds)
        return len(self.candidates(job)) * n_folds

"""The `scoring` and `refit` keys of a search spec, as scikit-learn's searches take them.

Runs on the driver (the laptop). `scoring` is a scorer name (``accuracy``), an
import path of a scorer object, a metric function with `make_scorer` options
(``{metric: sklearn.metrics.fbeta_score, params: {beta: 2}}``), or several of
these as a list of names or a mapping of name -> scorer (multi-metric).
`refit` is true/false, the metric that ranks candidates (required with
several metrics, as in scikit-learn), or the import path of a callable that
picks the best index from `cv_results_`. The values stay plain data; the
engines build the scorers (`runtime.build`).
"""

from __future__ import annotations

import inspect
import re
from typing import Any

from fleetcv.spec.common import check_keys, err, import_checked
from runtime.build import METRIC_KEYS, build_scorer, is_multimetric, metric_names

_SCORING_FIX = (
    "use a name from sklearn.metrics.get_scorer_names() (e.g. accuracy), the import "
    "path of a scorer object, {metric: IMPORT.PATH} for a metric function, a list of "
    "names, or a mapping of name -> scorer"
)
#: A metric's name becomes part of results keys (mean_test_<name>).
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def parse_scoring(where: str, scoring: Any) -> Any:
    """Validate ``scoring``: None, one scorer, or several (a list or a mapping).

    Returns
    -------
    None, str, dict or list
        As written (plain data), checked to build.

    Raises
    ------
    ConfigError
        Naming the bad entry (``scoring.f2``), its value and the fix.
    """
    if scoring is None:
        return None
    if isinstance(scoring, str) or (isinstance(scoring, dict) and "metric" in scoring):
        _check_scorer(where, "scoring", scoring)
        return scoring
    if isinstance(scoring, list):
        if not scoring or len(set(map(str, scoring))) != len(scoring):
            raise err(
                where,
                "scoring",
                f"expected a non-empty list of distinct scorer names, got {scoring!r}",
                "write e.g. scoring: [accuracy, f1_macro]",
            )
        for i, name in enumerate(scoring):
            if not isinstance(name, str) or "." in name:
                raise err(
                    where,
                    f"scoring[{i}]",
                    f"a list holds scorer names, got {name!r}",
                    "use a mapping to give custom scorers a name: scoring: {acc: accuracy, mine: pkg.mod.scorer}",
                )
            _check_scorer(where, f"scoring[{i}]", name)
        return list(scoring)
    if isinstance(scoring, dict) and scoring:
        for name, value in scoring.items():
            if not isinstance(name, str) or not _NAME.match(name):
                raise err(
                    where,
                    f"scoring.{name}",
                    "a metric's name must be an identifier (it names results keys)",
                    "rename it, e.g. f1_macro",
                )
            _check_scorer(where, f"scoring.{name}", value)
        return dict(scoring)
    raise err(where, "scoring", f"unknown scoring {scoring!r}", _SCORING_FIX)


def _check_scorer(where: str, key: str, value: Any) -> None:
    """One scorer: a name, an import path of a scorer, or a metric function's mapping."""
    if isinstance(value, dict):
        check_keys(where, key + ".", value, set(METRIC_KEYS))
        import_checked(
            where,
            f"{key}.metric",
            value.get("metric"),
            "give the import path of a metric function (y_true, y_pred), e.g. sklearn.metrics.fbeta_score",
        )
        try:
            build_scorer(value)
        except (TypeError, ValueError) as exc:
            raise err(
                where,
                key,
                f"make_scorer refuses {value!r} ({exc})",
                "see sklearn.metrics.make_scorer",
            ) from exc
        return
    if not isinstance(value, str):
        raise err(where, key, f"unknown scoring {value!r}", _SCORING_FIX)
    if "." in value:
        obj = import_checked(where, key, value, _SCORING_FIX)
        if not _is_scorer(obj):
            raise err(
                where,
                key,
                f"{value} is not a scorer (a callable scorer(estimator, X, y))",
                f"for a metric function (y_true, y_pred) write {{metric: {value}}}, "
                "with make_scorer's options beside it",
            )
        return
    try:
        build_scorer(value)
    except (ValueError, TypeError) as exc:
        raise err(
            where,
            key,
            f"unknown scoring {value!r}",
            "use a name from sklearn.metrics.get_scorer_names(), e.g. accuracy, or null for the estimator's score",
        ) from exc


def _is_scorer(obj: Any) -> bool:
    """A scikit-learn scorer, or a callable of (estimator, X, y): not a metric function."""
    if hasattr(obj, "_score_func"):
        return True
    if not callable(obj) or isinstance(obj, type):
        return False
    try:
        first = next(iter(inspect.signature(obj).parameters), None)
    except (TypeError, ValueError):
        return True
    # scikit-learn's metric functions start with (y_true, ...).
    return first not in ("y_true", "labels_true")


def parse_refit(where: str, refit: Any, scoring: Any) -> bool | str:
    """Validate ``refit`` against the metrics of ``scoring``.

    Returns
    -------
    bool or str
        False, True (one metric), a metric name, or an import path.

    Raises
    ------
    ConfigError
        For true with several metrics, a metric that is not in scoring, a
        callable that does not import, or any other value.
    """
    names = list(scoring) if is_multimetric(scoring) else None
    if isinstance(refit, bool):
        if refit and names:
            raise err(
                where,
                "refit",
                f"true is ambiguous with several metrics ({', '.join(names)})",
                f"name the metric that ranks candidates, e.g. refit: {names[0]}, or refit: false",
            )
        return refit
    if isinstance(refit, str) and "." in refit:
        obj = import_checked(
            where,
            "refit",
            refit,
            "give the import path of a function cv_results -> best index",
        )
        if not callable(obj):
            raise err(
                where,
                "refit",
                f"{refit} is not callable",
                "give a function cv_results -> best index",
            )
        return refit
    if isinstance(refit, str) and names and refit in names:
        return refit
    if isinstance(refit, str) and not names and refit == scoring:
        return True  # scikit-learn's refit="accuracy" with scoring="accuracy"
    if isinstance(refit, str) and names:
        raise err(
            where,
            "refit",
            f"{refit!r} is not one of the metrics in scoring ({', '.join(names)})",
            f"write refit: {names[0]} (or another of them), or add {refit} to scoring",
        )
    raise err(
        where,
        "refit",
        f"expected true, false, a metric of scoring or an import path, got {refit!r}",
        "write refit: true",
    )


def ranking_metric(scoring: Any, refit: Any) -> str:
    """The metric that ranks candidates in the report: the refit one, else the first.

    "score" for a single metric (results' `mean_test_score`).
    """
    if not is_multimetric(scoring):
        return "score"
    if isinstance(refit, str) and refit in scoring:
        return refit
    return list(scoring)[0]


class ScoredSpec:
    """The metric properties of a spec with `scoring` and `refit` (a file's or Python's)."""

    scoring: Any
    refit: Any

    @property
    def metrics(self) -> list[str]:
        """The metrics' names in results (``["score"]`` for one metric)."""
        return metric_names(self.scoring)

    @property
    def ranking(self) -> str:
        """The metric that ranks candidates (the refit one, else the first)."""
        return ranking_metric(self.scoring, self.refit)

    @property
    def ranking_scoring(self) -> Any:
        """The scoring of the ranking metric alone (what a curve plots)."""
        if self.ranking == "score":
            return self.scoring
        if isinstance(self.scoring, dict):
            return self.scoring[self.ranking]
        return self.ranking

"""Search specs: what to search (estimator, parameter space), on which data, how.

Runs on the driver (the laptop). `load_search_spec` reads a spec's YAML and
validates it section by section into a frozen `SearchSpec`; its
`candidates()` are the parameter combinations a run evaluates, in the order
scikit-learn's own searches would. Value expressions (``logspace(...)``,
``loguniform(...)``) are read by fleetcv.spec.expr, the estimator section by
fleetcv.spec.estimator.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleetcv.spec.code import parse_code, parse_requirements, use_code
from fleetcv.spec.common import (
    check_keys,
    err,
    expect_bool,
    expect_optional_int,
    import_checked,
    import_object,
    plain,
    read_yaml,
)
from fleetcv.spec.estimator import EstimatorSpec, check_description, parse_estimator
from fleetcv.spec.expr import Distribution, is_call, parse_value_expr
from fleetcv.spec.scoring import ScoredSpec, parse_refit, parse_scoring
from fleetcv.spec.source import DataSpec, parse_data, parse_fit_params
from runtime.build import build, describe, is_estimator_description

#: The top-level keys every search spec may have (each search kind adds its
#: own section, `SpecSection.section`).
_SPEC_KEYS = {
    "name",
    "estimator",
    "search",
    "params",
    "n_iter",
    "random_state",
    "data",
    "cv",
    "scoring",
    "error_score",
    "return_train_score",
    "refit",
    "fit_params",
    "code",
    "requirements",
    "task_timeout",
    "max_fits",
    "time_budget",
}


@dataclass(frozen=True)
class CVSpec:
    """How the folds are drawn: shuffle or kfold settings, or any splitter class.

    With `cls` (``cv.class``, an import path such as
    sklearn.model_selection.TimeSeriesSplit) the splitter is that class made
    with `params`; `n_splits` is then its `get_n_splits()`.
    """

    kind: str = "shuffle"
    n_splits: int = 5
    test_size: float | None = 0.25
    random_state: int | None = None
    stratified: bool = False
    cls: str | None = None
    params: dict = field(default_factory=dict)

    def splitter(self):
        """The scikit-learn CV object these settings describe."""
        if self.cls is not None:
            return import_object(self.cls)(**self.params)
        # Deferred: importing fleetcv.spec (fabfile.py does) must not import sklearn.
        from sklearn import model_selection as ms

        if self.kind == "shuffle":
            cls = ms.StratifiedShuffleSplit if self.stratified else ms.ShuffleSplit
            return cls(
                n_splits=self.n_splits,
                test_size=self.test_size,
                random_state=self.random_state,
            )
        cls = ms.StratifiedKFold if self.stratified else ms.KFold
        shuffle = self.random_state is not None
        return cls(
            n_splits=self.n_splits, shuffle=shuffle, random_state=self.random_state
        )

    def as_dict(self) -> dict:
        """Plain-types form, part of the split digest."""
        if self.cls is not None:
            return {"class": self.cls, "params": dict(self.params)}
        return {
            "kind": self.kind,
            "n_splits": self.n_splits,
            "test_size": self.test_size,
            "random_state": self.random_state,
            "stratified": self.stratified,
        }


@dataclass(frozen=True)
class SearchSpec(ScoredSpec):
    """A validated search spec."""

    path: str
    name: str
    estimator: EstimatorSpec
    search: str
    params: tuple[dict, ...]
    n_iter: int | None
    random_state: int | None
    data: DataSpec
    cv: CVSpec
    scoring: Any
    error_score: float | str
    return_train_score: bool
    raw: dict
    refit: bool | str = True
    fit_params: dict = field(default_factory=dict)
    code: tuple[Path, ...] = ()
    code_digest: str | None = None
    requirements: tuple[str, ...] = ()
    #: Seconds a fit may run before its engine is replaced and it counts as failed.
    task_timeout: float | None = None
    #: How `params` was read: "grid" (lists) or "random" (distributions).
    flavour: str = "grid"
    #: The search kind's own settings (its spec section, parsed and checked
    #: by its `SpecSection`), None for a kind without one.
    settings: dict | None = None
    #: max_fits and time_budget (None: no limit), the end of any search.
    budget: dict = field(default_factory=dict)

    def candidates(self, n_iter: int | None = None) -> list[dict]:
        """The parameter combinations to evaluate, in sklearn's order.

        A grid gives ParameterGrid's order; a random search (or a grid with
        n_iter) gives ParameterSampler's draw, so the same random_state gives
        the same candidates as RandomizedSearchCV. A halving search's first
        iteration: its grid, or (random flavour) `n_iter` candidates drawn,
        as HalvingRandomSearchCV draws them. Values are described as the
        journal keeps them (`_described`).
        """
        # Deferred: importing fleetcv.spec (fabfile.py does) must not import sklearn.
        from sklearn.model_selection import ParameterGrid, ParameterSampler

        n_iter = self.n_iter if n_iter is None else n_iter
        if self.flavour == "grid" and n_iter is None:
            cands = list(ParameterGrid(list(self.params)))
        else:
            space = [
                {
                    k: (v.frozen() if isinstance(v, Distribution) else v)
                    for k, v in p.items()
                }
                for p in self.params
            ]
            cands = list(
                ParameterSampler(space, n_iter=n_iter, random_state=self.random_state)
            )
        current = self.estimator.build().get_params(deep=True)
        return [
            {k: _described(v, isinstance(current.get(k), tuple)) for k, v in c.items()}
            for c in cands
        ]

    def digest(self) -> str:
        """Digest of everything that decides the results (not the run's name)."""
        raw = self.raw
        if self.code_digest:
            # The code's contents decide the results as much as the spec's text.
            raw = {**raw, "code": [raw.get("code"), self.code_digest]}
        blob = json.dumps(raw, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _described(value: Any, tuple_param: bool = False) -> Any:
    """A spec's parameter value as the journal keeps it, so `build` gives what the fit gets.

    Estimator descriptions stay as written; numbers are Python's (an
    expression's numpy values included); a mapping with other keys than
    strings (``class_weight: {0: 1, 1: 5}``) is typed, as JSON would make
    its keys strings; a list given to a parameter whose default is a tuple
    (``ngram_range: [1, 2]``) is that tuple, as YAML has none.
    """
    if tuple_param and isinstance(value, list):
        return describe(tuple(_described(v) for v in value))
    if is_estimator_description(value):
        return value
    if isinstance(value, list):
        return [_described(v) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: _described(v) for k, v in value.items()}
    return describe(plain(value))


def load_search_spec(
    spec_file: str | os.PathLike,
    n_iter: int | None = None,
    base_dir: str | os.PathLike | None = None,
) -> SearchSpec:
    """Load and validate a search spec.

    Parameters
    ----------
    spec_file : path
        The YAML spec (see README.md, "Writing a search spec").
    n_iter : int, optional
        Overrides the spec's n_iter; on a grid it samples that many
        candidates from the grid, as RandomizedSearchCV does with lists.
    base_dir : path, optional
        Folder that relative data paths are read from (default: the spec's
        folder); a run's spec copy keeps its original folder this way.

    Returns
    -------
    SearchSpec

    Raises
    ------
    ConfigError
        On any problem, naming the file, key, value and fix.
    """
    # Deferred: the kinds (and what they import) load with a spec, not with
    # fleetcv.spec, which fabfile.py and the command line's start import.
    from fleetcv.kinds import search_kinds

    kinds = search_kinds()
    path = Path(spec_file)
    where = str(path)
    data = read_yaml(path, "search spec")
    sections = {k.spec.section for k in kinds.values() if k.spec.section}
    check_keys(where, "", data, _SPEC_KEYS | sections)
    base = Path(base_dir) if base_dir else path.parent
    # The user's code first: the estimator and other import paths may be in it.
    code = parse_code(where, data.get("code"), base)
    requirements = parse_requirements(where, data.get("requirements"), base)
    code_digest = use_code(code)
    # The sections are checked in this order: of several bad ones, the first
    # is reported.
    est = parse_estimator(where, data.get("estimator"))
    search = _parse_search(where, data.get("search", "grid"), kinds)
    if n_iter is not None:
        data = {**data, "n_iter": n_iter}
    rs = _seed(where, "random_state", data.get("random_state"))
    section = _parse_kind_section(where, kinds[search].spec, est, rs, sections, data)
    refit, error_score, rts = _parse_outputs(where, data, section["scoring"])
    spec = SearchSpec(
        path=where,
        name=parse_name(where, data.get("name"), path.stem),
        estimator=est,
        search=search,
        random_state=rs,
        data=parse_data(where, data.get("data"), base),
        cv=_parse_cv(where, data.get("cv")),
        error_score=error_score,
        return_train_score=rts,
        raw={k: v for k, v in data.items() if k != "name"},
        refit=refit,
        fit_params=parse_fit_params(where, data.get("fit_params"), base),
        code=code,
        code_digest=code_digest,
        requirements=requirements,
        **_parse_limits(where, data),
        **section,
    )
    _check_n_iter_fits_grid(where, spec)
    _check_groups(where, spec)
    return spec


def _parse_kind_section(
    where: str, kind, est, rs: int | None, sections: set[str], data: dict
) -> dict:
    """The fields a search kind decides: n_iter, its settings, params, scoring.

    Its own section is parsed before the parameters (its flavour says how
    they are read), and checked against them and the scoring after.
    """
    search = data.get("search", "grid")
    spec_n_iter = _parse_n_iter(where, search, kind, data.get("n_iter"))
    _check_sections(where, search, kind, sections, data)
    settings = (
        kind.parse(where, data.get(kind.section), est.build(), rs)
        if kind.parse
        else None
    )
    flavour = kind.flavour(settings)
    params = _parse_params(where, data, flavour, est.build())
    scoring = parse_scoring(where, data.get("scoring"))
    settings = kind.check(where, settings, params, scoring, data.get("refit", True))
    return {
        "n_iter": spec_n_iter,
        "flavour": flavour,
        "settings": settings,
        "params": params,
        "scoring": scoring,
    }


# --------------------------------------------------------------------------- sections


def _parse_search(where: str, search: Any, kinds: dict) -> str:
    if search not in kinds:
        names = list(kinds)
        raise err(
            where,
            "search",
            f"expected {', '.join(names[:-1])} or {names[-1]}, got {search!r}",
            "write one of: " + ", ".join(f"search: {k}" for k in names),
        )
    return search


def _check_sections(
    where: str, search: str, kind, sections: set[str], data: dict
) -> None:
    """A settings section belongs to its search; a search with a budget of its own draws no n_iter."""
    for section in sorted(sections):
        if section in data and section != kind.section:
            raise err(
                where,
                section,
                f"settings of a {section} search in a search: {search} spec",
                f"write search: {section}, or remove the {section} section",
            )
    if kind.budget and data.get("n_iter") is not None:
        raise err(
            where,
            "n_iter",
            f"a {search} search draws {kind.budget}, not n_iter",
            f"remove n_iter (or --n-iter); set {kind.budget} instead",
        )


def _parse_outputs(where: str, data: dict, scoring) -> tuple:
    """refit, error_score and return_train_score: what a search gives back."""
    refit = parse_refit(where, data.get("refit", True), scoring)
    error_score = _parse_error_score(where, data.get("error_score", "nan"))
    rts = expect_bool(
        where,
        "return_train_score",
        data.get("return_train_score", True),
        "write return_train_score: true",
    )
    return refit, error_score, rts


def _parse_limits(where: str, data: dict) -> dict:
    """SearchSpec's task_timeout (a fit's) and budget (the search's)."""
    return {
        "task_timeout": parse_task_timeout(
            where, "task_timeout", data.get("task_timeout")
        ),
        "budget": _parse_budget(where, data),
    }


def _parse_budget(where: str, data: dict) -> dict:
    """`max_fits` (a positive integer) and `time_budget` (seconds): where a search may stop."""
    max_fits = data.get("max_fits")
    if max_fits is not None and (
        isinstance(max_fits, bool) or not isinstance(max_fits, int) or max_fits <= 0
    ):
        raise err(
            where,
            "max_fits",
            f"expected a positive integer, got {max_fits!r}",
            "write max_fits: 500 (fits of the whole run), or leave it out",
        )
    return {
        "max_fits": max_fits,
        "time_budget": parse_task_timeout(
            where, "time_budget", data.get("time_budget")
        ),
    }


def _parse_n_iter(where: str, search: str, kind, n_iter: Any) -> int | None:
    if kind.needs_n_iter and n_iter is None:
        raise err(
            where,
            "n_iter",
            f"a {search} search needs a budget",
            "add n_iter: 10 (or pass --n-iter)",
        )
    if n_iter is not None and (
        isinstance(n_iter, bool) or not isinstance(n_iter, int) or n_iter <= 0
    ):
        raise err(
            where,
            "n_iter",
            f"expected a positive integer, got {n_iter!r}",
            "set n_iter to the number of candidates to draw, e.g. 10",
        )
    return n_iter


def _check_n_iter_fits_grid(where: str, spec: SearchSpec) -> None:
    if spec.n_iter is None or spec.search != "grid":
        return
    # Deferred: importing fleetcv.spec (fabfile.py does) must not import sklearn.
    from sklearn.model_selection import ParameterGrid

    size = len(ParameterGrid(list(spec.params)))
    if spec.n_iter > size:
        raise err(
            where,
            "n_iter",
            f"{spec.n_iter} is more than the {size} candidates of the grid",
            f"use n_iter <= {size}, or drop it to run the whole grid",
        )


#: A run name: it names the run directory under runs/, so no path in it.
_RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def parse_name(where: str, name: Any, default: str) -> str:
    """The spec's `name` (default: the file's stem), safe as a directory name."""
    if name is None or name == "":
        name = default
    if not isinstance(name, str) or not _RUN_NAME.fullmatch(name) or ".." in name:
        raise err(
            where,
            "name",
            f"expected a name of letters, digits, '.', '_', '-' (it names the run "
            f"directory under runs/), got {name!r}",
            "write e.g. name: digits_svc",
        )
    return name


def parse_task_timeout(where: str, key: str, value: Any) -> float | None:
    """Seconds (> 0), or None for no limit: a fit's task_timeout, a search's time_budget."""
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise err(
            where,
            key,
            f"expected a number of seconds > 0, got {value!r}",
            f"write e.g. {key}: 600, or drop it for no limit",
        )
    return float(value)


def _seed(where: str, key: str, value: Any) -> int | None:
    """A random_state: null or an integer numpy takes as a seed (0 to 2**32 - 1)."""
    value = expect_optional_int(
        where, key, value, f"write e.g. {key.split('.')[-1]}: 42"
    )
    if value is not None and not 0 <= value < 2**32:
        raise err(
            where,
            key,
            f"{value} is not a seed (0 to 2**32 - 1)",
            f"write e.g. {key.split('.')[-1]}: 42",
        )
    return value


def _parse_error_score(where: str, error_score: Any) -> float | str:
    if error_score == "raise":
        return error_score
    if error_score in ("nan", None) or (
        isinstance(error_score, float) and math.isnan(error_score)
    ):
        return float("nan")
    if isinstance(error_score, int | float) and not isinstance(error_score, bool):
        return float(error_score)
    raise err(
        where,
        "error_score",
        f"expected a number, nan or raise, got {error_score!r}",
        "write error_score: nan",
    )


def _parse_params(where: str, data: dict, search: str, base) -> tuple[dict, ...]:
    """The ``params`` section: one grid (a mapping) or a list of them.

    `base` is the spec's estimator, built: a grid's names must be its
    parameters, or, where the grid chooses an estimator (a step given a list
    of estimators), parameters of every choice.
    """
    if "params" not in data:
        raise err(
            where,
            "params",
            "missing",
            "add the parameter space, e.g. params: {C: [0.1, 1, 10]}",
        )
    raw = data["params"]
    grids = raw if isinstance(raw, list) else [raw]
    if not grids:
        raise err(
            where,
            "params",
            "the parameter space is empty",
            "give at least one parameter with values",
        )
    out = []
    for gi, grid in enumerate(grids):
        gkey = "params" if not isinstance(raw, list) else f"params[{gi}]"
        if not isinstance(grid, dict) or not grid:
            raise err(
                where,
                gkey,
                f"expected a non-empty mapping of parameter name to values, got {grid!r}",
                "write e.g. C: [0.1, 1, 10]",
            )
        parsed = {
            name: _param_values(where, f"{gkey}.{name}", name, values, search)
            for name, values in grid.items()
        }
        _check_names(where, gkey, parsed, base)
        out.append(parsed)
    return tuple(out)


def _check_names(where: str, gkey: str, grid: dict, base) -> None:
    """Every name of `grid` is a parameter of `base`, whichever estimator the grid chooses."""
    # Deferred: importing fleetcv.spec (fabfile.py does) must not import sklearn.
    from sklearn.base import clone

    valid = set(base.get_params(deep=True))
    choices = {
        n: [v for v in vals if is_estimator_description(v)]
        for n, vals in grid.items()
        if isinstance(vals, list) and n in valid
    }
    choices = {n: opts for n, opts in choices.items() if opts}

    def chosen(name: str) -> str | None:
        return next((c for c in choices if name.startswith(c + "__")), None)

    for name in grid:
        if chosen(name) is None and name not in valid:
            _no_parameter(where, f"{gkey}.{name}", name, valid, "")
    for cname, options in choices.items():
        for opt in options:
            # A copy per option: the next grid is checked against `base` as written.
            est = clone(base).set_params(**{cname: build(opt)})
            branch = set(est.get_params(deep=True))
            for name in grid:
                if chosen(name) == cname and name not in branch:
                    what = opt["class"] if "class" in opt else "that pipeline"
                    _no_parameter(
                        where,
                        f"{gkey}.{name}",
                        name,
                        branch,
                        f" when {cname} is {what}",
                    )


def _no_parameter(where: str, key: str, name: str, valid: set[str], when: str):
    close = [v for v in sorted(valid) if v.split("__")[-1] == str(name).split("__")[-1]]
    hint = (
        f"did you mean {close[0]}?"
        if close
        else "use one of " + ", ".join(sorted(v for v in valid if v.count("__") <= 1))
    )
    raise err(where, key, f"the estimator has no parameter {name!r}{when}", hint)


def _param_values(where: str, key: str, name: Any, values: Any, search: str) -> Any:
    """One parameter's values: a list (of values, grid expressions, estimators), or an expression."""
    if isinstance(values, str):
        return parse_value_expr(where, key, values, search)
    if not isinstance(values, list):
        raise err(
            where,
            key,
            f"expected a list of values or an expression, got {values!r}",
            f"write {name}: [{values!r}]",
        )
    if not values:
        raise err(where, key, "empty list of values", "give at least one value")
    return [_list_item(where, key, i, name, v) for i, v in enumerate(values)]


def _list_item(where: str, key: str, i: int, name: str, v: Any) -> Any:
    """One value of a parameter's list: as written, an estimator, or an expression of one value."""
    if isinstance(v, float) and not math.isfinite(v):
        # YAML's .nan/.inf: no estimator takes them, and a NaN candidate
        # never equals itself, which breaks resume and reuse by params.
        raise err(
            where,
            f"{key}[{i}]",
            f"{v!r} is not a usable parameter value",
            "give finite numbers (or null for None)",
        )
    if isinstance(v, dict) and ("class" in v or "pipeline" in v):
        return check_description(where, f"{key}[{i}]", v)
    if not (isinstance(v, str) and is_call(v)):
        return v
    got = parse_value_expr(where, key, v, "grid")
    if len(got) != 1:
        raise err(
            where,
            key,
            f"the list item {v!r} gives {len(got)} values, and a list item is one value",
            f"write {name}: {v} (without the brackets) for all of them",
        )
    return got[0]


def _parse_cv(where: str, raw: Any) -> CVSpec:
    raw = raw or {}
    if not isinstance(raw, dict):
        raise err(
            where,
            "cv",
            f"expected a mapping, got {raw!r}",
            "write cv: {n_splits: 5, test_size: 0.25, random_state: 42}",
        )
    if "class" in raw:
        return _parse_cv_class(where, raw)
    check_keys(
        where,
        "cv.",
        raw,
        {"kind", "n_splits", "test_size", "random_state", "stratified"},
    )
    kind = raw.get("kind", "shuffle")
    if kind not in ("shuffle", "kfold"):
        raise err(
            where,
            "cv.kind",
            f"expected shuffle or kfold, got {kind!r}",
            "write kind: shuffle (ShuffleSplit) or kind: kfold (KFold)",
        )
    return CVSpec(
        kind=kind,
        n_splits=_cv_n_splits(where, kind, raw.get("n_splits", 5)),
        test_size=_cv_test_size(where, kind, raw),
        random_state=_seed(where, "cv.random_state", raw.get("random_state")),
        stratified=expect_bool(
            where,
            "cv.stratified",
            raw.get("stratified", False),
            "write stratified: true",
        ),
    )


def _parse_cv_class(where: str, raw: dict) -> CVSpec:
    """``cv: {class: IMPORT.PATH, params: {...}}``: any scikit-learn splitter."""
    fix = "write cv: {class: sklearn.model_selection.TimeSeriesSplit, params: {n_splits: 5}}"
    extra = sorted(set(raw) - {"class", "params"})
    if extra:
        raise err(
            where,
            f"cv.{extra[0]}",
            "with cv.class the splitter's own parameters go under cv.params",
            f"move it: cv: {{class: {raw['class']}, params: {{{extra[0]}: ...}}}}",
        )
    cls = import_checked(where, "cv.class", raw["class"], fix)
    if not (
        callable(getattr(cls, "split", None))
        and callable(getattr(cls, "get_n_splits", None))
    ):
        raise err(
            where,
            "cv.class",
            f"{raw['class']} is not a cross-validation splitter (no split/get_n_splits)",
            fix,
        )
    params = raw.get("params") or {}
    if not isinstance(params, dict):
        raise err(where, "cv.params", f"expected a mapping, got {params!r}", fix)
    try:
        splitter = cls(**params)
    except (TypeError, ValueError) as exc:
        raise err(
            where,
            "cv.params",
            f"{raw['class']} refuses {params!r} ({exc})",
            f"see {raw['class']}'s parameters",
        ) from exc
    try:
        n_splits = int(splitter.get_n_splits())
    except (TypeError, ValueError) as exc:
        if needs_groups(splitter):
            # LeaveOneGroupOut & co. count their splits from the groups: the
            # data check does it once the groups are read.
            n_splits = 0
        else:
            raise err(
                where,
                "cv.class",
                f"{raw['class']} cannot say its number of splits without the data ({exc})",
                "use a splitter with a fixed number of splits",
            ) from exc
    return CVSpec(
        kind="class",
        n_splits=n_splits,
        test_size=None,
        cls=raw["class"],
        params={k: plain(v) for k, v in params.items()},
    )


def _check_groups(where: str, spec: SearchSpec) -> None:
    """A splitter that splits by groups needs `data.groups` (a loader's are checked once loaded)."""
    if spec.cv.cls is None or spec.data.groups is not None or spec.data.loader:
        return
    if needs_groups(spec.cv.splitter()):
        raise err(
            where,
            "cv.class",
            f"{spec.cv.cls} splits by groups, and data.groups is not set",
            "add the group labels: data: {..., groups: COLUMN} (a column of the table, "
            "left out of X) or groups: {path: groups.npy}",
        )


def needs_groups(splitter) -> bool:
    """Whether scikit-learn's splitter routes `groups` to its split (GroupKFold...)."""
    # Deferred: importing fleetcv.spec (fabfile.py does) must not import sklearn.
    from sklearn.model_selection import (
        GroupKFold,
        GroupShuffleSplit,
        LeaveOneGroupOut,
        LeavePGroupsOut,
        StratifiedGroupKFold,
    )

    return isinstance(
        splitter,
        GroupKFold
        | GroupShuffleSplit
        | LeaveOneGroupOut
        | LeavePGroupsOut
        | StratifiedGroupKFold,
    )


def _cv_n_splits(where: str, kind: str, n_splits: Any) -> int:
    minimum = 2 if kind == "kfold" else 1
    if (
        isinstance(n_splits, bool)
        or not isinstance(n_splits, int)
        or n_splits < minimum
    ):
        raise err(
            where,
            "cv.n_splits",
            f"expected an integer >= {minimum}, got {n_splits!r}",
            "write e.g. n_splits: 5",
        )
    return n_splits


def _cv_test_size(where: str, kind: str, raw: dict) -> float | None:
    test_size = raw.get("test_size", 0.25 if kind == "shuffle" else None)
    if kind == "kfold" and "test_size" in raw:
        raise err(
            where,
            "cv.test_size",
            "KFold has no test_size (each fold holds 1/n_splits)",
            "drop test_size or use kind: shuffle",
        )
    if kind == "shuffle" and not (
        (isinstance(test_size, float) and 0 < test_size < 1)
        or (
            isinstance(test_size, int)
            and not isinstance(test_size, bool)
            and test_size > 0
        )
    ):
        raise err(
            where,
            "cv.test_size",
            f"expected a fraction in (0, 1) or a positive count, got {test_size!r}",
            "write e.g. test_size: 0.25",
        )
    return test_size

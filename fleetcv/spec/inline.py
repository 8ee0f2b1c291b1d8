"""A search given in Python (objects and arrays in memory) instead of a spec file.

Runs on the driver (a script or a notebook). `InlineSpec` answers what the
run lifecycle asks of a `SearchSpec` (the estimator to clone, the
candidates, scoring, refit, the folds' splitter and its plain description,
a digest, the run's name) for a search built by
`fleetcv.search_cv.FleetSearchCV` from an estimator object, a parameter grid
and X, y in memory. Its candidates are plain data: an estimator object in
the grid becomes its description (`runtime.build.describe`), so the
journal, resume and reuse work as for a spec file.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from fleetcv.spec.data import Dataset
from fleetcv.spec.scoring import ScoredSpec

#: What a run directory's spec.yml says for a search made in Python.
SOURCE = "python"


@dataclass(frozen=True)
class FixedSplits:
    """Folds drawn once (by the caller's cv), handed to the fold writer as they are."""

    splits: tuple

    def split(self, X=None, y=None, groups=None):
        """Yield the (train, test) index arrays."""
        yield from self.splits

    def get_n_splits(self, X=None, y=None, groups=None) -> int:
        """How many folds."""
        return len(self.splits)


@dataclass(frozen=True)
class FixedCV:
    """The `cv` of an InlineSpec: folds already drawn, described by their indices' digest."""

    folds: FixedSplits
    name: str

    @property
    def n_splits(self) -> int:
        """How many folds."""
        return self.folds.get_n_splits()

    def splitter(self) -> FixedSplits:
        """The folds, as a splitter."""
        return self.folds

    def as_dict(self) -> dict:
        """Plain-types form, part of the split digest: the cv's name and the folds' indices."""
        h = hashlib.sha256()
        for train, test in self.folds.splits:
            h.update(memoryview(train.astype("int64")).cast("B"))
            h.update(b"|")
            h.update(memoryview(test.astype("int64")).cast("B"))
            h.update(b"/")
        return {"class": self.name, "folds_sha256": h.hexdigest()}


@dataclass(frozen=True)
class ObjectEstimator:
    """The estimator of an InlineSpec: an object, cloned at every build."""

    obj: Any

    def build(self):
        """A fresh, unfitted clone."""
        from sklearn.base import clone

        return clone(self.obj)


@dataclass(frozen=True)
class InlineSpec(ScoredSpec):
    """A search from Python: what the lifecycle needs of a spec (see the module docstring)."""

    name: str
    estimator: ObjectEstimator
    cv: FixedCV
    data: Dataset
    candidate_list: tuple
    scoring: Any
    refit: bool | str
    error_score: float | str
    return_train_score: bool
    description: dict = field(default_factory=dict)
    path: str = "FleetSearchCV"
    requirements: tuple[str, ...] = ()
    code: tuple = ()
    raw: dict = field(default_factory=dict)
    task_timeout: float | None = None
    #: "grid", "random" or "halving" (a spec's `search:`).
    search: str = "grid"
    #: How the candidates were made: "grid" or "random" (drawn).
    flavour: str = "grid"
    #: The search kind's settings (a halving search's, as its spec section's).
    settings: dict | None = None
    #: Seeds the draw of candidates and a halving search's subsamples.
    random_state: int | None = None
    #: n -> n candidates drawn, described (a halving search's random
    #: flavour, whose number of candidates may depend on the data).
    draw: Callable[[int], list[dict]] | None = None
    # No budget (a class constant, not a field).
    budget = MappingProxyType({})

    def candidates(self, n_iter: int | None = None) -> list[dict]:
        """The candidates, described, in scikit-learn's order (`n_iter` of them drawn)."""
        if n_iter is not None and self.draw is not None:
            return self.draw(n_iter)
        return [dict(c) for c in self.candidate_list]

    def dataset(self) -> Dataset:
        """X, y, groups and fit params, as given to `fit`."""
        return self.data

    def digest(self) -> str:
        """Digest of what decides the results: the description of estimator, space and scoring."""
        blob = json.dumps(self.description, sort_keys=True, default=repr)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def write_copy(self, dest: Path) -> None:
        """The run's spec.yml: what was searched, for a person to read (not a spec file)."""
        import yaml

        text = yaml.safe_dump(
            json.loads(json.dumps(self.description, default=repr)), sort_keys=False
        )
        dest.write_text(
            f"# A search made in Python ({SOURCE}): FleetSearchCV(...).fit(X, y).\n"
            "# Resume it from Python: FleetSearchCV(..., resume=RUN_DIR).fit(X, y)\n"
            + text
        )

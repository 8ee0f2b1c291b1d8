"""Job kinds, registered in one place: what differs between a search and a curve.

Runs on the driver. `KINDS` maps a run's meta.json `kind` to its `Kind`
(see `fleetcv.kinds.base`); the lifecycle, the task runner, `invoke report`
and the reports look a kind up here and never test kind names themselves.
A new kind is its own module in this package plus one entry below.
"""

from __future__ import annotations

from fleetcv.kinds.asha import ASHA
from fleetcv.kinds.base import Kind
from fleetcv.kinds.curves import LEARNING_CURVE, VALIDATION_CURVE
from fleetcv.kinds.halving import HALVING
from fleetcv.kinds.optuna_search import OPTUNA
from fleetcv.kinds.search import SEARCH
from fleetcv.spec import ConfigError

#: Every kind, by its meta.json name.
KINDS: dict[str, Kind] = {
    k.name: k for k in (SEARCH, HALVING, ASHA, OPTUNA, LEARNING_CURVE, VALIDATION_CURVE)
}
#: The kinds `invoke search` runs and resumes.
SEARCH_KINDS: tuple[str, ...] = tuple(
    k.name for k in KINDS.values() if k.command == "search"
)


def kind_of(job: dict) -> Kind:
    """The kind of a job (meta.json); runs from before kinds existed are searches.

    Raises
    ------
    ConfigError
        For a kind this fleetcv does not know.
    """
    name = job.get("kind") or SEARCH.name
    try:
        return KINDS[name]
    except KeyError:
        raise ConfigError(
            f"meta.json: kind: {name!r} is not a kind of run this fleetcv knows "
            f"({', '.join(KINDS)}). Fix: open it with the fleetcv version that made it"
        ) from None


__all__ = ["KINDS", "SEARCH_KINDS", "Kind", "kind_of"]

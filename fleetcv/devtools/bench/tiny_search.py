"""`python -m fleetcv.devtools.bench.tiny_search PEER MODE N [ADDRESS]`: a peer's 2-fit search.

The fixed cost of a search, as a whole process, for the tools beside
fleetcv: import, connect to a running cluster (`warm`, at ADDRESS) or start
one and stop it (`cold`), fit GridSearchCV(DummyClassifier) on iris with one
candidate x 2 folds, exit. fleetcv's side is `invoke search` on the same
search (fleetcv/devtools/bench/fixed.py).
"""

from __future__ import annotations

import sys

from fleetcv.devtools.bench.peers import PEERS, started


def main(argv: list[str]) -> int:
    """Run the tiny search on `argv[0]` (a peer), `argv[1]` (warm/cold), N; exit status."""
    from sklearn.datasets import load_iris
    from sklearn.dummy import DummyClassifier
    from sklearn.model_selection import GridSearchCV, KFold

    peer, mode, n = argv[0], argv[1], int(argv[2])
    address = argv[3] if len(argv) > 3 else None
    X, y = load_iris(return_X_y=True)
    search = GridSearchCV(
        DummyClassifier(), {"strategy": ["prior"]}, cv=KFold(2), refit=False, n_jobs=n
    )
    if mode not in ("warm", "cold") or peer not in PEERS:
        raise SystemExit(f"usage: PEER (one of {PEERS}) warm|cold N [ADDRESS]")
    with started(peer, n, address=address) as backend, backend():
        search.fit(X, y)
    return 0 if len(search.cv_results_["params"]) == 1 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

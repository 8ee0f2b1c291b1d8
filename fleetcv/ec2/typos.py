"""Did-you-mean for a mistyped region or instance type.

Runs on the laptop; pure string work, no EC2 call. Used by the region check
(api.py) and the instance type check (catalog.py) to name the close matches
in their error messages.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def _typo_distance(a: str, b: str) -> int:
    """Edits (insert, delete, substitute, swap two neighbours) from a to b."""
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cur[j] = min(
                prev[j] + 1,
                cur[j - 1] + 1,
                prev[j - 1] + (a[i - 1] != b[j - 1]),
            )
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, prev = prev, cur
    return prev[-1]


def suggest(word: str, candidates: Iterable[str], n: int = 3) -> list[str]:
    """The candidates closest to a mistyped word, best first (at most 2 edits away).

    Counts a swap of two neighbouring letters as one edit, which is the
    commonest typo (us-esat-1) and which difflib ranks poorly.

    Parameters
    ----------
    word : str
        The mistyped word.
    candidates : iterable of str
        The words it may have meant.
    n : int
        At most this many suggestions.

    Returns
    -------
    list of str
        The close candidates, closest first; difflib's close matches when
        none is within 2 edits; empty when nothing is close.
    """
    scored = sorted((_typo_distance(word, c), c) for c in set(candidates))
    close = [c for d, c in scored if d <= 2][:n]
    return close or difflib.get_close_matches(word, sorted(set(candidates)), n=n)

"""How a search groups its tasks into ipyparallel messages (no cluster needed)."""

from __future__ import annotations

from sklearn.svm import SVC

from fleetcv.dispatch import runner as search_mod
from fleetcv.dispatch.search import DistributedSearch


class _View:
    """The one thing `TaskRunner.chunks` asks of a view: its engines."""

    targets = [0, 1]


def _search(n: int) -> DistributedSearch:
    return DistributedSearch(_View(), SVC(), candidates=[{}] * n)


def test_without_timings_every_task_is_its_own_message():
    pairs = [(c, k) for c in range(3) for k in range(2)]
    assert _search(3).runner.chunks(pairs, None) == [[p] for p in pairs]


def test_messages_shrink_to_single_tasks_as_the_work_runs_out():
    pairs = [(c, 0) for c in range(40)]
    chunks = _search(40).runner.chunks(pairs, dict.fromkeys(range(40), 0.25))
    assert [p for ch in chunks for p in ch] == pairs
    # 10 s of work on 2 engines: 2 s (8 tasks) while 4 x 2 s remain, then a
    # quarter of what remains, down to one task each.
    assert [len(ch) for ch in chunks] == [8, 8, 6, 4, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1]


def test_an_untimed_candidate_goes_alone_and_tiny_tasks_stop_at_max_chunk():
    many = [(c, 0) for c in range(400)]
    chunks = _search(400).runner.chunks(many, {c: 0.001 for c in range(1, 400)})
    assert chunks[0] == [(0, 0)] and len(chunks[1]) == search_mod.MAX_CHUNK
    assert [p for ch in chunks for p in ch] == many


def test_a_message_runs_its_tasks_in_fold_order():
    # Candidate 0 is the longest; its folds come first, as the caller sorts:
    # 1.3 s of work, so the first message takes up to 0.325 s, its 3 tasks.
    pairs = [(0, 2), (0, 0), (0, 1)] + [(1, k) for k in range(20)]
    chunks = _search(2).runner.chunks(pairs, {0: 0.1, 1: 0.05})
    assert chunks[0] == [(0, 0), (0, 1), (0, 2)]
    assert sorted(p for ch in chunks for p in ch) == sorted(pairs)

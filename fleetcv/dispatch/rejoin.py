"""A host that comes back rejoins: its lost engines are restarted while a run goes on.

Runs on the driver, as one of the task runner's watchers (`TaskRunner.health`,
called about once a second; it never blocks the wait loop: SSH goes in a
thread). A remote host whose engines the controller dropped (a reboot, a
network cut, a broken tunnel) is tried over SSH with backoff; once it
answers, the engines recorded there are stopped (they may live on, cut off,
no longer registered) and as many as it had are started again (with its
tunnel, when the cluster tunnels), so the running search uses them. Up to
`MAX_RESTARTS` per host and run. Every step goes to `rejoins.log` in the
controller's state folder, which `cluster.status` shows.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable

from fleetcv.dispatch.probes import engines_by_host
from fleetcv.spec import HostsConfig

#: Restarts of one host's engines per run, at most.
MAX_RESTARTS = 3
#: Seconds a host's engines must be missing before anything is tried (an
#: engine replaced after a task timeout registers within this).
GRACE = 15.0
#: Seconds between two tries of a host that does not answer (then the last, repeated).
BACKOFF = (5.0, 10.0, 20.0, 30.0)
#: The history of rejoins, in the controller's state folder.
LOG_FILE = "rejoins.log"


class HostRejoin:
    """The watcher; call it (no arguments) from the runner's wait loop.

    Parameters
    ----------
    cfg : HostsConfig
        The cluster.
    remote : module
        The backends (`fleetcv.backends.Backends`): `engine_status`, `stop_engines`,
        `start_engines`.
    client : ipyparallel.Client
        The run's client (its engine ids say who is registered).
    say : callable
        Gets one line per step (default: stderr).
    """

    def __init__(self, cfg: HostsConfig, remote, client, say: Callable | None = None):
        self.cfg, self.remote, self.client = cfg, remote, client
        self.say = say or (lambda line: print(line, file=sys.stderr, flush=True))
        self.hosts = {h.name: h for h in cfg.remote_hosts}
        by_host = engines_by_host(client) if self.hosts else {}
        #: host -> engine ids known to run there.
        self.engines = {h: set(by_host.get(h, ())) for h in self.hosts}
        #: host -> engines it had when the run started (what a rejoin restores).
        self.expected = {h: len(ids) for h, ids in self.engines.items() if ids}
        self._known = {e for ids in self.engines.values() for e in ids}
        self._state: dict[str, dict] = {}
        self._lock = threading.Lock()
        self._learning = False

    def __call__(self) -> None:
        """Look at the registered engines; start a rejoin of any host missing its own."""
        ids = set(self.client.ids)
        if ids - self._known and not self._learning:
            self._learning = True
            threading.Thread(target=self._learn, args=(ids,), daemon=True).start()
            return None  # which host the newcomers run on decides what is missing
        now = time.monotonic()
        for name, n in self.expected.items():
            with self._lock:
                alive = len(self.engines[name] & ids)
                st = self._state.setdefault(
                    name, {"restarts": 0, "tries": 0, "since": None, "busy": False}
                )
                if alive >= n:
                    st["since"] = None
                    continue
                if st["since"] is None:
                    st["since"], st["next"] = now, now + GRACE
                if st["busy"] or now < st["next"] or st["restarts"] >= MAX_RESTARTS:
                    continue
                st["busy"] = True
            threading.Thread(
                target=self._rejoin, args=(name, n - alive, alive == 0), daemon=True
            ).start()
        return None

    def _learn(self, ids: set) -> None:
        """Find the host of engines registered since the start (replacements)."""
        try:
            new = ids - self._known
            by_host = engines_by_host(self.client, ids=sorted(new), timeout=30.0)
            with self._lock:
                for host, eids in by_host.items():
                    if host in self.engines:
                        self.engines[host].update(eids)
                self._known |= {e for eids in by_host.values() for e in eids}
        finally:
            self._learning = False

    def _rejoin(self, name: str, missing: int, whole_host: bool) -> None:
        st = self._state[name]
        host = self.hosts[name]
        try:
            res = self.remote.engine_status(self.cfg, [host])
            if res.failed:
                st["tries"] += 1
                wait = BACKOFF[min(st["tries"], len(BACKOFF)) - 1]
                st["next"] = time.monotonic() + wait
                if st["tries"] == 1:
                    self._log(
                        f"{name}: {missing} engine(s) lost; the host does not answer "
                        f"({res.failed[name]}); trying again every {BACKOFF[0]:g}-"
                        f"{BACKOFF[-1]:g} s"
                    )
                return
            if whole_host:
                # Its engines may live on, cut off and no longer registered.
                self.remote.stop_engines(self.cfg, [host])
            started = self.remote.start_engines(self.cfg, [host], count=missing)
            st["restarts"] += 1
            st["tries"], st["since"] = 0, None
            if started.failed:
                st["next"] = time.monotonic() + BACKOFF[-1]
                self._log(
                    f"{name}: answers again, but starting engines failed: "
                    f"{started.failed[name]} (restart {st['restarts']} of {MAX_RESTARTS})"
                )
                return
            self._log(
                f"{name}: answers again: {'its old engines stopped, ' if whole_host else ''}"
                f"{missing} engine(s) started (restart {st['restarts']} of {MAX_RESTARTS})"
            )
        except Exception as exc:  # noqa: BLE001 - a failed rejoin is reported; the run goes on
            st["next"] = time.monotonic() + BACKOFF[-1]
            self._log(f"{name}: rejoining failed: {type(exc).__name__}: {exc}")
        finally:
            st["busy"] = False

    def _log(self, line: str) -> None:
        self.say(line)
        path = self.cfg.controller.state_path / LOG_FILE
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        try:
            with open(path, "a", encoding="utf-8") as f:
                f.write(f"{stamp} {line}\n")
        except OSError:
            pass  # the history is a convenience: the run goes on


def history(cfg: HostsConfig, last: int = 10) -> list[str]:
    """The last `last` lines of the rejoin history (for cluster.status)."""
    path = cfg.controller.state_path / LOG_FILE
    try:
        return path.read_text(encoding="utf-8").splitlines()[-last:]
    except OSError:
        return []

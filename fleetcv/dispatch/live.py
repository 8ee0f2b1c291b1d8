"""What a running job shows its user: a progress bar and, every few seconds, its report.

Runs on the driver. In a terminal the bar is tqdm's on stderr and the report
(the notebook's top-k table) is written under it every `REPORT_EVERY`
seconds, as lines that scroll. In a Jupyter kernel the report is one output
of the cell, updated in place (IPython's display with a display_id), and
refreshed more often since it replaces itself; the bar is tqdm.auto's (a
widget with ipywidgets, else the text bar, which Jupyter redraws in place).
"""

from __future__ import annotations

import sys
import time
import warnings
from collections.abc import Callable

#: Seconds between two reports written under a terminal's bar.
REPORT_EVERY = 10.0
#: Seconds between two refreshes of a notebook's report, which replaces itself.
NOTEBOOK_REPORT_EVERY = 2.0


def in_kernel() -> bool:
    """Whether this process is a Jupyter kernel (IPython is never imported to ask)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


class LiveView:
    """A progress bar and a periodic report for one `wait`.

    Parameters
    ----------
    total, initial : int
        Tasks in all, and already done.
    desc : str
        The bar's label.
    report : callable
        The job's text report, asked when it is shown.
    every : float, optional
        Seconds between two reports (default: per terminal or notebook).
    """

    def __init__(
        self,
        total: int,
        initial: int,
        desc: str,
        report: Callable[[], str],
        every: float | None = None,
    ) -> None:
        self.report = report
        self.kernel = in_kernel()
        default = NOTEBOOK_REPORT_EVERY if self.kernel else REPORT_EVERY
        self.every = default if every is None else every
        self.bar = _progress_bar(total, initial, desc)
        self.last = time.monotonic()
        self.handle = None
        if self.kernel:
            from IPython.display import Pretty, display

            self.handle = display(Pretty(report()), display_id=True)

    def update(self, done: int, postfix: Callable[[], str]) -> None:
        """Move the bar to `done`; show the report when it is due."""
        if done != self.bar.n:
            self.bar.set_postfix_str(postfix(), refresh=False)
            self.bar.update(done - self.bar.n)
        if time.monotonic() - self.last >= self.every:
            self._show()
            self.last = time.monotonic()

    def close(self, done: int) -> None:
        """The bar at `done`, closed."""
        self.bar.n = done
        self.bar.close()

    def final(self) -> None:
        """A notebook's report in the job's final state ("Finished: 100% ...")."""
        if self.handle is not None:
            self._show()

    def _show(self) -> None:
        if self.handle is not None:
            from IPython.display import Pretty

            self.handle.update(Pretty(self.report()))
        else:
            self.bar.write(self.report() + "\n")


def _progress_bar(total: int, initial: int, desc: str):
    # tqdm is a laptop-side package: the Python API without a bar needs none.
    with warnings.catch_warnings():
        # Without ipywidgets tqdm.auto warns in a kernel and uses the text bar,
        # which is what is wanted; the warning would land in the user's cell.
        warnings.simplefilter("ignore")
        from tqdm.auto import tqdm

    return tqdm(
        total=total,
        initial=initial,
        unit="fit",
        dynamic_ncols=True,
        file=sys.stderr,
        desc=desc,
        mininterval=0.2,
    )

"""The machine the bench ran on: CPUs, versions, and each side's BLAS thread pools.

Runs on the laptop; `pools` is also sent to one engine and one loky worker,
so the figures show what threadpoolctl sees inside each side's workers.
"""

from __future__ import annotations

import os
import platform
import sys
import time

import numpy as np


def environment(client, n: int) -> dict:
    """Machine, versions, and threadpoolctl's view of the driver, an engine and a loky worker.

    Parameters
    ----------
    client : ipyparallel.Client
        Connected to the bench's engines.
    n : int
        Engines, and loky workers.

    Returns
    -------
    dict
        `date`, `machine`, `cpus`, `python`, `versions`, `threads`, `engines`.
    """
    import ipyparallel
    import joblib
    import sklearn
    from joblib import Parallel, delayed
    from threadpoolctl import threadpool_info

    def pools():
        # Sent by value to an engine and a loky worker: imports inside.
        from threadpoolctl import threadpool_info

        return [
            {
                k: p.get(k)
                for k in ("user_api", "internal_api", "num_threads", "version")
            }
            for p in threadpool_info()
        ]

    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "versions": {
            "numpy": np.__version__,
            "scikit-learn": sklearn.__version__,
            "joblib": joblib.__version__,
            "ipyparallel": ipyparallel.__version__,
        },
        "threads": {
            "driver": [
                {k: p.get(k) for k in ("user_api", "internal_api", "num_threads")}
                for p in threadpool_info()
            ],
            "fleetcv_engine": client[client.ids[0]].apply_sync(pools),
            "loky_worker": Parallel(n_jobs=n)(delayed(pools)() for _ in range(1))[0],
        },
        "engines": n,
    }

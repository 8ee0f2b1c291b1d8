"""Configuration: hosts.yml and search specs, validated into dataclasses, and data loading.

Runs on the driver (the laptop), and in fabfile.py for the hosts' settings.
The one loader of configuration: everything downstream receives these
validated dataclasses, never raw YAML.

- `fleetcv.spec.hosts`: hosts.yml (`load_hosts`, `HostsConfig`).
- `fleetcv.spec.search`: search specs (`load_search_spec`, `SearchSpec`),
  with `fleetcv.spec.estimator` for the estimator section and
  `fleetcv.spec.expr` for value expressions (`logspace(...)`, `grid_values`).
- `fleetcv.spec.source`: the `data` and `fit_params` sections (`DataSpec`);
  `fleetcv.spec.scoring`: `scoring` and `refit`.
- `fleetcv.spec.data`: the spec's data set (`load_dataset`, `load_data`).
- `fleetcv.spec.common`: what the loaders share (YAML, keys, messages).
"""

from fleetcv.errors import ConfigError
from fleetcv.spec.data import Dataset, load_data, load_dataset
from fleetcv.spec.estimator import EstimatorSpec
from fleetcv.spec.expr import DIST_FUNCS, GRID_FUNCS, Distribution, grid_values
from fleetcv.spec.hosts import (
    DEFAULT_HOSTS,
    DEFAULT_PORTS,
    DEFAULT_WORKDIR,
    HOSTS_ENV,
    MIN_PORTS,
    ControllerSpec,
    HostsConfig,
    HostSpec,
    load_hosts,
    parse_hosts,
    resolve_hosts_file,
)
from fleetcv.spec.search import CVSpec, SearchSpec, load_search_spec
from fleetcv.spec.source import DataSpec

__all__ = [
    "DEFAULT_HOSTS",
    "DEFAULT_PORTS",
    "DEFAULT_WORKDIR",
    "DIST_FUNCS",
    "GRID_FUNCS",
    "HOSTS_ENV",
    "MIN_PORTS",
    "CVSpec",
    "ConfigError",
    "ControllerSpec",
    "DataSpec",
    "Dataset",
    "Distribution",
    "EstimatorSpec",
    "HostSpec",
    "HostsConfig",
    "SearchSpec",
    "grid_values",
    "load_data",
    "load_dataset",
    "load_hosts",
    "load_search_spec",
    "parse_hosts",
    "resolve_hosts_file",
]

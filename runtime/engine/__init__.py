"""What runs on the hosts: the engine launcher, the worker, the record schema, the probe.

The only part of fleetcv that an engine host needs. It imports nothing from
the rest of `runtime` (tests/test_imports.py checks it), so the driver's
modules (dispatch, reports, EC2) never load on an engine.
"""

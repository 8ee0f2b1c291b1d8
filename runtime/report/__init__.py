"""Reports of a run directory: PNG plots and report.html.

Runs on the driver (or anywhere a run directory is): reads the run directory
through `runtime.rundir`, never the cluster.
"""

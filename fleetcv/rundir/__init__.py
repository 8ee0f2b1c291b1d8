"""The run directory: journal, meta.json, status, resume, reuse and results.

Runs on the driver. Plain files only: no cluster, no ipyparallel, so a run
can be read, rebuilt and reported anywhere.
"""

"""The driver: controller and engine sets, the task runner, jobs, the run lifecycle.

Runs on the laptop (or a notebook, or a head node). Talks to the engines
through ipyparallel only; anything that touches a host other than this
machine goes through its backend (`fleetcv.backends`), handed in as `remote`.
"""

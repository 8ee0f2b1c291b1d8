"""The driver: controller and engine sets, the task runner, jobs, the run lifecycle.

Runs on the laptop (or a notebook, or a head node). Talks to the engines
through ipyparallel only; anything that touches a remote host is a `remote`
object handed in by the caller (fabfile.py from the command line).
"""

"""Developer tools: the benchmark and the network-namespace test cluster.

Runs on a developer's machine. Never imported by what a user runs (the
`bench` and `testcluster.*` tasks import it when they are called).
"""

"""Reports of a run directory: PNG plots and report.html.

Runs on the driver (or anywhere a run directory is): reads the run directory
through `fleetcv.rundir` and its kind through `fleetcv.kinds`, never the
cluster. `plots` reads a run and writes every PNG (from `search_plots`,
`curve_plots` and `memory`, all drawn on `figure`); `html` writes the page.
"""

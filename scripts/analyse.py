"""Snakemake entry point of rule analyse (thin: all logic in magtwin.analysis.summary)."""

from magtwin.analysis.summary import analyse_sweep, write_summary
from magtwin.rulescript import rule_logging

with rule_logging(snakemake):  # noqa: F821 (injected by Snakemake)
    sm = snakemake  # noqa: F821
    points = sm.params.points
    summary = analyse_sweep(
        dict(zip(points, sm.input.curves)),
        point_params=points,
        mesh_path=sm.input.mesh,
        demag_factor=sm.params.demag_factor,
        measured_path=sm.input.measured[0] if sm.input.measured else None,
        measured_units=sm.params.measured_units,
        measured_demag_factor=sm.params.measured_demag_factor,
        n_grid=sm.params.fit_grid_points,
        min_coverage=sm.params.fit_min_coverage,
    )
    write_summary(summary, sm.output.csv, sm.output.h5, parameters=dict(sm.params.items()),
                  inputs=list(sm.input.curves) + list(sm.input.measured))

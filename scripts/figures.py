"""Snakemake entry point of rule figures (thin: all logic in magtwin.analysis.figures)."""

from pathlib import Path

from magtwin.analysis.figures import make_all_figures
from magtwin.rulescript import rule_logging

with rule_logging(snakemake):  # noqa: F821 (injected by Snakemake)
    sm = snakemake  # noqa: F821
    make_all_figures(sm.input.summary, Path(sm.output.curves).parent, mesh_path=sm.input.mesh,
                     render_curve=sm.input.render_curve, n_snapshots=sm.params.render_snapshots)

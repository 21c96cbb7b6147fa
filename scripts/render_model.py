"""Snakemake entry point of rule render_model (thin: all logic in magtwin.mesh.render)."""

from magtwin.mesh.render import run_render
from magtwin.rulescript import rule_logging

with rule_logging(snakemake):  # noqa: F821 (injected by Snakemake)
    sm = snakemake  # noqa: F821
    run_render(sm.input[0], sm.output[0])

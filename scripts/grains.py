"""Snakemake entry point of rule grains (thin: all logic in magtwin.reconstruct.grains)."""

from magtwin.rulescript import rule_logging
from magtwin.reconstruct.grains import run_grains

with rule_logging(snakemake):  # noqa: F821 (injected by Snakemake)
    sm = snakemake  # noqa: F821
    run_grains(sm.input.segment, sm.output[0], dict(sm.params.grains), image_path=sm.input.image)

"""Snakemake entry point of rule grains (thin: all logic in magtwin.reconstruct.grains)."""

from magtwin.rulescript import rule_logging
from magtwin.reconstruct.grains import run_grains

with rule_logging(snakemake):  # noqa: F821 (injected by Snakemake)
    run_grains(snakemake.input[0], snakemake.output[0], dict(snakemake.params.grains))  # noqa: F821

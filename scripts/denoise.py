"""Snakemake entry point of rule denoise (thin: all logic in magtwin.imaging.denoise)."""

from magtwin.rulescript import rule_logging
from magtwin.imaging.denoise import run_denoise

with rule_logging(snakemake):  # noqa: F821 (injected by Snakemake)
    run_denoise(snakemake.input[0], snakemake.output[0], dict(snakemake.params.denoise))  # noqa: F821

"""Snakemake entry point of rule align (thin: all logic in magtwin.imaging.align)."""

from magtwin.rulescript import rule_logging
from magtwin.imaging.align import run_align

with rule_logging(snakemake):  # noqa: F821 (injected by Snakemake)
    run_align(snakemake.input[0], snakemake.output[0], dict(snakemake.params.align))  # noqa: F821

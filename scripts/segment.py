"""Snakemake entry point of rule segment (thin: all logic in magtwin.reconstruct.segment)."""

from magtwin.rulescript import rule_logging
from magtwin.reconstruct.segment import run_segment

with rule_logging(snakemake):  # noqa: F821 (injected by Snakemake)
    run_segment(snakemake.input[0], snakemake.output[0], dict(snakemake.params.segment))  # noqa: F821

"""Snakemake entry point of rule segment (thin: all logic in magtwin.reconstruct.segment)."""

from magtwin.rulescript import rule_logging
from magtwin.reconstruct.segment import run_segment

params = dict(snakemake.params.segment)  # noqa: F821 (injected by Snakemake)
params["workers"] = params.get("workers") or snakemake.threads  # noqa: F821 (0 = the rule's threads)

with rule_logging(snakemake):  # noqa: F821
    run_segment(snakemake.input[0], snakemake.output[0], params)  # noqa: F821

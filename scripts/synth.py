"""Snakemake entry point of rule synth (thin: all logic in magtwin.synth)."""

from magtwin.rulescript import rule_logging
from magtwin.synth import generate_files

with rule_logging(snakemake):  # noqa: F821 (injected by Snakemake)
    sm = snakemake  # noqa: F821
    generate_files(dict(sm.params.synth), sm.output.stack, sm.output.truth, source="config")

"""Snakemake entry point of rule model (thin: all logic in magtwin.model.build)."""

from magtwin.model.build import run_model
from magtwin.rulescript import rule_logging

with rule_logging(snakemake):  # noqa: F821 (injected by Snakemake)
    sm = snakemake  # noqa: F821
    run_model(sm.input.labels, sm.output[0], dict(sm.params.model))

"""Snakemake entry point of rule simulate_inputs (thin: logic in magtwin.micromag.pointconfig)."""

from magtwin.micromag.pointconfig import write_point_inputs
from magtwin.rulescript import rule_logging

with rule_logging(snakemake):  # noqa: F821 (injected by Snakemake)
    write_point_inputs(
        snakemake.params.materials,  # noqa: F821
        snakemake.params.simulate,  # noqa: F821
        snakemake.params.point,  # noqa: F821
        snakemake.output.materials,  # noqa: F821
        snakemake.output.settings,  # noqa: F821
    )

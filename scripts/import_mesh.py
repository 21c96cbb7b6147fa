"""Snakemake entry point of rule import_mesh (thin: all logic in magtwin.mesh.importers)."""

from magtwin.mesh.importers import run_import
from magtwin.rulescript import rule_logging

with rule_logging(snakemake):  # noqa: F821 (injected by Snakemake)
    sm = snakemake  # noqa: F821
    run_import(sm.input[0], sm.output.mesh, dict(sm.params.mesh_import))

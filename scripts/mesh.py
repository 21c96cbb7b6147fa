"""Snakemake entry point of rule mesh (thin: all logic in magtwin.mesh.build)."""

from magtwin.mesh.build import run_mesh
from magtwin.rulescript import rule_logging

with rule_logging(snakemake):  # noqa: F821 (injected by Snakemake)
    sm = snakemake  # noqa: F821
    prm = dict(sm.params.mesh)
    # the rule declares the exports as outputs: always write them
    prm.update(export_xdmf=True, export_vtu=True)
    run_mesh(sm.input[0], sm.output.mesh, prm, sm.output.xdmf, sm.output.vtu)

"""Snakemake entry point of rule ingest (thin: all logic in magtwin.imaging.ingest)."""

from magtwin.rulescript import rule_logging
from magtwin.imaging.ingest import ingest

with rule_logging(snakemake):  # noqa: F821 (injected by Snakemake)
    ingest(
        snakemake.input.stack,  # noqa: F821
        snakemake.output[0],  # noqa: F821
        voxel_size_nm=snakemake.params.voxel_size_nm,  # noqa: F821
        slice_thickness_nm=snakemake.params.slice_thickness_nm,  # noqa: F821
        crop_px=snakemake.params.crop_px,  # noqa: F821
    )

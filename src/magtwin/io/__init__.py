"""Input/output at the edges: HDF5 artefacts, TIFF stacks, meshes."""

from magtwin.io.artefact import (
    SCHEMA_VERSION,
    ArtefactWriter,
    open_artefact,
    file_digest,
)

__all__ = ["SCHEMA_VERSION", "ArtefactWriter", "open_artefact", "file_digest"]

"""Export a :class:`~magtwin.io.mesh_artefact.MeshData` for ParaView: XDMF+HDF5 and VTU."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from magtwin.errors import MagtwinError
from magtwin.io.mesh_artefact import MeshData


def _meshio_mesh(mesh: MeshData):
    import meshio

    kind_code = {"grain": 0, "gb": 1, "tj": 2}
    kinds = mesh.region_kind()
    kind = np.array([kind_code[kinds.get(int(r), "grain")] for r in mesh.region_id], np.int32)
    return meshio.Mesh(np.asarray(mesh.points_nm, float), [("tetra", np.asarray(mesh.tetrahedra, np.int64))],
                       cell_data={"region_id": [np.asarray(mesh.region_id, np.int32)], "region_kind": [kind]})


def export_mesh(mesh: MeshData, path: str | os.PathLike) -> None:
    """Write ``mesh`` as ``.xdmf`` (with its ``.h5`` heavy data) or ``.vtu`` (by suffix),
    atomically (temporary name, then rename); cell data ``region_id`` and ``region_kind``
    (0 grain, 1 GB, 2 TJ); coordinates in nm."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    m = _meshio_mesh(mesh)
    tmp = p.with_name(f".{p.stem}.tmp-{os.getpid()}{p.suffix}")
    try:
        m.write(tmp)
        if p.suffix == ".xdmf":
            # meshio names the heavy-data file after the xdmf; keep the pair consistent
            heavy_tmp = tmp.with_suffix(".h5")
            heavy = p.with_suffix(".h5")
            text = tmp.read_text().replace(heavy_tmp.name, heavy.name)
            os.replace(heavy_tmp, heavy)
            tmp.write_text(text)
        os.replace(tmp, p)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise MagtwinError(f"cannot write mesh export ({exc})", p) from None

"""Off-screen picture of the grain model with its GB and TJ network (pyvista/VTK).

Grains are drawn as an exploded-free cut-away: all grain regions in muted colours, the GB
regions semi-transparent and the TJ regions opaque red, like the reconstructed-model figure
of Bolyachkin et al. (2024).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from magtwin.errors import MagtwinError
from magtwin.io.mesh_artefact import MeshData


def render_mesh(mesh: MeshData, png_path: str | os.PathLike, window_size=(1200, 900)) -> None:
    """Write a PNG of ``mesh`` (grains coloured by region, GB translucent, TJ red)."""
    import warnings

    import pyvista as pv

    warnings.filterwarnings("ignore", module="pyvista")
    pv.OFF_SCREEN = True
    kinds = mesh.region_kind()
    cells = np.hstack([np.full((len(mesh.tetrahedra), 1), 4), mesh.tetrahedra]).ravel()
    grid = pv.UnstructuredGrid(cells, np.full(len(mesh.tetrahedra), 10, np.uint8), mesh.points_nm)
    grid.cell_data["region_id"] = mesh.region_id
    kind_code = np.array([{"grain": 0, "gb": 1, "tj": 2}[kinds[int(r)]] for r in mesh.region_id])
    grid.cell_data["kind"] = kind_code
    pl = pv.Plotter(off_screen=True, window_size=list(window_size))
    grains = grid.extract_cells(np.flatnonzero(kind_code == 0))
    if grains.n_cells:
        rng = np.random.default_rng(0)
        ids = np.unique(grains.cell_data["region_id"])
        lut = {int(r): rng.uniform(0.35, 0.85) for r in ids}
        grains.cell_data["shade"] = np.array([lut[int(r)] for r in grains.cell_data["region_id"]])
        pl.add_mesh(grains.extract_surface(algorithm="dataset_surface"), scalars="shade", cmap="Greys", show_scalar_bar=False,
                    clim=(0, 1), opacity=1.0)
    gb = grid.extract_cells(np.flatnonzero(kind_code == 1))
    if gb.n_cells:
        pl.add_mesh(gb.extract_surface(algorithm="dataset_surface"), color="gold", opacity=0.55)
    tj = grid.extract_cells(np.flatnonzero(kind_code == 2))
    if tj.n_cells:
        pl.add_mesh(tj.extract_surface(algorithm="dataset_surface"), color="firebrick", opacity=1.0)
    pl.add_axes()
    pl.add_text("grains (grey), GB (gold), TJ (red); nm", font_size=10)
    pl.camera_position = "iso"
    p = Path(png_path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.stem}.tmp-{os.getpid()}.png")
    try:
        pl.screenshot(str(tmp))
        os.replace(tmp, p)
    except Exception as exc:
        tmp.unlink(missing_ok=True)
        raise MagtwinError(f"cannot render the model off-screen ({exc})", p) from None
    finally:
        pl.close()


def run_render(mesh_path, png_path) -> None:
    """Render the mesh artefact ``mesh_path`` to ``png_path``."""
    from magtwin.io.mesh_artefact import read_mesh_artefact

    render_mesh(read_mesh_artefact(mesh_path), png_path)

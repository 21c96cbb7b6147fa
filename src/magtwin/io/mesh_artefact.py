"""The mesh artefact (``07_mesh.h5``): the contract between meshing and the solver.

Layout
------
``/mesh/points_nm``     (N, 3) float64   node coordinates in nm (x, y, z)
``/mesh/tetrahedra``    (M, 4) int64     node indices, positively oriented (det > 0)
``/mesh/region_id``     (M,)   int32     region of each element (key into the region table)
root attribute ``regions_json``: the region table, a JSON list of objects
    ``{"id": int, "kind": "grain" | "gb" | "tj", "grains": [grain ids it touches],
       "volume_nm3": float, ...}``
    with optional kind-specific keys: gb ``normal`` (unit vector) and
    ``angle_to_axis_deg``; tj ``tj_class`` ("thin" | "thick") and ``size_nm``;
    grain ``easy_axis`` (unit vector, when known, e.g. from the synthetic ground truth).
root attribute ``alignment_axis``: (3,) unit vector of the magnet's alignment axis.

The magnet only: the solver adds whatever it needs for the open boundary (air shell).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from magtwin.errors import InputError
from magtwin.io.artefact import ArtefactWriter, open_artefact

REGION_KINDS = ("grain", "gb", "tj")


@dataclass
class MeshData:
    """A multi-region tetrahedral mesh of the magnet.

    Attributes
    ----------
    points_nm : (N, 3) float64, node coordinates in nm
    tetrahedra : (M, 4) int64, node indices per element
    region_id : (M,) int32, region of each element
    regions : list of region-table dicts (see module docstring)
    alignment_axis : (3,) float64 unit vector
    """

    points_nm: np.ndarray
    tetrahedra: np.ndarray
    region_id: np.ndarray
    regions: list[dict] = field(default_factory=list)
    alignment_axis: np.ndarray = field(default_factory=lambda: np.array([0.0, 0.0, 1.0]))

    def region_kind(self) -> dict[int, str]:
        return {int(r["id"]): str(r["kind"]) for r in self.regions}


def tetrahedron_volumes(points: np.ndarray, tets: np.ndarray) -> np.ndarray:
    """Signed volumes (same units³ as ``points``) of tetrahedra ``tets`` (M, 4)."""
    p = points[tets]
    return np.einsum("ij,ij->i", np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]), p[:, 3] - p[:, 0]) / 6.0


def check_mesh(mesh: MeshData, source: str | os.PathLike | None = None, rel_tol: float = 1e-12) -> None:
    """Raise :class:`InputError` naming ``source`` if the mesh is unusable.

    Checks shapes, index range, inverted or degenerate elements (|V| below ``rel_tol`` times
    the mean volume) and that every element's region is in the region table.
    """
    pts, tets, rid = mesh.points_nm, mesh.tetrahedra, mesh.region_id
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise InputError(f"points must have shape (N, 3), got {pts.shape}", source)
    if tets.ndim != 2 or tets.shape[1] != 4 or len(tets) == 0:
        raise InputError(f"tetrahedra must have shape (M, 4) with M > 0, got {tets.shape}", source)
    if rid.shape != (len(tets),):
        raise InputError(f"region_id must have shape ({len(tets)},), got {rid.shape}", source)
    if tets.min() < 0 or tets.max() >= len(pts):
        raise InputError("tetrahedra refer to nodes that do not exist", source)
    if not np.all(np.isfinite(pts)):
        raise InputError("node coordinates contain NaN or infinity", source)
    vol = tetrahedron_volumes(pts, tets)
    scale = np.abs(vol).mean()
    bad_inv = np.flatnonzero(vol < -rel_tol * scale)
    bad_zero = np.flatnonzero(np.abs(vol) <= rel_tol * scale)
    if len(bad_inv):
        raise InputError(f"{len(bad_inv)} inverted elements (negative volume), first: element {bad_inv[0]}", source)
    if len(bad_zero):
        raise InputError(f"{len(bad_zero)} degenerate elements (zero volume), first: element {bad_zero[0]}", source)
    known = {int(r["id"]) for r in mesh.regions}
    if known:
        missing = sorted(set(np.unique(rid).tolist()) - known)
        if missing:
            raise InputError(f"elements in regions {missing[:5]} that are not in the region table", source)
    for r in mesh.regions:
        if r.get("kind") not in REGION_KINDS:
            raise InputError(f"region {r.get('id')} has kind {r.get('kind')!r}, expected one of {REGION_KINDS}", source)


def write_mesh_artefact(
    path: str | os.PathLike,
    mesh: MeshData,
    parameters: Mapping[str, Any] | None = None,
    inputs: Iterable[str | os.PathLike] = (),
    extra: Mapping[str, Any] | None = None,
) -> None:
    """Write ``mesh`` as a ``mesh`` stage artefact (atomically). ``extra`` values are stored
    as JSON root attributes (e.g. ``statistics_json``)."""
    check_mesh(mesh, path)
    with ArtefactWriter(path, "mesh", parameters, inputs) as w:
        g = w.h5.create_group("mesh")
        g.create_dataset("points_nm", data=np.asarray(mesh.points_nm, np.float64), compression="gzip")
        g.create_dataset("tetrahedra", data=np.asarray(mesh.tetrahedra, np.int64), compression="gzip")
        g.create_dataset("region_id", data=np.asarray(mesh.region_id, np.int32), compression="gzip")
        w.write_json("regions_json", mesh.regions)
        w.h5.attrs["alignment_axis"] = np.asarray(mesh.alignment_axis, np.float64)
        for k, v in (extra or {}).items():
            w.write_json(k, v)


def read_mesh_artefact(path: str | os.PathLike) -> MeshData:
    """Read and check a mesh artefact; raises ArtefactError/InputError naming the file."""
    with open_artefact(path, "mesh") as f:
        mesh = MeshData(
            points_nm=f["mesh/points_nm"][...],
            tetrahedra=f["mesh/tetrahedra"][...].astype(np.int64),
            region_id=f["mesh/region_id"][...].astype(np.int32),
            regions=json.loads(f.attrs["regions_json"]),
            alignment_axis=np.asarray(f.attrs.get("alignment_axis", (0.0, 0.0, 1.0)), np.float64),
        )
    check_mesh(mesh, path)
    return mesh

"""Output: the ``simulate`` stage artefact (curve + magnetisation snapshots) and an XDMF file
beside it for ParaView.

Layout (``OUT.h5``)::

    /curve/field_T (K,)  /curve/J_T (K, 3)  /curve/J_along_field_T (K,)
    /curve/energy_J (K, n_terms) attr terms   /curve/iterations (K,)  /curve/converged (K,)
    /curve/max_torque (K,)  (T)   /curve/jumps_T (J, 2) field intervals bracketing each jump
    /mesh/points_nm (N, 3)  /mesh/tetrahedra (M, 4)  /mesh/region_id (M,)
    /snapshots/<k>/m (N, 3), attr field_T, point (= k, index into /curve)
    root attrs: field_angle_deg, field_direction (3,), Js_mean_T, magnet_volume_nm3,
                parameters_json, all_converged
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from magtwin.io.artefact import ArtefactWriter
from magtwin.io.mesh_artefact import MeshData


def write_curve_artefact(path: str | os.PathLike, curve, mesh: MeshData, inputs=(),
                         extra_parameters: dict | None = None) -> Path:
    """Write ``curve`` atomically to ``path`` and the XDMF beside it; returns the XDMF path."""
    path = Path(path)
    params = {**curve.parameters, **(extra_parameters or {})}
    with ArtefactWriter(path, "simulate", params, inputs) as w:
        w.write("curve/field_T", curve.field_T)
        w.write("curve/J_T", curve.J_T)
        w.write("curve/J_along_field_T", curve.J_along_field_T)
        w.write("curve/energy_J", curve.energy_J, attrs={"terms": list(curve.terms)})
        w.write("curve/iterations", curve.iterations)
        w.write("curve/converged", curve.converged)
        w.write("curve/max_torque", curve.max_torque, attrs={"units": "T"})
        w.write("curve/jumps_T", np.asarray(curve.jumps, float).reshape(-1, 2))
        w.write("mesh/points_nm", mesh.points_nm)
        w.write("mesh/tetrahedra", mesh.tetrahedra)
        w.write("mesh/region_id", mesh.region_id)
        for k, m in sorted(curve.snapshots.items()):
            w.write(f"snapshots/{k}/m", np.asarray(m, np.float64),
                    attrs={"field_T": float(curve.field_T[k]), "point": int(k)})
        a = w.h5.attrs
        a["field_angle_deg"] = float(curve.field_angle_deg)
        a["field_direction"] = np.asarray(curve.field_direction, float)
        a["Js_mean_T"] = float(curve.Js_mean_T)
        a["magnet_volume_nm3"] = float(curve.magnet_volume_nm3)
        a["all_converged"] = bool(np.all(curve.converged))
    xdmf = path.with_suffix(".xdmf")
    write_xdmf(xdmf, path.name, len(mesh.points_nm), len(mesh.tetrahedra),
               {k: float(curve.field_T[k]) for k in curve.snapshots})
    return xdmf


def write_xdmf(xdmf: Path, h5_name: str, n_points: int, n_tets: int, snaps: dict[int, float]) -> None:
    """A temporal collection (time = applied field in T) of the snapshots in ``h5_name``."""
    grids = []
    for k, b in sorted(snaps.items()):
        grids.append(f"""      <Grid Name="point_{k}" GridType="Uniform">
        <Time Value="{b:.6g}"/>
        <Topology TopologyType="Tetrahedron" NumberOfElements="{n_tets}">
          <DataItem Dimensions="{n_tets} 4" NumberType="Int" Precision="8" Format="HDF">{h5_name}:/mesh/tetrahedra</DataItem>
        </Topology>
        <Geometry GeometryType="XYZ">
          <DataItem Dimensions="{n_points} 3" NumberType="Float" Precision="8" Format="HDF">{h5_name}:/mesh/points_nm</DataItem>
        </Geometry>
        <Attribute Name="m" AttributeType="Vector" Center="Node">
          <DataItem Dimensions="{n_points} 3" NumberType="Float" Precision="8" Format="HDF">{h5_name}:/snapshots/{k}/m</DataItem>
        </Attribute>
        <Attribute Name="region_id" AttributeType="Scalar" Center="Cell">
          <DataItem Dimensions="{n_tets}" NumberType="Int" Precision="4" Format="HDF">{h5_name}:/mesh/region_id</DataItem>
        </Attribute>
      </Grid>""")
    text = ('<?xml version="1.0" ?>\n<Xdmf Version="3.0">\n  <Domain>\n'
            '    <Grid Name="magnetisation" GridType="Collection" CollectionType="Temporal">\n'
            + "\n".join(grids) + "\n    </Grid>\n  </Domain>\n</Xdmf>\n")
    tmp = xdmf.with_name(xdmf.name + f".tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, xdmf)

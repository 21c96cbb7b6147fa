"""File-level entry of ``magtwin dynamics``: read inputs, integrate, write the artefact.

Layout of the ``dynamics`` artefact (``OUT.h5``)::

    /timeseries/t_ns (K,)  /timeseries/m_mean (K, 3) (volume average of m)
    /timeseries/J_T (K, 3) (volume average of Js m)  /timeseries/field_T (K, 3)
    /timeseries/energy_J (K, n_terms) attr terms     /timeseries/max_torque_T (K,)
    /mesh/points_nm (N, 3)  /mesh/tetrahedra (M, 4)  /mesh/region_id (M,)  attr regions_json
    /snapshots/<k>/m (N, 3), attrs t_ns, field_T (3,)
    root attrs: stop_reason (time | torque | crossing | signal), crossing_json, stats_json,
                parameters_json (dynamics settings, field schedule, solver, materials)

with an XDMF file beside it (time = t in ns) for ParaView. A run stopped by SIGTERM/SIGINT
writes ``OUT.interrupted.h5`` (same layout, final snapshot included) and exits non-zero, so an
interrupted run never looks complete; ``--initial OUT.interrupted.h5`` continues from it.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import h5py
import numpy as np
from mpi4py import MPI

from magtwin.errors import InputError, MagtwinError
from magtwin.io.artefact import ArtefactWriter
from magtwin.io.mesh_artefact import MeshData, read_mesh_artefact
from magtwin.micromag.applied_field import FieldSchedule
from magtwin.micromag.dynamics import DynamicsResult, simulate_dynamics
from magtwin.micromag.run import read_yaml
from magtwin.micromag.snapshots import write_xdmf

log = logging.getLogger("magtwin.dynamics")


class Interrupted(MagtwinError):
    """The run was stopped by a signal; the state so far was written."""

    exit_code = 130


def write_dynamics_artefact(path, result: DynamicsResult, mesh: MeshData, inputs=()) -> Path:
    """Write ``result`` atomically to ``path`` (rank 0) and the XDMF beside it."""
    path = Path(path)
    with ArtefactWriter(path, "dynamics", result.parameters, inputs) as w:
        w.write("timeseries/t_ns", result.t_ns)
        w.write("timeseries/m_mean", result.m_mean)
        w.write("timeseries/J_T", result.J_T)
        w.write("timeseries/field_T", result.field_T)
        w.write("timeseries/energy_J", result.energy_J, attrs={"terms": list(result.terms)})
        w.write("timeseries/max_torque_T", result.max_torque_T)
        w.write("mesh/points_nm", mesh.points_nm)
        w.write("mesh/tetrahedra", mesh.tetrahedra)
        w.write("mesh/region_id", mesh.region_id)
        w.h5["mesh"].attrs["regions_json"] = json.dumps(mesh.regions)
        for k, (t, m) in sorted(result.snapshots.items()):
            w.write(f"snapshots/{k}/m", np.asarray(m, np.float64),
                    attrs={"t_ns": float(t), "field_T": np.asarray(_field_at(result, t))})
        a = w.h5.attrs
        a["stop_reason"] = result.stop_reason
        a["crossing_json"] = json.dumps(result.crossing)
        a["stats_json"] = json.dumps(result.stats)
        a["alignment_axis"] = np.asarray(mesh.alignment_axis, float)
    write_xdmf(path.with_suffix(".xdmf"), path.name, len(mesh.points_nm), len(mesh.tetrahedra),
               {k: t for k, (t, _) in result.snapshots.items()})
    return path


def _field_at(result: DynamicsResult, t: float) -> np.ndarray:
    i = int(np.argmin(np.abs(result.t_ns - t)))
    return result.field_T[i]


def read_initial_m(path, n_nodes: int) -> np.ndarray:
    """The last snapshot's m (N, 3) of a ``dynamics`` or ``simulate`` artefact."""
    p = Path(path)
    if not p.is_file():
        raise InputError("initial-state file does not exist", p)
    try:
        with h5py.File(p, "r") as f:
            if "snapshots" not in f or not len(f["snapshots"]):
                raise InputError("has no /snapshots to start from", p)
            last = max(f["snapshots"], key=int)
            m = f[f"snapshots/{last}/m"][...]
    except OSError:
        raise InputError("is not a readable HDF5 artefact", p) from None
    if m.shape != (n_nodes, 3):
        raise InputError(f"snapshot has {m.shape[0]} nodes but the mesh has {n_nodes}", p)
    return m


def run_dynamics(mesh_path, materials_path, out_path, schedule: FieldSchedule, options: dict,
                 solver: dict | None = None, initial=None, comm=MPI.COMM_WORLD) -> Path:
    """Integrate LLG on the mesh artefact and write ``out_path`` (rank 0).

    ``initial``: None (alignment axis), a (3,) direction, or the path of an artefact whose last
    snapshot is the initial state.
    """
    if comm.rank != 0:
        logging.getLogger("magtwin").setLevel(logging.WARNING)
    mesh = read_mesh_artefact(mesh_path)
    materials = read_yaml(materials_path, "materials")
    init = initial
    inputs = [mesh_path, materials_path]
    if isinstance(initial, (str, os.PathLike)):
        init = read_initial_m(initial, len(mesh.points_nm))
        inputs.append(initial)

    def progress(t, mm):
        log.debug("t = %.5f ns  <m> = (%+.4f, %+.4f, %+.4f)", t, *mm)

    res = simulate_dynamics(mesh, materials, schedule, options, solver, init, comm,
                            sources={"mesh": mesh_path, "materials": materials_path,
                                     "settings": "command line", "initial": initial},
                            progress=progress)
    out = Path(out_path)
    target = out if res.stop_reason != "signal" else out.with_name(out.stem + ".interrupted.h5")
    if comm.rank == 0:
        write_dynamics_artefact(target, res, mesh, inputs=inputs)
        if res.crossing:
            c = res.crossing
            log.info("<m> crossed the level at t = %.5f ns, <m> = (%+.4f, %+.4f, %+.4f)", c["t_ns"], *c["m_mean"])
    comm.Barrier()
    if res.stop_reason == "signal":
        raise Interrupted(f"stopped by a signal at t = {res.stats['t_final_ns']:.6g} ns; state written to "
                          f"{target.name} (continue with --initial {target.name})", out)
    return out

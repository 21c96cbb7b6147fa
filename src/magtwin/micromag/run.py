"""File-level entry point of the ``simulate`` stage: read inputs, run, write on rank 0."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import yaml
from mpi4py import MPI

from magtwin.errors import ConfigError, ConvergenceError
from magtwin.io.mesh_artefact import read_mesh_artefact
from magtwin.micromag.curve import Simulation
from magtwin.micromag.snapshots import write_curve_artefact

log = logging.getLogger("magtwin.micromag")


def read_yaml(path: str | os.PathLike, what: str) -> dict:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{what} file does not exist", p)
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        raise ConfigError(f"not valid YAML{'' if line is None else f' (line {line + 1})'}", p) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{what} file must hold a mapping", p)
    return data


def run_simulation(mesh_path, materials_path, out_path, field: dict, solver: dict,
                   settings_path=None, comm=MPI.COMM_WORLD) -> Path:
    """Simulate the curve of the mesh artefact and write ``out_path`` (rank 0).

    ``settings_path`` (optional YAML with ``field:`` and ``solver:`` sections) is read first;
    ``field``/``solver`` entries override it. A curve with unconverged points is written to
    ``OUT.unconverged.h5`` instead and :class:`ConvergenceError` is raised (non-zero exit).
    The run checkpoints to ``OUT.ckpt`` (resumed when present, removed at the end).
    """
    if comm.rank != 0:
        logging.getLogger("magtwin").setLevel(logging.WARNING)
    f, s = {}, {}
    if settings_path is not None:
        d = read_yaml(settings_path, "settings")
        unknown = set(d) - {"field", "solver"}
        if unknown:
            raise ConfigError(f"unknown section '{sorted(unknown)[0]}' (expected field, solver)", settings_path)
        f.update(d.get("field") or {})
        s.update(d.get("solver") or {})
    f.update(field)
    s.update(solver)
    mesh = read_mesh_artefact(mesh_path)
    materials = read_yaml(materials_path, "materials")
    sim = Simulation(mesh, materials, f, s, comm,
                     sources={"mesh": mesh_path, "materials": materials_path,
                              "settings": settings_path or "command line"})
    st = sim.state
    log.info("magnet: %d nodes, %d elements, %d ranks; air nodes %d", st.n_nodes, len(mesh.tetrahedra),
             st.size, sim.effective.demag.n_air_nodes if sim.effective.demag else 0)
    out = Path(out_path)
    ckpt = out.with_name(out.name + ".ckpt")
    curve = sim.run(checkpoint_path=ckpt)
    ok = bool(curve.converged.all())
    target = out if ok else out.with_name(out.stem + ".unconverged.h5")
    if comm.rank == 0:
        write_curve_artefact(target, curve, mesh, inputs=[mesh_path, materials_path])
        ckpt.unlink(missing_ok=True)
    comm.Barrier()
    if not ok:
        bad = curve.field_T[~curve.converged]
        raise ConvergenceError(f"{len(bad)} field points did not converge within "
                               f"{sim.solver['max_iterations']} iterations (first at {bad[0]:+.4f} T); "
                               f"curve written to {target.name} with those points flagged", out)
    return out

"""Demagnetising field with an open boundary: magnetic scalar potential on magnet + air.

mu0 H_d = -grad(u) with div(-grad u + Js m) = 0 in all space and u -> 0 at infinity. The
weak form on the magnet + air mesh, with the air's outer shell transformed to infinity
(:mod:`magtwin.micromag.airshell`), is

    L u = G m,   L_kl = int grad(v_k) . T grad(v_l),   (G m)_k = int_magnet Js m . grad(v_k),

(T = I outside the shell) and u = 0 on the outer sphere. Then, with lumped nodal fields,

    H_d,i = -(G^T u)_i / (Js V)_i   (T),     E_d = (1 / 2 mu0) u . G m = -1/2 sum_i (Js V)_i m_i . H_d,i / mu0.

L is solved by CG with algebraic multigrid (PETSc GAMG by default, or hypre BoomerAMG),
warm-started from the previous potential. Options can be changed with the PETSc options
prefix ``demag_`` (e.g. ``-demag_ksp_rtol``).
"""

from __future__ import annotations

import numpy as np
from petsc4py import PETSc

from magtwin.micromag.airshell import AirMesh, build_air
from magtwin.micromag.assemble import assemble_chunked, petsc_aij
from magtwin.micromag.fem import shape_gradients, stiffness_elements
from magtwin.micromag.partition import block_numbering
from magtwin.micromag.state import State

NAME = "demag"


def source_matrix(state: State, cmap: np.ndarray, row_range: tuple[int, int], n_rows: int) -> PETSc.Mat:
    """G (potential unknowns x 3 N_magnet): (G m)_k = int_magnet Js m . grad v_k
    = sum_e Js_e V_e / 4 sum_j m_j . grad v_k (T nm^2), rows ``cmap[node]`` (owned: ``row_range``).

    Columns are the interleaved magnetisation (mx0, my0, mz0, mx1, ...) of ``state``.
    """
    el = state.elements
    w = el.mat["Js_T"] * np.abs(el.vol) / 4.0
    nm = state.n_nodes

    def g_block(sl):
        ge = (w[sl, None, None, None] * el.grad[sl, :, None, :]) * np.ones((1, 1, 4, 1))  # (M,k,j,c)
        col_nodes = (3 * el.tets[sl, :, None] + np.arange(3)[None, None, :]).reshape(-1, 12)
        return cmap[el.tets[sl]], col_nodes, ge.reshape(-1, 4, 12)

    csr = assemble_chunked(len(w), g_block, row_range, 3 * nm)
    nloc = row_range[1] - row_range[0]
    return petsc_aij(csr, (nloc, n_rows), (3 * state.n_local, 3 * nm), state.comm)


def cg_amg(mat: PETSc.Mat, prefix: str, pc_type: str, rtol: float) -> PETSc.KSP:
    """CG + algebraic multigrid (``pc_type`` "gamg" or "hypre" BoomerAMG) on ``mat``, warm-started
    from the solution vector; PETSc options with ``prefix`` override the settings."""
    ksp = PETSc.KSP().create(comm=mat.getComm())
    ksp.setOptionsPrefix(prefix)
    ksp.setOperators(mat)
    ksp.setType(PETSc.KSP.Type.CG)
    pc = ksp.getPC()
    if pc_type == "hypre":
        pc.setType(PETSc.PC.Type.HYPRE)
        pc.setHYPREType("boomeramg")
    else:
        pc.setType(PETSc.PC.Type.GAMG)
    ksp.setTolerances(rtol=rtol, atol=1e-50, max_it=2000)
    ksp.setInitialGuessNonzero(True)
    ksp.setFromOptions()
    ksp.setUp()
    return ksp


def set_ksp_rtol(ksp: PETSc.KSP, rtol: float) -> None:
    """``rtol`` on the unpreconditioned residual: a warm-started solve whose initial residual
    already meets it costs one matrix product and no V-cycle."""
    if ksp.getNormType() != PETSc.KSP.NormType.UNPRECONDITIONED:
        ksp.setNormType(PETSc.KSP.NormType.UNPRECONDITIONED)
    ksp.setTolerances(rtol=rtol)


class Demag:
    """Assembled open-boundary potential problem on ``state``'s communicator.

    Parameters
    ----------
    state : the magnet discretisation
    options : dict with ``pc`` ("gamg" | "hypre"), ``rtol``, ``inner_ratio``,
        ``shell_ratio``, ``shell_layers``, ``sphere_subdivisions``, ``air_quality``,
        ``air_max_volume_nm3``
    source : file name for error messages
    """

    def __init__(self, state: State, options: dict | None = None, source=None):
        opt = {"pc": "gamg", "rtol": 1e-6, "inner_ratio": 1.5, "shell_ratio": 2.0,
               "shell_layers": 8, "sphere_subdivisions": 3,
               "air_quality": 1.4, "air_max_volume_nm3": None, **(options or {})}
        comm = state.comm
        air = None
        err = None
        if state.rank == 0:
            try:
                air = build_air(state.points, state.tets, inner_ratio=opt["inner_ratio"],
                                shell_ratio=opt["shell_ratio"], n_layers=int(opt["shell_layers"]),
                                n_sub=int(opt["sphere_subdivisions"]), quality=float(opt["air_quality"]),
                                max_volume=opt["air_max_volume_nm3"], source=source)
            except Exception as exc:  # re-raised on every rank below
                err = exc
        err = comm.bcast(err, root=0)
        if err is not None:
            raise err
        air: AirMesh = comm.bcast(air, root=0)
        self.air = air
        self.state = state
        nm, size, rank = state.n_nodes, state.size, state.rank

        # Numbering of the potential's unknowns: per rank, its magnet nodes then its air nodes.
        free_air = np.flatnonzero(~air.dirichlet)
        # an air node goes to the rank of the nearest magnet node: the air-magnet coupling
        # across the surface then stays on-rank (an independent cut would split it)
        if size > 1:
            from scipy.spatial import cKDTree

            mag_part = np.searchsorted(state.offsets, np.arange(state.n_nodes), side="right") - 1
            _, nearest = cKDTree(state.points).query(air.points[free_air])
            aparts = mag_part[nearest]
        else:
            aparts = np.zeros(len(free_air), dtype=np.int64)
        anew, aoff = block_numbering(aparts, size)
        moff = state.offsets
        coff = moff + aoff
        mag_part = np.searchsorted(moff, np.arange(nm), side="right") - 1
        cmap = np.full(nm + len(air.points), -1, dtype=np.int64)
        cmap[:nm] = np.arange(nm) - moff[mag_part] + coff[mag_part]
        ap = np.searchsorted(aoff, anew, side="right") - 1
        cmap[nm + free_air] = coff[ap] + (moff[ap + 1] - moff[ap]) + (anew - aoff[ap])
        self.n_unknowns = int(coff[-1])
        self.row_range = (int(coff[rank]), int(coff[rank + 1]))
        lo, hi = self.row_range

        # L: magnet elements (T = I) and air elements touching an owned row.
        all_pts = np.concatenate([state.points, air.points])
        ctets = np.concatenate([state.tets, air.tets])
        c = cmap[ctets]
        sel = np.flatnonzero(((c >= lo) & (c < hi)).any(axis=1))
        n_mag_el = len(state.tets)

        def l_block(part):
            idx = sel[part]
            grad, vol = shape_gradients(all_pts, ctets[idx])
            tensor = np.empty((len(idx), 3, 3))
            is_mag = idx < n_mag_el
            tensor[is_mag] = np.eye(3)
            tensor[~is_mag] = air.tensor[idx[~is_mag] - n_mag_el]
            return c[idx], c[idx], stiffness_elements(grad, vol, tensor=tensor)

        csr = assemble_chunked(len(sel), l_block, self.row_range, self.n_unknowns)
        nloc = hi - lo
        self.L = petsc_aij(csr, (nloc, self.n_unknowns), (nloc, self.n_unknowns), comm)

        self.G = source_matrix(state, cmap, self.row_range, self.n_unknowns)

        self.ksp = cg_amg(self.L, "demag_", opt["pc"], float(opt["rtol"]))
        self.u, self.b = self.L.createVecs()
        self.u.set(0.0)
        self._h = state.create_field_vec()
        self.last_iterations = 0
        self.total_iterations = 0

    def field(self, m_vec, out: np.ndarray) -> None:
        """Write H_d (n, 3) in T for the magnetisation ``m_vec`` into ``out``."""
        self.G.mult(m_vec, self.b)
        self.ksp.solve(self.b, self.u)
        reason = self.ksp.getConvergedReason()
        if reason < 0:
            from magtwin.errors import ConvergenceError
            raise ConvergenceError(f"demagnetising-field solve diverged (KSP reason {reason})")
        self.last_iterations = self.ksp.getIterationNumber()
        self.total_iterations += self.last_iterations
        self.G.multTranspose(self.u, self._h)
        out[:] = -self._h.getArray().reshape(-1, 3) * self.state.inv_js_vol[:, None]

    def set_rtol(self, rtol: float) -> None:
        """Relative tolerance of the next solves, on the true (unpreconditioned) residual."""
        set_ksp_rtol(self.ksp, rtol)

    @property
    def n_air_nodes(self) -> int:
        return len(self.air.points)

"""The distributed discretisation of the magnet and the magnetisation state.

Every rank holds the mesh arrays (coordinates and connectivity, O(N) integers); matrices and
vectors are distributed. Magnet nodes are partitioned by recursive coordinate bisection and
renumbered so that rank ``r`` owns nodes ``offsets[r]:offsets[r+1]``; the magnetisation is a
PETSc Vec of block size 3 (mx, my, mz interleaved) over those nodes. Each rank keeps the
elements that touch one of its nodes (one layer of overlap) for assembly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from mpi4py import MPI
from petsc4py import PETSc

from magtwin.micromag.fem import lumped_nodal, shape_gradients
from magtwin.micromag.materials import Materials
from magtwin.micromag.partition import block_numbering, rcb_parts

MU0 = 4e-7 * np.pi          # T m / A
NM3 = 1e-27                 # m^3 per nm^3


@dataclass
class LocalElements:
    """Elements touching an owned node: connectivity in the new global numbering, P1
    gradients (1/nm), volumes (nm^3) and material parameters per element."""

    index: np.ndarray     # (Me,) indices into the renumbered global element arrays
    tets: np.ndarray      # (Me, 4)
    grad: np.ndarray      # (Me, 4, 3)
    vol: np.ndarray       # (Me,)
    mat: dict             # name -> (Me,) or (Me, 3)


class State:
    """Discretised magnet on ``comm`` with materials, lumped masses and the magnetisation Vec.

    Attributes
    ----------
    n_nodes : global number of magnet nodes
    lo, hi : owned node range (new numbering)
    points : (N, 3) all node coordinates in nm, new numbering
    tets : (M, 4) all magnet elements, new numbering
    region_id : (M,) region of each element
    elements : :class:`LocalElements`
    js_vol : (n,) lumped  sum_e Js_e V_e / 4  on owned nodes, T nm^3
    vol : (n,) lumped volume on owned nodes, nm^3
    magnetic : (n,) bool, owned nodes with js_vol > 0 (nodes only in Js = 0 regions carry no m)
    m : PETSc Vec (3n local) of block size 3; ``m_local`` its (n, 3) array view
    """

    def __init__(self, points_nm: np.ndarray, tets: np.ndarray, region_id: np.ndarray,
                 materials: Materials, comm=MPI.COMM_WORLD):
        self.comm = comm
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self.materials = materials
        parts = rcb_parts(points_nm, self.size)
        new, self.offsets = block_numbering(parts, self.size)
        self.old_to_new = new
        self.new_to_old = np.argsort(new)
        self.points = points_nm[self.new_to_old]
        self.tets = new[tets]
        self.region_id = np.asarray(region_id)
        self.n_nodes = len(points_nm)
        self.lo, self.hi = int(self.offsets[self.rank]), int(self.offsets[self.rank + 1])
        self.n_local = self.hi - self.lo

        touch = ((self.tets >= self.lo) & (self.tets < self.hi)).any(axis=1)
        idx = np.flatnonzero(touch)
        tl = self.tets[idx]
        grad, vol = shape_gradients(self.points, tl)
        mat = materials.per_element(self.region_id[idx])
        self.elements = LocalElements(index=idx, tets=tl, grad=grad, vol=vol, mat=mat)

        # Lumped masses of owned nodes (a node's full star is in the local elements).
        loc = tl - self.lo
        inside = (loc >= 0) & (loc < self.n_local)
        w_js = np.repeat((mat["Js_T"] * vol / 4.0)[:, None], 4, axis=1)
        w_v = np.repeat((vol / 4.0)[:, None], 4, axis=1)
        self.js_vol = np.bincount(loc[inside], weights=w_js[inside], minlength=self.n_local)
        self.vol = np.bincount(loc[inside], weights=w_v[inside], minlength=self.n_local)
        self.magnetic = self.js_vol > 0
        self.inv_js_vol = np.where(self.magnetic, 1.0 / np.where(self.magnetic, self.js_vol, 1.0), 0.0)
        self.total_volume = comm.allreduce(float(self.vol.sum()))
        self.total_js_vol = comm.allreduce(float(self.js_vol.sum()))

        self.m = self.create_field_vec()
        self.m_local = self.m.getArray().reshape(-1, 3)

    # -- vectors -----------------------------------------------------------------------------
    def create_field_vec(self) -> PETSc.Vec:
        v = PETSc.Vec().createMPI((3 * self.n_local, 3 * self.n_nodes), bsize=3, comm=self.comm)
        v.set(0.0)
        return v

    def set_m(self, m_local: np.ndarray) -> None:
        """Set the owned magnetisation (n, 3); normalised, zero on non-magnetic nodes."""
        m = np.asarray(m_local, float).reshape(-1, 3)
        nrm = np.linalg.norm(m, axis=1, keepdims=True)
        self.m_local[:] = np.where(self.magnetic[:, None], m / np.where(nrm > 0, nrm, 1.0), 0.0)

    def set_uniform(self, direction) -> None:
        d = np.asarray(direction, float)
        self.set_m(np.broadcast_to(d / np.linalg.norm(d), (self.n_local, 3)))

    # -- reductions --------------------------------------------------------------------------
    def mean_polarisation(self, m_local: np.ndarray | None = None) -> np.ndarray:
        """Volume average <Js m> over the magnet (3,) in T."""
        m = self.m_local if m_local is None else m_local
        s = (self.js_vol[:, None] * m).sum(axis=0)
        return np.asarray(self.comm.allreduce(s)) / self.total_volume

    def gather_m(self, root: int | None = 0) -> np.ndarray | None:
        """The magnetisation (N, 3) in the input node order on ``root`` (all ranks if None)."""
        parts = self.comm.gather(self.m_local.copy(), root=0 if root is None else root) \
            if root is not None else self.comm.allgather(self.m_local.copy())
        if parts is None:
            return None
        m_new = np.concatenate(parts)
        return m_new[self.old_to_new]

    def scatter_m(self, m_input_order: np.ndarray) -> None:
        """Set m from a full (N, 3) array in input node order (available on every rank)."""
        self.set_m(np.asarray(m_input_order)[self.new_to_old[self.lo:self.hi]])

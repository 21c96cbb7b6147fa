"""Preconditioners of the energy gradient for the minimiser (:mod:`magtwin.micromag.minimize`).

The stiffness of the energy is dominated by exchange. Per node it is

    d_i = 2 mu0 K_ii / (Js V)_i   (T),   K the exchange stiffness (:mod:`~magtwin.micromag.exchange`),

which on tomography meshes spans ~8 decades (1.7 T in 8 nm grain elements, 2e8 T at nodes whose
star is a few slivers of lumped volume 1e-8 nm^3). Without preconditioning the global
Barzilai–Borwein step is set by the stiffest node and the bulk hardly moves. Both
preconditioners below are symmetric positive definite operators P on nodal fields (n, 3),
normalised so that P ~ 1 on typical nodes (``d_ref`` = the (Js V)-weighted mean of d):

* :class:`JacobiPreconditioner`: P_i = d_ref / (d_i + d_ref), the diagonal of the operator below.
* :class:`ExchangePreconditioner` (default): P = (W + 2 mu0 K / d_ref)^-1 W with W = diag(Js V),
  applied as one algebraic-multigrid V-cycle (PETSc GAMG), a fixed linear operator. This is
  the Sobolev (H1) gradient of the energy: it also damps the long-wavelength exchange modes,
  and it treats a sliver correctly — the stiff mode of a sliver is the *difference* between the
  nodes on either side, while their common motion is soft; a diagonal scaling slows both, so
  sliver nodes lag behind the bulk for thousands of iterations. Measured on a 4 nm
  Stoner–Wohlfarth cube with 1e-4 nm sliver layers (tests/test_micromag_sliver.py): every
  point converged within a few hundred iterations, where the Jacobi version did not converge
  within 5000; on the default tomography twin (10k nodes) the demagnetisation curve around
  the coercive field ran 2.2x faster.

Both provide ``apply(g) -> P g`` and ``metric(s) -> P^-1 s`` (the inner product of the BB
step lengths, Barzilai & Borwein, IMA J. Numer. Anal. 8, 141 (1988)), on owned nodes (n, 3).
"""

from __future__ import annotations

import numpy as np
from petsc4py import PETSc

from magtwin.micromag.state import MU0

NAMES = ("exchange", "jacobi")


def _stiffness(field) -> tuple[np.ndarray, float]:
    """Per-node exchange stiffness d (n,) in T and its (Js V)-weighted mean d_ref (collective)."""
    st = field.state
    d = field.exchange.K.getDiagonal().getArray()[0::3] * (2.0 * MU0) * st.inv_js_vol
    s = st.comm.allreduce(np.array([float((st.js_vol * d).sum()), float(st.js_vol.sum())]))
    return d, (s[0] / s[1] if s[0] > 0 else 1.0)


class JacobiPreconditioner:
    """P_i = d_ref / (d_i + d_ref), dimensionless, in (0, 1]."""

    def __init__(self, field):
        d, d_ref = _stiffness(field)
        self.p = (d_ref / (d + d_ref))[:, None]

    def apply(self, g: np.ndarray) -> np.ndarray:
        return self.p * g

    def metric(self, s: np.ndarray) -> np.ndarray:
        return s / self.p


class ExchangePreconditioner:
    """P = (W + 2 mu0 K / d_ref)^-1 W, one GAMG V-cycle (options prefix ``precond_``)."""

    def __init__(self, field):
        st = field.state
        _, d_ref = _stiffness(field)
        a = field.exchange.K.copy()
        a.scale(2.0 * MU0 / d_ref)
        # nodes only in Js = 0 regions carry no m: a unit diagonal keeps A regular there
        self.w = np.where(st.magnetic, st.js_vol, 1.0)[:, None] * np.ones((1, 3))
        diag = st.create_field_vec()
        diag.getArray()[:] = self.w.ravel()
        # rows of nodes inside A = 0 regions may have no stored diagonal entry
        a.setOption(PETSc.Mat.Option.NEW_NONZERO_ALLOCATION_ERR, False)
        a.setDiagonal(a.getDiagonal() + diag)
        self.a = a
        self.ksp = PETSc.KSP().create(comm=st.comm)
        self.ksp.setOptionsPrefix("precond_")
        self.ksp.setOperators(a)
        self.ksp.setType(PETSc.KSP.Type.PREONLY)
        self.ksp.getPC().setType(PETSc.PC.Type.GAMG)
        self.ksp.setFromOptions()
        self.ksp.setUp()
        self._b, self._x = st.create_field_vec(), st.create_field_vec()

    def apply(self, g: np.ndarray) -> np.ndarray:
        self._b.getArray()[:] = (self.w * g).ravel()
        self.ksp.solve(self._b, self._x)
        return self._x.getArray().reshape(-1, 3).copy()

    def metric(self, s: np.ndarray) -> np.ndarray:
        self._b.getArray()[:] = s.ravel()
        self.a.mult(self._b, self._x)
        return self._x.getArray().reshape(-1, 3) / self.w


def make_preconditioner(name: str, field):
    """The preconditioner ``name`` ("exchange" | "jacobi") for ``field`` (collective)."""
    return {"exchange": ExchangePreconditioner, "jacobi": JacobiPreconditioner}[name](field)

"""The Landau-Lifshitz-Gilbert equation on the P1 nodes, its Jacobian and the norm constraint.

Gilbert form  dm/dt = -gamma m x B_eff + alpha m x dm/dt  is integrated in the explicit
Landau-Lifshitz form (Gilbert 2004, IEEE Trans. Magn. 40, 3443, eq. 9)

    dm/dt = G(m) = -gamma' [ m x B + alpha m x (m x B) ],   gamma' = gamma / (1 + alpha^2),

with B = mu0 H_eff in T (:class:`~magtwin.micromag.effective.EffectiveField`), gamma in
rad/(s T) and t in ns (G carries a factor 1e-9). |m| is conserved by G exactly but not by a
time integrator; :func:`renormalise` restores it (nodes with Js = 0 keep m = 0).

Jacobian (for the preconditioner of the implicit integrators). Freezing m in the cross
products, the exchange field H_ex = -c D^-1 K m (c = 2 mu0, D_i = (Js V)_i) contributes the
blocks

    dG_i/dm_j = gamma' c K_ij / D_i ([m_i]x + alpha [m_i]x^2),

and varying m in the cross products at fixed field gives the block diagonal

    dG_i/dm_i += gamma' ([B_i]x + alpha [m_i x B_i]x + alpha [m_i]x [B_i]x)
                 - gamma' ([m_i]x + alpha [m_i]x^2) dH_an,i/dm_i,

([v]x is the cross-product matrix). Only the demagnetising field's non-local coupling is
left out: the preconditioner is the exact Jacobian of the local terms.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from magtwin.micromag.state import MU0

#: Gyromagnetic ratio of the electron, rad/(s T) (CODATA 2018).
GAMMA_E = 1.76085963023e11


def llg_rhs(m: np.ndarray, b: np.ndarray, alpha: float, gamma: float, out: np.ndarray | None = None
            ) -> np.ndarray:
    """dm/dt (n, 3) in 1/ns of magnetisation ``m`` (n, 3) in the field ``b`` (n, 3) in T."""
    g = gamma / (1.0 + alpha * alpha) * 1e-9
    mxb = np.cross(m, b)
    res = -g * (mxb + alpha * np.cross(m, mxb))
    if out is None:
        return res
    out[:] = res
    return out


def max_torque(m: np.ndarray, b: np.ndarray) -> float:
    """Largest |m x B| (T) on this rank."""
    t = np.cross(m, b)
    return float(np.sqrt(np.einsum("ij,ij->i", t, t).max(initial=0.0)))


def norm_deviation(m: np.ndarray, magnetic: np.ndarray) -> float:
    """Largest | |m_i| - 1 | over the magnetic nodes of this rank (0 if none)."""
    if not magnetic.any():
        return 0.0
    return float(np.abs(np.linalg.norm(m[magnetic], axis=1) - 1.0).max())


def renormalise(m: np.ndarray, magnetic: np.ndarray) -> None:
    """Project ``m`` (n, 3) back onto |m| = 1 in place (0 on non-magnetic nodes)."""
    nrm = np.linalg.norm(m, axis=1, keepdims=True)
    m[:] = np.where(magnetic[:, None], m / np.where(nrm > 0, nrm, 1.0), 0.0)


def cross_matrices(v: np.ndarray) -> np.ndarray:
    """[v]x (n, 3, 3) with [v]x w = v x w."""
    z = np.zeros(len(v))
    return np.stack([np.stack([z, -v[:, 2], v[:, 1]], axis=1),
                     np.stack([v[:, 2], z, -v[:, 0]], axis=1),
                     np.stack([-v[:, 1], v[:, 0], z], axis=1)], axis=1)


class LocalJacobian:
    """Assembles dG/dm of the exchange and local terms (module docstring) as a scipy CSR
    block of the owned rows (interleaved x, y, z; global columns).

    Parameters
    ----------
    k_csr : (n, N) scalar exchange stiffness rows of the owned nodes (A in J/m^3 nm^2)
    inv_js_vol : (n,) 1 / (Js V)_i (0 on non-magnetic nodes)
    lo : first owned node (global)
    aniso : the :class:`~magtwin.micromag.anisotropy.Anisotropy` term (or None)
    """

    def __init__(self, k_csr: sp.csr_matrix, inv_js_vol: np.ndarray, lo: int, aniso=None):
        self.k = k_csr.tocsr()
        self.rows = np.repeat(np.arange(self.k.shape[0]), np.diff(self.k.indptr))
        self.inv = inv_js_vol
        self.lo = lo
        self.aniso = aniso
        n = self.k.shape[0]
        # structure of kron(K, I3) plus the diagonal blocks
        diag = sp.csr_matrix((np.ones(n), (np.arange(n), np.arange(n) + lo)), shape=self.k.shape)
        pat = (abs(self.k) + diag).tocsr()
        pat.sort_indices()
        self.pattern = pat

    def dG(self, m: np.ndarray, b: np.ndarray, alpha: float, gamma: float) -> sp.bsr_matrix:
        """dG/dm (3n x 3N, 1/ns) at ``m`` (n, 3) with local-term field ``b`` (n, 3) in T."""
        g = gamma / (1.0 + alpha * alpha) * 1e-9
        mx = cross_matrices(m)
        s = mx + alpha * np.einsum("nij,njk->nik", mx, mx)            # [m]x + alpha [m]x^2
        c = 2.0 * MU0 * self.inv
        blocks_off = (g * c[self.rows] * self.k.data)[:, None, None] * s[self.rows]
        bx = cross_matrices(b)
        diag = g * (bx + alpha * cross_matrices(np.cross(m, b)) + alpha * np.einsum("nij,njk->nik", mx, bx))
        if self.aniso is not None and len(self.aniso.node):
            a = self.aniso
            mu = np.einsum("ij,ij->i", m[a.node], a.u)
            w = 2.0 * a.k1w + 12.0 * a.k2w * mu ** 2
            uu = np.einsum("k,ki,kj->kij", w, a.u, a.u)
            dh = np.zeros((len(m), 3, 3))
            np.add.at(dh, a.node, uu)
            dh *= (MU0 * self.inv)[:, None, None]
            diag -= g * np.einsum("nij,njk->nik", s, dh)
        n = len(m)
        off = sp.bsr_matrix((blocks_off, self.k.indices, self.k.indptr), shape=(3 * n, 3 * self.k.shape[1]))
        dg = sp.bsr_matrix((diag, np.arange(n) + self.lo, np.arange(n + 1)), shape=off.shape)
        return off + dg

    def full_pattern(self) -> sp.csr_matrix:
        """CSR (3n x 3N) of zeros with every entry :meth:`shifted` can fill (preallocation)."""
        full = sp.kron(self.pattern, sp.csr_matrix(np.ones((3, 3))), format="csr")
        full.data[:] = 0.0
        full.sort_indices()
        return full

    def shifted(self, m, b, alpha, gamma, shift: float) -> sp.csr_matrix:
        """shift I - dG/dm (CSR, owned rows, global columns; entries within
        :meth:`full_pattern`)."""
        n = len(m)
        a = -self.dG(m, b, alpha, gamma).tocsr()
        a = a + sp.csr_matrix((np.full(3 * n, shift), (np.arange(3 * n), np.arange(3 * n) + 3 * self.lo)),
                              shape=a.shape)
        a = a.tocsr()
        a.sort_indices()
        return a

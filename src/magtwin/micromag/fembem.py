"""Demagnetising field by the hybrid FEM/BEM method of Fredkin & Koehler (magnet mesh only).

D. R. Fredkin and T. R. Koehler, IEEE Trans. Magn. 26, 415 (1990). With mu0 H_d = -grad(u)
and div(-grad u + Js m) = 0 in all space, u -> 0 at infinity, split u = u1 + u2 on the magnet
Omega with surface Gamma (outward normal n):

    u1:  Laplace u1 = div(Js m) in Omega,  du1/dn = Js m . n on Gamma      (Neumann, u1 = 0 outside)
    u2:  Laplace u2 = 0 in Omega,           u2 = B u1 on Gamma               (Dirichlet)

u2 is the double-layer potential of u1 (u2 jumps by u1 across Gamma, its normal derivative
does not), whose interior limit on Gamma is

    u2(x) = 1/(4 pi) int_Gamma u1(y) (x - y).n(y) / |x - y|^3 dS_y + (Omega(x) / (4 pi) - 1) u1(x),

Omega(x) the interior solid angle at x (2 pi on a smooth face). In weak form with P1 hats v_k,

    K u1 = G m,   K_kl = int_Omega grad v_k . grad v_l,   (G m)_k = int_Omega Js m . grad v_k,

the pure Neumann system (null space: constants, set as a PETSc MatNullSpace), and K u2 = 0 on
the interior nodes with u2 = B u1 on the boundary nodes. Both are solved by CG + algebraic
multigrid on the magnet's nodes (distributed as in :class:`~magtwin.micromag.state.State`).
The field and energy are those of :mod:`magtwin.micromag.demag`:

    H_d,i = -(G^T u)_i / (Js V)_i   (T),      E_d = -1/2 sum_i (Js V)_i m_i . H_d,i / mu0.

The boundary matrix B (N_b x N_b, dense) is collocation at the boundary nodes of the double
layer of a piecewise-linear density on the flat surface triangles, integrated analytically
(Lindholm, IEEE Trans. Magn. 20, 2025 (1984)): for an observer x and a triangle r_0 r_1 r_2
(area A, unit normal n, edges s_i from r_i to r_(i+1), outward in-plane edge normals nu_i),
with rho_k = r_k - x and h = -rho_0 . n,

    w_k = 1/(4 pi) [ phi_k Omega_T + h s_(k+1) / (2 A) sum_i (nu_(k+1) . nu_i) P_i ],
    phi_k = n . (rho_(k+1) x rho_(k+2)) / (2 A),
    P_i = ln[(|rho_i| + |rho_(i+1)| + s_i) / (|rho_i| + |rho_(i+1)| - s_i)],

Omega_T the signed solid angle of the triangle seen from x (positive when x is on the side n
points to), by van Oosterom & Strackee, IEEE Trans. Biomed. Eng. 30, 125 (1983):
tan(Omega_T / 2) = -rho_0 . (rho_1 x rho_2) / (|rho_0||rho_1||rho_2| + (rho_0.rho_1)|rho_2| + ...).
Triangles containing x contribute nothing (x lies in their plane); the interior solid angle
at a boundary node is -sum_T Omega_T over the other triangles, so B 1 = -1 exactly: a constant
added to u1 (its null space) cancels in u1 + u2.

Each rank assembles and stores only the rows of B of the boundary nodes it owns (numpy, in
chunks of observers so the temporaries stay below a few tens of MB); u1 on the boundary is
allgathered before the product. B has N_b^2 entries: models whose matrix would exceed
``max_matrix_mb`` are refused (use the air shell, :mod:`magtwin.micromag.demag`, for them).
For a uniform m, u1 is linear (exact in P1); on a film one element thick every node is a
boundary node, so the thin-film demagnetising factors come out nearly exact.
PETSc options prefixes: ``demag_u1_``, ``demag_u2_``.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from petsc4py import PETSc
from scipy.spatial.distance import cdist

from magtwin.errors import ConfigError, ConvergenceError
from magtwin.micromag.assemble import assemble_chunked, petsc_aij
from magtwin.micromag.demag import cg_amg, set_ksp_rtol, source_matrix
from magtwin.micromag.fem import boundary_faces, orient_positive, stiffness_elements
from magtwin.micromag.state import State

NAME = "demag"
FOUR_PI = 4.0 * np.pi


class SurfaceMesh:
    """Outward-oriented boundary triangles of a tetrahedral mesh with per-triangle constants.

    Attributes
    ----------
    nodes : (Nb,) mesh node index of each boundary node (sorted)
    tri : (F, 3) triangles in boundary-node numbering, counter-clockwise seen from outside
    pts : (Nb, 3) boundary node coordinates (nm)
    normal : (F, 3) outward unit normals; area : (F,) nm^2; side : (F, 3) edge lengths s_i
    q : (F, 3, 3) q[f, k, i] = s_(k+1) (nu_(k+1) . nu_i) / (2 A), the P-term coupling
    grad_phi, phi0 : (F, 3, 3), (F, 3): the hat functions extended to space,
        phi_k(x) = grad_phi[f, k] . x + phi0[f, k] (constant along the normal)
    """

    def __init__(self, points: np.ndarray, tets: np.ndarray):
        faces = boundary_faces(orient_positive(points, tets))
        self.nodes, inv = np.unique(faces, return_inverse=True)
        self.tri = inv.reshape(-1, 3)
        # coordinates relative to the centre keep the expanded dot products below accurate
        self.centre = points[self.nodes].mean(axis=0)
        self.pts = points[self.nodes] - self.centre
        p = self.pts[self.tri]                                       # (F, 3 vertices, 3)
        cr = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
        # outward for positively oriented tetrahedra; checked on the enclosed volume (div x = 3)
        if np.einsum("fk,fk->", p[:, 0], cr) < 0:
            self.tri = self.tri[:, [0, 2, 1]]
            p = self.pts[self.tri]
            cr = -cr
        two_a = np.linalg.norm(cr, axis=1)
        self.normal = cr / two_a[:, None]
        self.area = 0.5 * two_a
        edge = np.roll(p, -1, axis=1) - p                            # edge i: r_i -> r_(i+1)
        self.side = np.linalg.norm(edge, axis=2)
        nu = np.cross(edge / self.side[:, :, None], self.normal[:, None, :])
        nu1 = np.roll(nu, -1, axis=1)                                # nu_(k+1) for row k
        self.q = (np.roll(self.side, -1, axis=1) / two_a[:, None])[:, :, None] \
            * np.einsum("fkc,fic->fki", nu1, nu)
        # grad phi_k = n x (r_(k+2) - r_(k+1)) / (2A) = -s_(k+1) nu_(k+1) / (2A); phi_k(r_(k+1)) = 0
        self.grad_phi = -(np.roll(self.side, -1, axis=1) / two_a[:, None])[:, :, None] * nu1
        self.phi0 = -np.einsum("fkc,fkc->fk", self.grad_phi, np.roll(p, -1, axis=1))
        # undirected edges (each shared by two triangles): P_i is computed once per edge
        ends = np.stack([self.tri, np.roll(self.tri, -1, axis=1)], axis=2).reshape(-1, 2)
        self.edges, slot = np.unique(np.sort(ends, axis=1), axis=0, return_inverse=True)
        self.tri_edge = slot.reshape(-1, 3)
        self.edge_length = np.linalg.norm(self.pts[self.edges[:, 1]] - self.pts[self.edges[:, 0]], axis=1)
        # boundary node -> incident edges / triangles (CSR): skipped when observing from that node
        nf = len(self.tri)
        ne = len(self.edges)
        self.node_edge = sp.csr_matrix((np.ones(2 * ne), (self.edges.ravel(), np.repeat(np.arange(ne), 2))),
                                       shape=(len(self.nodes), ne))
        self.node_tri = sp.csr_matrix((np.ones(3 * nf), (self.tri.ravel(), np.repeat(np.arange(nf), 3))),
                                      shape=(len(self.nodes), nf))

    @property
    def n_nodes(self) -> int:
        return len(self.nodes)


def double_layer_weights(surf: SurfaceMesh, obs: np.ndarray, exclude: np.ndarray | None = None):
    """Lindholm weights of every triangle's three vertices at the observers (module docstring).

    Everything is expressed through observer-vertex distances and matrix products (no per-pair
    cross products): rho_a . rho_b = (|rho_a|^2 + |rho_b|^2 - s_ab^2) / 2, and
    rho_0 . (rho_1 x rho_2) = -2 A h.

    Parameters
    ----------
    surf : the surface
    obs : (P, 3) observer positions relative to ``surf.centre`` (nm)
    exclude : (P,) boundary-node index of each observer (triangles containing it are skipped),
        or None

    Returns
    -------
    w : (3, P, F) weights (dimensionless): potential at x = sum_k,f w[k, ., f] u1[tri[f, k]]
    omega : (P, F) signed solid angles (sr), zero for excluded triangles
    """
    t = surf.tri
    nf, npt = len(t), len(obs)
    dist = cdist(obs, surf.pts)                                      # (P, Nb) |rho|
    d0, d1, d2 = dist[:, t[:, 0]], dist[:, t[:, 1]], dist[:, t[:, 2]]
    sq0, sq1, sq2 = d0 * d0, d1 * d1, d2 * d2
    s2 = surf.side * surf.side
    # van Oosterom & Strackee: Omega = 2 atan2(2 A h, den) (the triple product is -2 A h)
    den = d0 * d1 * d2
    den += 0.5 * (sq0 + sq1 - s2[:, 0]) * d2
    den += 0.5 * (sq1 + sq2 - s2[:, 1]) * d0
    den += 0.5 * (sq2 + sq0 - s2[:, 2]) * d1
    h = obs @ surf.normal.T
    h -= np.einsum("fc,fc->f", surf.normal, surf.pts[t[:, 0]])
    omega = 2.0 * np.arctan2(2.0 * surf.area * h, den)
    ea, eb = surf.edges[:, 0], surf.edges[:, 1]
    dsum = dist[:, ea] + dist[:, eb]
    with np.errstate(divide="ignore", invalid="ignore"):
        lg = np.log((dsum + surf.edge_length) / (dsum - surf.edge_length))       # (P, E)
    if exclude is not None:
        # triangles containing the observer: it lies in their plane (h = 0), and P_i of its
        # own edges is singular there
        nt = surf.node_tri[exclude].tocoo()
        omega[nt.row, nt.col] = 0.0
        h[nt.row, nt.col] = 0.0
        ne = surf.node_edge[exclude].tocoo()
        lg[ne.row, ne.col] = 0.0
    # (P, F) arrays per vertex k / edge i: numpy's inner loops then run along F, not along 3
    logp = [lg[:, surf.tri_edge[:, i]] for i in range(3)]
    omega4, h4 = omega / FOUR_PI, h / FOUR_PI
    w = np.empty((3, npt, nf))
    for k in range(3):
        wk = w[k]
        np.matmul(obs, surf.grad_phi[:, k, :].T, out=wk)
        wk += surf.phi0[:, k]
        wk *= omega4
        e = surf.q[:, k, 0] * logp[0]
        e += surf.q[:, k, 1] * logp[1]
        e += surf.q[:, k, 2] * logp[2]
        e *= h4
        wk += e
    return w, omega


def boundary_matrix(surf: SurfaceMesh, rows: np.ndarray, pair_chunk: int = 400_000) -> np.ndarray:
    """Rows ``rows`` (boundary-node indices) of the collocation double-layer matrix B (dense,
    (len(rows), Nb)), diagonal included: u2|Gamma = B u1|Gamma (module docstring)."""
    nb, nf = surf.n_nodes, len(surf.tri)
    # vertex k of every triangle -> its node: (Nb x F) incidences, B_rows = sum_k (S_k^T W_k^T)^T
    st = [sp.csr_matrix((np.ones(nf), (surf.tri[:, k], np.arange(nf))), shape=(nb, nf)) for k in range(3)]
    out = np.empty((len(rows), nb))
    step = max(1, pair_chunk // max(nf, 1))
    for a in range(0, len(rows), step):
        r = rows[a:a + step]
        w, omega = double_layer_weights(surf, surf.pts[r], exclude=r)
        blk = sum((st[k] @ w[k].T).T for k in range(3))
        blk[np.arange(len(r)), r] += -omega.sum(axis=1) / FOUR_PI - 1.0
        out[a:a + step] = blk
    return out


class FemBem:
    """Fredkin-Koehler demagnetising field on ``state``'s communicator (same interface as
    :class:`magtwin.micromag.demag.Demag`).

    Parameters
    ----------
    state : the magnet discretisation
    options : dict with ``pc`` ("gamg" | "hypre"), ``rtol``, ``max_matrix_mb`` (bound on the
        dense boundary matrix summed over ranks, MB; default 2048)
    source : file name for error messages
    """

    def __init__(self, state: State, options: dict | None = None, source=None):
        opt = {"pc": "gamg", "rtol": 1e-6, "max_matrix_mb": 2048.0, **(options or {})}
        self.state = state
        comm = state.comm
        self.surface = surf = SurfaceMesh(state.points, state.tets)
        nb = surf.n_nodes
        mb = 8.0 * nb * nb / 1e6
        if mb > float(opt["max_matrix_mb"]):
            raise ConfigError(
                f"the FEM/BEM boundary matrix of this mesh ({nb} surface nodes) needs {mb:.0f} MB, more than "
                f"the {float(opt['max_matrix_mb']):.0f} MB allowed: FEM/BEM is for small models, use "
                f"demag_method airshell", source)

        lo, hi, n = state.lo, state.hi, state.n_nodes
        # boundary nodes owned here: a contiguous range of the sorted boundary list
        self._b_lo, self._b_hi = np.searchsorted(surf.nodes, [lo, hi])
        own = np.arange(self._b_lo, self._b_hi)
        self._b_local = surf.nodes[own] - lo                          # owned-array positions
        self._counts = np.asarray(comm.allgather(len(own)))
        self.B = boundary_matrix(surf, own)
        self._u1b = np.empty(nb)

        el = state.elements
        cmap = np.arange(n)

        def k_block(sl):
            return el.tets[sl], el.tets[sl], stiffness_elements(el.grad[sl], el.vol[sl])

        csr = assemble_chunked(len(el.vol), k_block, (lo, hi), n)
        nloc = hi - lo
        self.K = petsc_aij(csr, (nloc, n), (nloc, n), comm)
        self.G = source_matrix(state, cmap, (lo, hi), n)

        # u2: K with the boundary rows and columns replaced by the identity (Dirichlet data)
        self.n_interior = n - nb
        self.ksp2 = None
        if self.n_interior > 0:
            self.K2 = self.K.duplicate(copy=True)
            self.K2.zeroRowsColumns(surf.nodes[own].astype(PETSc.IntType), diag=1.0)
            self.ksp2 = cg_amg(self.K2, "demag_u2_", opt["pc"], float(opt["rtol"]))
        # u1: pure Neumann problem, constants are its null space
        self._null = PETSc.NullSpace().create(constant=True, comm=comm)
        self.K.setNullSpace(self._null)
        self.ksp1 = cg_amg(self.K, "demag_u1_", opt["pc"], float(opt["rtol"]))
        self.u1, self.b = self.K.createVecs()
        self.u2, self.r = self.K.createVecs()
        self._tmp = self.K.createVecLeft()
        self.u = self.K.createVecLeft()
        for v in (self.u1, self.u2):
            v.set(0.0)
        self._h = state.create_field_vec()
        self.last_iterations = 0
        self.total_iterations = 0

    def _solve(self, ksp, b, x, what):
        ksp.solve(b, x)
        reason = ksp.getConvergedReason()
        if reason < 0:
            raise ConvergenceError(f"demagnetising-field {what} solve diverged (KSP reason {reason})")
        return ksp.getIterationNumber()

    def field(self, m_vec, out: np.ndarray) -> None:
        """Write H_d (n, 3) in T for the magnetisation ``m_vec`` into ``out``."""
        self.G.mult(m_vec, self.b)
        self._null.remove(self.b)
        its = self._solve(self.ksp1, self.b, self.u1, "u1 (Neumann)")
        comm = self.state.comm
        u1_own = self.u1.getArray()[self._b_local]
        comm.Allgatherv(np.ascontiguousarray(u1_own), [self._u1b, self._counts])
        g = self.B @ self._u1b                                        # owned boundary values of u2
        if self.ksp2 is None:
            self.u2.getArray()[self._b_local] = g
        else:
            # K u2 = 0 on interior rows with u2 = g on the boundary: r = -K g_ext, r_b = g
            r = self.r
            r.set(0.0)
            r.getArray()[self._b_local] = g
            self.K.mult(r, self._tmp)
            r.axpy(-1.0, self._tmp)
            r.getArray()[self._b_local] = g
            its += self._solve(self.ksp2, r, self.u2, "u2 (Dirichlet)")
        self.last_iterations = its
        self.total_iterations += its
        self.u.waxpy(1.0, self.u1, self.u2)                           # u1, u2 stay as warm starts
        self.G.multTranspose(self.u, self._h)
        out[:] = -self._h.getArray().reshape(-1, 3) * self.state.inv_js_vol[:, None]

    def set_rtol(self, rtol: float) -> None:
        """Relative tolerance of the next u1 and u2 solves (unpreconditioned residual)."""
        for ksp in (self.ksp1, self.ksp2):
            if ksp is not None:
                set_ksp_rtol(ksp, rtol)

    @property
    def n_air_nodes(self) -> int:
        return 0


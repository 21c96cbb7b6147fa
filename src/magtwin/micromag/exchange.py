"""Exchange energy and field.

    E_ex = sum_e A_e int_e |grad m|^2 dV,   H_ex,i = -(mu0 / (Js V)_i) dE/dm_i = -(2 mu0 / (Js V)_i) (K m)_i

with K_ij = sum_e A_e V_e grad(phi_i) . grad(phi_j) (P1, exact). A is constant per element,
so an interface between phases with different A (and Js) is handled by the continuous P1
magnetisation and the element-wise A: the weak form carries the flux continuity
A_1 dm/dn = A_2 dm/dn across the interface without any special treatment.
Energy unit inside the solver: (J/m^3) nm^3; A is used in J/m^3 nm^2 (= 1e18 * A in J/m).
"""

from __future__ import annotations

import numpy as np

from magtwin.micromag.assemble import assemble_chunked, interleave3, petsc_aij
from magtwin.micromag.fem import stiffness_elements
from magtwin.micromag.state import MU0, State

NAME = "exchange"


class Exchange:
    def __init__(self, state: State):
        el = state.elements
        a_nm = el.mat["A_J_per_m"] * 1e18

        def block(sl):
            return el.tets[sl], el.tets[sl], stiffness_elements(el.grad[sl], el.vol[sl], a_nm[sl])

        csr = assemble_chunked(len(el.tets), block, (state.lo, state.hi), state.n_nodes)
        n, nn = state.n_local, state.n_nodes
        self.K = petsc_aij(interleave3(csr), (3 * n, 3 * nn), (3 * n, 3 * nn), state.comm, bsize=3)
        self.state = state
        self._km = state.create_field_vec()

    def field(self, m_vec, out: np.ndarray) -> None:
        """Write H_ex (n, 3) in T for the magnetisation ``m_vec`` into ``out``."""
        self.K.mult(m_vec, self._km)
        out[:] = self._km.getArray().reshape(-1, 3) * (-2.0 * MU0 * self.state.inv_js_vol[:, None])

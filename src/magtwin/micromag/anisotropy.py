"""Uniaxial magnetocrystalline anisotropy (lumped quadrature).

    E_an = - sum_e int_e K1_e (m . u_e)^2 + K2_e (m . u_e)^4 dV
         ~ - sum_i sum_{r at i} k1_ir (m_i . u_r)^2 + k2_ir (m_i . u_r)^4,

with k_ir = K_r * (sum of V_e / 4 over the elements of region r around node i): a node on a
grain boundary sees each neighbouring grain's axis with that grain's share of its volume.
H_an,i = (mu0 / (Js V)_i) sum_r [2 k1_ir (m.u_r) + 4 k2_ir (m.u_r)^3] u_r;  mu0 H_A = 2 K1 / Js.
"""

from __future__ import annotations

import numpy as np

from magtwin.micromag.state import MU0, State

NAME = "anisotropy"


class Anisotropy:
    def __init__(self, state: State):
        el = state.elements
        k1, k2, u = el.mat["K1_J_per_m3"], el.mat["K2_J_per_m3"], el.mat["easy_axis"]
        loc = el.tets - state.lo
        inside = (loc >= 0) & (loc < state.n_local) & ((k1 > 0) | (k2 > 0))[:, None]
        e_idx = np.repeat(np.arange(len(el.tets))[:, None], 4, axis=1)[inside]
        node = loc[inside]
        rid = state.region_id[el.index][e_idx]
        w = (el.vol / 4.0)[e_idx]
        # one entry per (node, region): regions are constant in K and u
        _, reg = np.unique(rid, return_inverse=True)
        key = node.astype(np.int64) * (reg.max(initial=0) + 1) + reg
        ukey, inv = np.unique(key, return_inverse=True)
        first = np.zeros(len(ukey), dtype=np.int64)
        first[inv[::-1]] = np.arange(len(inv))[::-1]
        self.node = node[first]
        self.u = u[e_idx[first]]
        wsum = np.bincount(inv, weights=w, minlength=len(ukey))
        self.k1w = k1[e_idx[first]] * wsum      # J/m^3 nm^3
        self.k2w = k2[e_idx[first]] * wsum
        self.state = state
        # the K1 term is linear in m: one 3x3 block per node, B_i = mu0/(Js V)_i sum_r 2 k1_ir u_r u_r^T
        n = state.n_local
        outer = (2.0 * self.k1w)[:, None, None] * self.u[:, :, None] * self.u[:, None, :]
        self.block = np.zeros((n, 3, 3))
        np.add.at(self.block, self.node, outer)
        self.block *= MU0 * state.inv_js_vol[:, None, None]
        self.k2 = np.flatnonzero(self.k2w != 0)

    def field(self, m_vec, out: np.ndarray) -> None:
        m = self.state.m_local if m_vec is None else m_vec.getArray().reshape(-1, 3)
        np.einsum("nij,nj->ni", self.block, m, out=out)
        if len(self.k2):
            node, u = self.node[self.k2], self.u[self.k2]
            mu = np.einsum("ij,ij->i", m[node], u)
            coef = 4.0 * self.k2w[self.k2] * mu ** 3 * MU0 * self.state.inv_js_vol[node]
            for c in range(3):
                out[:, c] += np.bincount(node, weights=coef * u[:, c], minlength=len(out))

    def energy(self, m: np.ndarray) -> float:
        """Local contribution to E_an in (J/m^3) nm^3 (sum over ranks by the caller)."""
        mu = np.einsum("ij,ij->i", m[self.node], self.u)
        return float(-(self.k1w * mu ** 2 + self.k2w * mu ** 4).sum())

"""Energy minimisation on the unit sphere: projected Barzilai-Borwein steepest descent.

Following Exl, Bance, Reichel, Schrefl, Stimming & Mauser, J. Appl. Phys. 115, 17D118 (2014)
("LaBonte's method revisited"): with the gradient on the sphere g = m x (m x H_eff)
(= -(H_eff - (m.H_eff) m), T),

    m_{k+1} = normalise(m_k - tau_k g_k),
    tau_{k+1} = (s.s)/(s.y)  (odd k)  or  (s.y)/(y.y)  (even k),   s = m_{k+1} - m_k, y = g_{k+1} - g_k,

inner products weighted by the lumped (Js V)_i (the L2 metric, independent of the mesh
grading). No line search (the non-monotone BB steps are what make it fast); the step is capped
so no node turns by more than ``max_angle_rad`` in one step. Converged when the largest torque
|m_i x H_eff,i| falls below ``torque_tol_T``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from mpi4py import MPI

from magtwin.micromag.effective import EffectiveField


@dataclass
class MinimizeResult:
    iterations: int
    converged: bool
    max_torque_T: float


def _reduce(comm, sums: np.ndarray, maxima: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    out_s, out_m = np.empty_like(sums), np.empty_like(maxima)
    comm.Allreduce(sums, out_s, op=MPI.SUM)
    comm.Allreduce(maxima, out_m, op=MPI.MAX)
    return out_s, out_m


def minimize(field: EffectiveField, torque_tol_T: float = 1e-4, max_iterations: int = 20000,
             tau0: float | None = None, max_angle_rad: float = 0.3,
             callback=None) -> MinimizeResult:
    """Minimise the energy from the state's current m (updated in place).

    ``callback(iteration)`` (optional) is called after every iteration; it may raise to abort.
    """
    st = field.state
    comm = st.comm
    m = st.m_local
    mag = st.magnetic[:, None]
    w = st.js_vol[:, None]

    def grad(h):
        mh = np.einsum("ij,ij->i", m, h)[:, None]
        return mh * m - h

    def torque(g):  # |g_i| = |m_i x H_i|
        return float(np.sqrt(np.einsum("ij,ij->i", g, g).max(initial=0.0)))

    g = grad(field.compute())
    _, (tq,) = _reduce(comm, np.zeros(1), np.array([torque(g)]))
    if tq < torque_tol_T:
        return MinimizeResult(0, True, float(tq))
    tau = tau0 if tau0 is not None else 0.01 / max(tq, 1e-30)
    it = 0
    while it < max_iterations:
        it += 1
        step = min(tau, max_angle_rad / max(tq, 1e-30))
        m_old = m.copy()
        g_old = g
        m_new = m - step * g
        m_new /= np.linalg.norm(np.where(mag, m_new, 1.0), axis=1, keepdims=True)
        m[:] = np.where(mag, m_new, 0.0)
        g = grad(field.compute())
        s = m - m_old
        y = g - g_old
        (ss, sy, yy), (tq,) = _reduce(comm, np.array([(w * s * s).sum(), (w * s * y).sum(),
                                                      (w * y * y).sum()]), np.array([torque(g)]))
        if sy > 0:
            tau = ss / sy if it % 2 else sy / yy
        else:
            tau = 2.0 * step
        if callback is not None:
            callback(it)
        if tq < torque_tol_T:
            return MinimizeResult(it, True, float(tq))
    return MinimizeResult(it, False, float(tq))

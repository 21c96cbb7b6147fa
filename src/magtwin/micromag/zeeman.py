"""Zeeman energy of the applied field B = mu0 H_ext (T), uniform.

    E_z = - int Js m . B / mu0 dV ~ - sum_i (Js V)_i m_i . B / mu0,   H_z = B.
"""

from __future__ import annotations

import numpy as np

NAME = "zeeman"


def field(b_T: np.ndarray, out: np.ndarray, magnetic: np.ndarray) -> None:
    out[:] = np.asarray(b_T, float)
    out[~magnetic] = 0.0

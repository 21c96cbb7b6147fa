"""The effective field H_eff = -(mu0 / (Js V)_i) dE/dm_i (T) and the energy per term."""

from __future__ import annotations

import numpy as np

from magtwin.micromag import zeeman
from magtwin.micromag.anisotropy import Anisotropy
from magtwin.micromag.demag import Demag
from magtwin.micromag.exchange import Exchange
from magtwin.micromag.state import MU0, NM3, State

TERMS = ("exchange", "anisotropy", "zeeman", "demag")


class EffectiveField:
    """All field terms on ``state``; ``demag`` is None when the demagnetising field is off."""

    def __init__(self, state: State, demag: Demag | None):
        self.state = state
        self.exchange = Exchange(state)
        self.anisotropy = Anisotropy(state)
        self.demag = demag
        self.b_ext = np.zeros(3)
        n = state.n_local
        self.h = {t: np.zeros((n, 3)) for t in TERMS}
        self.total = np.zeros((n, 3))
        self.terms = TERMS if demag is not None else TERMS[:3]

    def compute(self) -> np.ndarray:
        """H_eff (n, 3) in T of the state's current m (also kept per term in ``self.h``)."""
        st = self.state
        self.exchange.field(st.m, self.h["exchange"])
        self.anisotropy.field(None, self.h["anisotropy"])
        zeeman.field(self.b_ext, self.h["zeeman"], st.magnetic)
        if self.demag is not None:
            self.demag.field(st.m, self.h["demag"])
        tot = self.total
        np.add(self.h["exchange"], self.h["anisotropy"], out=tot)
        tot += self.h["zeeman"]
        if self.demag is not None:
            tot += self.h["demag"]
        return tot

    def set_demag_rtol(self, rtol: float) -> None:
        """Relative tolerance of the next demagnetising-field solves (no-op without demag),
        measured on the true (unpreconditioned) residual: a warm-started solve whose initial
        residual already meets it then costs one matrix product and no V-cycle."""
        if self.demag is None or rtol == getattr(self, "_demag_rtol", None):
            return
        self.demag.set_rtol(rtol)
        self._demag_rtol = rtol

    def energies(self) -> dict[str, float]:
        """Energy per term in J for the fields last computed (collective)."""
        st = self.state
        m = st.m_local
        w = st.js_vol / MU0
        loc = {
            "exchange": -0.5 * float((w[:, None] * m * self.h["exchange"]).sum()),
            "anisotropy": self.anisotropy.energy(m),
            "zeeman": -float((w[:, None] * m * self.h["zeeman"]).sum()),
        }
        if self.demag is not None:
            loc["demag"] = -0.5 * float((w[:, None] * m * self.h["demag"]).sum())
        keys = list(loc)
        tot = st.comm.allreduce(np.array([loc[k] for k in keys]))
        return {k: float(v) * NM3 for k, v in zip(keys, tot)}

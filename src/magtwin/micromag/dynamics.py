"""LLG time integration with PETSc TS on the distributed operators of the minimiser.

The state, materials, effective field (exchange, anisotropy, Zeeman, open-boundary demag) are
those of :class:`magtwin.micromag.curve.Simulation`; this module only adds time. Methods:

* ``rk5dp`` / ``rk3bs``: explicit adaptive Runge-Kutta (Dormand-Prince 5(4), Bogacki-Shampine
  3(2)), PETSc ``TSRK``;
* ``bdf``: fully implicit variable-step BDF (``TSBDF``, order 2), Newton-Krylov with a
  matrix-free Jacobian (``-snes_mf_operator``) preconditioned by the assembled exact Jacobian
  of the local terms (:class:`magtwin.micromag.llg.LocalJacobian`, block-Jacobi/ILU);
* ``arkimex``: IMEX additive Runge-Kutta (``TSARKIMEX`` 3): exchange and anisotropy (the stiff,
  local terms) implicit with the same JFNK solver, demag and Zeeman explicit, so the costly
  potential solve is done once per stage and never inside Newton.

Adaptive step control is PETSc's (``-llg_ts_adapt_*``; every TS/SNES/KSP option can be set
with the prefix ``llg_``). After each accepted step |m| is restored if it drifted by more than
``norm_tol`` (the step is then restarted, so no stale stage is reused). The run stops when
``t_end_ns`` is reached, the largest torque |m x B| falls below ``stop_torque_T``, the
average magnetisation crosses ``stop_crossing`` (linearly interpolated in time), or on
SIGTERM/SIGINT (after the current step: a consistent final state).
"""

from __future__ import annotations

import logging
import math
import signal
import time
from dataclasses import dataclass, field as dc_field

import numpy as np
from mpi4py import MPI
from petsc4py import PETSc

from magtwin.errors import ConfigError, ConvergenceError
from magtwin.io.mesh_artefact import MeshData
from magtwin.micromag.applied_field import FieldSchedule, _number
from magtwin.micromag.assemble import petsc_aij
from magtwin.micromag.curve import Simulation
from magtwin.micromag.llg import GAMMA_E, LocalJacobian, llg_rhs, max_torque, norm_deviation, renormalise
from magtwin.micromag.minimize import minimize

log = logging.getLogger("magtwin.dynamics")

METHODS = ("rk5dp", "rk3bs", "bdf", "arkimex")
DYNAMICS_DEFAULTS = {
    "alpha": None, "gamma_rad_per_sT": GAMMA_E, "t_end_ns": None, "method": "rk5dp",
    "dt0_ns": 1e-4, "dt_max_ns": 0.0, "rtol": 1e-5, "atol": 1e-5, "norm_tol": 1e-5,
    "stop_torque_T": 0.0, "stop_crossing": None, "snapshot_times_ns": [], "snapshot_every_ns": 0.0,
    "max_steps": 1_000_000, "relax_initial": False, "relax_torque_T": 1e-4,
}
COMPONENTS = {"x": (1.0, 0.0, 0.0), "y": (0.0, 1.0, 0.0), "z": (0.0, 0.0, 1.0)}


@dataclass
class DynamicsResult:
    """Time series of K records (every accepted step), snapshots and how the run stopped.

    ``snapshots`` maps index -> (t_ns, m (N, 3) in the mesh's node order) (rank 0 only).
    ``crossing`` is {t_ns, m_mean, field_T} of the stop-crossing (interpolated), or None.
    """

    t_ns: np.ndarray
    m_mean: np.ndarray
    J_T: np.ndarray
    field_T: np.ndarray
    energy_J: np.ndarray
    terms: tuple
    max_torque_T: np.ndarray
    stop_reason: str
    crossing: dict | None
    snapshots: dict = dc_field(default_factory=dict)
    parameters: dict = dc_field(default_factory=dict)
    stats: dict = dc_field(default_factory=dict)


def _num(v, key, source, positive=True, allow_zero=False) -> float:
    v = _number(v, key, source)
    if positive and (v < 0 or (v == 0 and not allow_zero)):
        raise ConfigError(f"'{key}' must be {'non-negative' if allow_zero else 'positive'}, got {v}", source)
    return float(v)


def check_dynamics(opts: dict, source=None) -> dict:
    """Merge defaults and validate; :class:`ConfigError` naming ``source`` and the key."""
    unknown = sorted(set(opts) - set(DYNAMICS_DEFAULTS))
    if unknown:
        raise ConfigError(f"unknown dynamics setting '{unknown[0]}'", source)
    o = {**DYNAMICS_DEFAULTS, **opts}
    if o["alpha"] is None:
        raise ConfigError("the damping 'alpha' is required", source)
    if o["t_end_ns"] is None:
        raise ConfigError("the end time 't_end_ns' is required", source)
    for k in ("alpha", "gamma_rad_per_sT", "t_end_ns", "dt0_ns", "rtol", "atol", "norm_tol"):
        o[k] = _num(o[k], k, source)
    for k in ("dt_max_ns", "stop_torque_T", "snapshot_every_ns", "relax_torque_T"):
        o[k] = _num(o[k], k, source, allow_zero=True)
    if o["method"] not in METHODS:
        raise ConfigError(f"'method' must be one of {', '.join(METHODS)}, got {o['method']!r}", source)
    if isinstance(o["max_steps"], bool) or not isinstance(o["max_steps"], int) or o["max_steps"] < 1:
        raise ConfigError(f"'max_steps' must be a positive integer, got {o['max_steps']!r}", source)
    try:
        o["snapshot_times_ns"] = sorted(float(t) for t in (o["snapshot_times_ns"] or []))
    except (TypeError, ValueError):
        raise ConfigError("'snapshot_times_ns' must be a list of times in ns", source) from None
    if any(t < 0 or not math.isfinite(t) for t in o["snapshot_times_ns"]):
        raise ConfigError("'snapshot_times_ns' must be finite, non-negative times", source)
    sc = o["stop_crossing"]
    if sc is not None:
        if not isinstance(sc, dict) or "component" not in sc:
            raise ConfigError("'stop_crossing' must be {component: x|y|z|[vx,vy,vz], level: value}", source)
        comp = sc["component"]
        if isinstance(comp, str):
            if comp not in COMPONENTS:
                raise ConfigError(f"'stop_crossing.component' must be x, y, z or a vector, got {comp!r}", source)
            vec = np.array(COMPONENTS[comp])
        else:
            try:
                vec = np.asarray(comp, float).reshape(3)
            except (TypeError, ValueError):
                raise ConfigError("'stop_crossing.component' must be x, y, z or 3 numbers", source) from None
            if not np.all(np.isfinite(vec)) or np.linalg.norm(vec) == 0:
                raise ConfigError("'stop_crossing.component' must be a non-zero vector", source)
            vec = vec / np.linalg.norm(vec)
        level = _num(sc.get("level", 0.0), "stop_crossing.level", source, positive=False)
        if abs(level) > 1:
            raise ConfigError(f"'stop_crossing.level' must be in [-1, 1] (<m> is normalised), got {level}", source)
        o["stop_crossing"] = {"component": vec.tolist(), "level": level}
    return o


class _Signals:
    """SIGTERM/SIGINT set a flag (the integrator stops after the current step)."""

    def __init__(self):
        self.caught = 0
        self._old = {}

    def __enter__(self):
        for s in (signal.SIGTERM, signal.SIGINT):
            try:
                self._old[s] = signal.signal(s, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def _handle(self, signum, frame):
        self.caught = signum

    def __exit__(self, *exc):
        for s, h in self._old.items():
            signal.signal(s, h)
        return False


class Dynamics:
    """An LLG run on ``mesh`` (see module docstring).

    Parameters
    ----------
    mesh, materials : as for ``magtwin simulate``
    schedule : the applied field B(t)
    options : dynamics settings (``DYNAMICS_DEFAULTS``; ``alpha`` and ``t_end_ns`` required)
    solver : field-term settings of :mod:`magtwin.micromag.curve` (``demag``, ``demag_pc``, ...)
    initial_m : (3,) direction or (N, 3) magnetisation in the mesh's node order; default the
        alignment axis
    """

    def __init__(self, mesh: MeshData, materials: dict, schedule: FieldSchedule, options: dict,
                 solver: dict | None = None, initial_m=None, comm=MPI.COMM_WORLD,
                 sources: dict | None = None):
        src = sources or {}
        self.opt = check_dynamics(options, src.get("settings"))
        self.sim = Simulation(mesh, materials, {}, dict(solver or {}), comm, sources)
        self.state = self.sim.state
        self.field = self.sim.effective
        self.schedule = schedule
        self.mesh = mesh
        self.comm = comm
        st = self.state
        if initial_m is None:
            st.set_uniform(mesh.alignment_axis)
        else:
            a = np.asarray(initial_m, float)
            if a.shape == (3,):
                st.set_uniform(a)
            elif a.shape == (st.n_nodes, 3):
                st.scatter_m(a)
            else:
                raise ConfigError(f"initial magnetisation must be 3 numbers or ({st.n_nodes}, 3), got {a.shape}",
                                  src.get("initial"))
        self.n_rhs = 0

    # -- field evaluation ------------------------------------------------------------------
    def _load(self, x: PETSc.Vec) -> np.ndarray:
        x.copy(self.state.m)
        return self.state.m_local

    def _rhs(self, ts, t, x, f):
        m = self._load(x)
        self.field.b_ext = self.schedule(t)
        b = self.field.compute()
        llg_rhs(m, b, self.opt["alpha"], self.opt["gamma_rad_per_sT"], out=f.getArray().reshape(-1, 3))
        self.n_rhs += 1

    def _local_field(self, m) -> np.ndarray:
        """Exchange + anisotropy field (T) of the state's m (the IMEX implicit part)."""
        h = self.field.h
        self.field.exchange.field(self.state.m, h["exchange"])
        self.field.anisotropy.field(None, h["anisotropy"])
        return h["exchange"] + h["anisotropy"]

    def _nonlocal_field(self, t) -> np.ndarray:
        from magtwin.micromag import zeeman
        st, h = self.state, self.field.h
        zeeman.field(self.schedule(t), h["zeeman"], st.magnetic)
        out = h["zeeman"].copy()
        if self.field.demag is not None:
            self.field.demag.field(st.m, h["demag"])
            out += h["demag"]
        return out

    def _ifunction(self, ts, t, x, xdot, f):
        m = self._load(x)
        if self.opt["method"] == "arkimex":
            b = self._local_field(m)
        else:
            self.field.b_ext = self.schedule(t)
            b = self.field.compute()
        g = llg_rhs(m, b, self.opt["alpha"], self.opt["gamma_rad_per_sT"])
        f.getArray()[:] = xdot.getArray() - g.ravel()
        self.n_rhs += 1

    def _rhs_explicit(self, ts, t, x, f):
        m = self._load(x)
        b = self._nonlocal_field(t)
        llg_rhs(m, b, self.opt["alpha"], self.opt["gamma_rad_per_sT"], out=f.getArray().reshape(-1, 3))

    def _ijacobian(self, ts, t, x, xdot, shift, A, P):
        m = self._load(x).copy()
        if self.opt["method"] == "arkimex":
            b = self._local_field(m)
        else:
            self.field.b_ext = self.schedule(t)
            b = self.field.compute()
        a = self._jac.shifted(m, b, self.opt["alpha"], self.opt["gamma_rad_per_sT"], shift)
        P.zeroEntries()
        P.setValuesCSR(a.indptr.astype(PETSc.IntType), a.indices.astype(PETSc.IntType), a.data)
        P.assemble()
        if A.handle != P.handle:
            A.assemble()
        return True

    # -- set-up ----------------------------------------------------------------------------
    def _make_ts(self, x: PETSc.Vec) -> PETSc.TS:
        o, st = self.opt, self.state
        ts = PETSc.TS().create(comm=self.comm)
        ts.setOptionsPrefix("llg_")
        ts.setProblemType(PETSc.TS.ProblemType.NONLINEAR)
        opts = PETSc.Options()
        mine = []  # options set here (not by the user): removed again after setFromOptions

        def default(name, value):
            if not opts.hasName("llg_" + name):
                opts.setValue("llg_" + name, value)
                mine.append("llg_" + name)

        if o["method"] in ("rk5dp", "rk3bs"):
            ts.setType(PETSc.TS.Type.RK)
            ts.setRKType(o["method"][2:])
            ts.setRHSFunction(self._rhs, x.duplicate())
        else:
            k3 = self.field.exchange.K
            indptr, indices, data = k3.getValuesCSR()
            import scipy.sparse as sp
            csr3 = sp.csr_matrix((data, indices, indptr), shape=(3 * st.n_local, 3 * st.n_nodes))
            k = csr3[0::3, 0::3]
            self._jac = LocalJacobian(k, st.inv_js_vol, st.lo, self.field.anisotropy)
            full = self._jac.full_pattern()
            self._P = petsc_aij(full, (3 * st.n_local, 3 * st.n_nodes), (3 * st.n_local, 3 * st.n_nodes),
                                self.comm)
            if o["method"] == "bdf":
                ts.setType(PETSc.TS.Type.BDF)
                default("ts_bdf_order", 2)
            else:
                ts.setType(PETSc.TS.Type.ARKIMEX)
                ts.setARKIMEXType(PETSc.TS.ARKIMEXType.ARKIMEX3)
                ts.setRHSFunction(self._rhs_explicit, x.duplicate())
            ts.setIFunction(self._ifunction, x.duplicate())
            ts.setIJacobian(self._ijacobian, self._P, self._P)
            default("snes_mf_operator", "1")
            default("ksp_type", "gmres")
            default("ksp_rtol", "1e-4")
            default("snes_rtol", "1e-8")
            ts.setMaxSNESFailures(-1)
        ts.setTolerances(rtol=o["rtol"], atol=o["atol"])
        ts.setTimeStep(o["dt0_ns"])
        ts.setMaxSteps(o["max_steps"])
        ts.setMaxStepRejections(100)
        if o["dt_max_ns"] > 0:
            default("ts_adapt_dt_max", repr(o["dt_max_ns"]))
        ts.setExactFinalTime(PETSc.TS.ExactFinalTime.MATCHSTEP)
        ts.setFromOptions()
        for name in mine:
            opts.delValue(name)
        return ts

    # -- run -------------------------------------------------------------------------------
    def run(self, progress=None) -> DynamicsResult:
        o, st, comm = self.opt, self.state, self.comm
        t_wall = time.perf_counter()
        if o["relax_initial"]:
            self.field.b_ext = np.zeros(3)
            res = minimize(self.field, torque_tol_T=o["relax_torque_T"],
                           max_iterations=self.sim.solver["max_iterations"])
            log.info("initial state relaxed in zero field: %d iterations, torque %.2e T", res.iterations,
                     res.max_torque_T)
            if not res.converged:
                raise ConvergenceError(f"relaxing the initial state did not converge within "
                                       f"{res.iterations} iterations (torque {res.max_torque_T:.2e} T)")
        x = st.m.duplicate()
        st.m.copy(x)
        ts = self._make_ts(x)
        self.ts = ts
        ts.setTime(0.0)

        vol_tot = st.total_volume
        rec = {"t": [], "m": [], "J": [], "b": [], "E": [], "tq": []}
        sc = o["stop_crossing"]
        sc_vec = np.asarray(sc["component"]) if sc else None
        state = {"reason": None, "crossing": None, "bad": None, "restarts": 0}
        signals = _Signals()

        def record(t):
            m = st.m_local
            self.field.b_ext = self.schedule(t)
            b = self.field.compute()
            s = np.concatenate([(st.vol[:, None] * m).sum(axis=0), (st.js_vol[:, None] * m).sum(axis=0)])
            mx = np.array([max_torque(m, b), float(signals.caught), float(not np.all(np.isfinite(m)))])
            s_all, mx_all = np.empty_like(s), np.empty_like(mx)
            comm.Allreduce(s, s_all, op=MPI.SUM)
            comm.Allreduce(mx, mx_all, op=MPI.MAX)
            energies = self.field.energies()
            mm = s_all[:3] / vol_tot
            rec["t"].append(float(t))
            rec["m"].append(mm)
            rec["J"].append(s_all[3:] / vol_tot)
            rec["b"].append(self.field.b_ext.copy())
            rec["E"].append([energies[k] for k in self.field.terms])
            rec["tq"].append(mx_all[0])
            return mm, mx_all

        def poststep(ts_):
            t = ts_.getTime()
            xs = ts_.getSolution()
            m = xs.getArray().reshape(-1, 3)
            dev = comm.allreduce(norm_deviation(m, st.magnetic), op=MPI.MAX)
            if dev > 0.2:  # an unstable step, not drift: the integrator has diverged
                state["bad"] = t
                state["reason"] = "diverged"
                ts_.setConvergedReason(PETSc.TS.ConvergedReason.CONVERGED_USER)
                return
            if dev > o["norm_tol"]:
                renormalise(m, st.magnetic)
                ts_.restartStep()
                state["restarts"] += 1
            xs.copy(st.m)
            mm, mx = record(t)
            if mx[2] > 0 or not np.all(np.isfinite(mm)):
                state["bad"] = t
                state["reason"] = "diverged"
                ts_.setConvergedReason(PETSc.TS.ConvergedReason.CONVERGED_USER)
                return
            if progress is not None:
                progress(t, mm)
            if sc is not None:
                v = float(mm @ sc_vec) - sc["level"]
                v0 = float(rec["m"][-2] @ sc_vec) - sc["level"] if len(rec["m"]) > 1 else v
                if v == 0.0 or v * v0 < 0:
                    w = v0 / (v0 - v) if v != v0 else 1.0
                    t0 = rec["t"][-2] if len(rec["t"]) > 1 else t
                    state["crossing"] = {
                        "t_ns": t0 + w * (t - t0),
                        "m_mean": ((1 - w) * rec["m"][-2] + w * mm).tolist() if len(rec["m"]) > 1 else mm.tolist(),
                        "field_T": ((1 - w) * rec["b"][-2] + w * rec["b"][-1]).tolist() if len(rec["b"]) > 1
                        else rec["b"][-1].tolist()}
                    state["reason"] = "crossing"
                    ts_.setConvergedReason(PETSc.TS.ConvergedReason.CONVERGED_USER)
                    return
            if o["stop_torque_T"] > 0 and mx[0] < o["stop_torque_T"]:
                state["reason"] = "torque"
                ts_.setConvergedReason(PETSc.TS.ConvergedReason.CONVERGED_USER)
                return
            if mx[1] > 0:
                state["reason"] = "signal"
                ts_.setConvergedReason(PETSc.TS.ConvergedReason.CONVERGED_USER)

        ts.setPostStep(poststep)
        snaps: dict[int, tuple[float, np.ndarray]] = {}

        def snapshot(t):
            g = st.gather_m(root=0)
            if st.rank == 0:
                snaps[len(snaps)] = (float(t), g)

        # stop targets: snapshot times, field discontinuities, end time
        snap_t = set(t for t in o["snapshot_times_ns"] if 0 < t < o["t_end_ns"])
        if o["snapshot_every_ns"] > 0:
            k = int(math.floor(o["t_end_ns"] / o["snapshot_every_ns"] + 1e-9))
            snap_t.update(o["snapshot_every_ns"] * i for i in range(1, k + 1) if o["snapshot_every_ns"] * i < o["t_end_ns"])
        targets = sorted(snap_t | set(self.schedule.breakpoints_ns(o["t_end_ns"])) | {o["t_end_ns"]})

        record(0.0)
        snapshot(0.0)
        reason = None
        with signals:
            for target in targets:
                ts.setMaxTime(target)
                try:
                    ts.solve(x)
                except PETSc.Error as exc:
                    raise ConvergenceError(f"the LLG integrator ({o['method']}) failed at t = "
                                           f"{ts.getTime():.6g} ns (PETSc error {exc.ierr})") from None
                r = ts.getConvergedReason()
                if r < 0:
                    raise ConvergenceError(
                        f"the LLG integrator ({o['method']}) diverged at t = {ts.getTime():.6g} ns "
                        f"(TS reason {r}, time step {ts.getTimeStep():.3g} ns); try a smaller dt0_ns, "
                        f"tighter rtol or an implicit method")
                if state["reason"] is not None:
                    reason = state["reason"]
                    break
                if target in snap_t:
                    snapshot(target)
            if state["reason"] == "diverged":
                raise ConvergenceError(f"the integration became unstable (|m| lost or NaN) at t = {state['bad']:.6g} ns "
                                       f"(method {o['method']}); reduce rtol/dt0_ns or use an implicit method")
        if reason is None:
            reason = "time"
        x.copy(st.m)
        t_final = ts.getTime()
        snapshot(t_final)  # the final state, also when stopped by a signal
        stats = {"steps": int(ts.getStepNumber()), "rhs_evaluations": int(self.n_rhs),
                 "renormalisations": state["restarts"], "wall_s": time.perf_counter() - t_wall,
                 "demag_iterations": self.field.demag.total_iterations if self.field.demag else 0,
                 "n_nodes": st.n_nodes, "ranks": st.size, "t_final_ns": float(t_final)}
        ts.destroy()
        if st.rank == 0:
            log.info("stopped (%s) at t = %.6g ns after %d steps, %d field evaluations, %.1f s", reason,
                     t_final, stats["steps"], stats["rhs_evaluations"], stats["wall_s"])
        return DynamicsResult(
            t_ns=np.array(rec["t"]), m_mean=np.array(rec["m"]), J_T=np.array(rec["J"]),
            field_T=np.array(rec["b"]), energy_J=np.array(rec["E"]), terms=tuple(self.field.terms),
            max_torque_T=np.array(rec["tq"]), stop_reason=reason, crossing=state["crossing"],
            snapshots=snaps, stats=stats,
            parameters={"dynamics": o, "field_schedule": self.schedule.describe(),
                        "solver": self.sim.solver, "materials": self.sim.materials.table},
        )


def simulate_dynamics(mesh: MeshData, materials: dict, schedule: FieldSchedule, options: dict,
                      solver: dict | None = None, initial_m=None, comm=MPI.COMM_WORLD,
                      sources: dict | None = None, progress=None) -> DynamicsResult:
    """Integrate the LLG equation on ``mesh`` (see :class:`Dynamics`)."""
    return Dynamics(mesh, materials, schedule, options, solver, initial_m, comm, sources).run(progress)

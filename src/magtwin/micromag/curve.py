"""Quasi-static demagnetisation curve: energy minimisation along a field sweep with automatic
refinement of the field step where the magnetisation jumps.

The sweep starts from the state saturated along +h (h: unit vector at ``angle_deg`` from the
alignment axis, tilted towards the axis-perpendicular direction closest to x) at
``start_T`` and goes to ``stop_T`` in steps of ``step_T``. When the polarisation along h
changes by more than ``jump_threshold`` * <Js> between two accepted points, the interval is
bisected, each trial relaxed from the last state before the jump, until the jump is located
to within ``refine_tol_T``; the sweep then continues from the state just after the jump, so the
recorded branch is always a monotone descending field history. With the solver setting
``stop_when_reversed`` the sweep ends at the first point with J.h < 0 (time-to-coercivity runs).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from dataclasses import dataclass, field as dc_field

import numpy as np
from mpi4py import MPI

from magtwin.errors import ConfigError
from magtwin.io.mesh_artefact import MeshData, check_mesh
from magtwin.micromag.checkpoint import Interrupted, SignalFlag, fingerprint, read_checkpoint, write_checkpoint
from magtwin.micromag.demag import Demag
from magtwin.micromag.effective import EffectiveField
from magtwin.micromag.materials import resolve_materials
from magtwin.micromag.minimize import minimize
from magtwin.micromag.precondition import NAMES as PRECONDITIONERS, make_preconditioner
from magtwin.micromag.state import State

log = logging.getLogger("magtwin.micromag")

FIELD_DEFAULTS = {"start_T": 8.0, "stop_T": -8.0, "step_T": 0.25, "angle_deg": 1.0}
SOLVER_DEFAULTS = {
    "demag": True, "torque_tol_T": 1e-4, "max_iterations": 20000, "max_angle_rad": 0.3,
    "jump_threshold": 0.05, "refine_tol_T": 0.01, "max_refinements": 50,
    "snapshot_every": 0, "snapshot_fields_T": [],
    "demag_pc": "gamg", "demag_rtol": 1e-6, "demag_rtol_loose": 1e-2, "air_inner_ratio": 1.5, "air_shell_ratio": 2.0,
    "air_shell_layers": 8, "air_sphere_subdivisions": 3, "air_quality": 1.4,
    "demag_method": "airshell",
    "air_max_volume_nm3": None, "checkpoint_interval_s": 600.0, "stop_when_reversed": False,
    "extrapolate": True, "preconditioner": "exchange",
}


@dataclass
class Curve:
    """A demagnetisation curve (arrays of K points, descending field history).

    ``snapshots`` maps point index -> m (N, 3) in the mesh's node order (rank 0 only).
    """

    field_T: np.ndarray
    J_T: np.ndarray
    J_along_field_T: np.ndarray
    energy_J: np.ndarray
    terms: tuple
    iterations: np.ndarray
    converged: np.ndarray
    max_torque: np.ndarray
    field_angle_deg: float
    field_direction: np.ndarray
    Js_mean_T: float
    magnet_volume_nm3: float
    jumps: list = dc_field(default_factory=list)
    snapshots: dict = dc_field(default_factory=dict)
    parameters: dict = dc_field(default_factory=dict)
    demag_iterations: int = 0
    n_air_nodes: int = 0


def field_direction(alignment_axis, angle_deg: float) -> np.ndarray:
    """Unit vector at ``angle_deg`` from ``alignment_axis``, tilted towards x (or y if the
    axis is along x)."""
    a = np.asarray(alignment_axis, float)
    a = a / np.linalg.norm(a)
    ref = np.array([1.0, 0, 0]) if abs(a[0]) < 0.9 else np.array([0, 1.0, 0])
    e = ref - (ref @ a) * a
    e /= np.linalg.norm(e)
    t = math.radians(angle_deg)
    return math.cos(t) * a + math.sin(t) * e


def check_settings(field: dict, solver: dict, source=None) -> tuple[dict, dict]:
    """Merge defaults and validate; ConfigError naming ``source`` and the key."""
    unknown = set(field) - set(FIELD_DEFAULTS)
    if unknown:
        raise ConfigError(f"unknown field setting '{sorted(unknown)[0]}'", source)
    unknown = set(solver) - set(SOLVER_DEFAULTS)
    if unknown:
        raise ConfigError(f"unknown solver setting '{sorted(unknown)[0]}'", source)
    f = {**FIELD_DEFAULTS, **field}
    s = {**SOLVER_DEFAULTS, **solver}
    for k in ("start_T", "stop_T", "step_T", "angle_deg"):
        v = f[k]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ConfigError(f"field '{k}' must be a finite number, got {v!r}", source)
        f[k] = float(v)
    if not 0.0 <= f["angle_deg"] <= 90.0:
        raise ConfigError(f"field angle {f['angle_deg']} deg is out of range [0, 90]", source)
    if f["step_T"] <= 0:
        raise ConfigError(f"field step must be positive, got {f['step_T']}", source)
    if f["stop_T"] >= f["start_T"]:
        raise ConfigError(f"field stop ({f['stop_T']}) must be below field start ({f['start_T']})", source)
    if (f["start_T"] - f["stop_T"]) / f["step_T"] > 1e6:
        raise ConfigError("more than 10^6 field steps; increase the field step", source)
    for k in ("torque_tol_T", "max_angle_rad", "jump_threshold", "refine_tol_T", "demag_rtol", "demag_rtol_loose"):
        if not isinstance(s[k], (int, float)) or s[k] <= 0:
            raise ConfigError(f"solver '{k}' must be a positive number, got {s[k]!r}", source)
    if not isinstance(s["checkpoint_interval_s"], (int, float)) or s["checkpoint_interval_s"] < 0:
        raise ConfigError(f"solver 'checkpoint_interval_s' must be a number >= 0, got {s['checkpoint_interval_s']!r}", source)
    for k in ("max_iterations", "max_refinements", "snapshot_every"):
        if isinstance(s[k], bool) or not isinstance(s[k], int) or s[k] < 0:
            raise ConfigError(f"solver '{k}' must be a non-negative integer, got {s[k]!r}", source)
    if s["demag_pc"] not in ("gamg", "hypre"):
        raise ConfigError(f"solver 'demag_pc' must be gamg or hypre, got {s['demag_pc']!r}", source)
    if s["preconditioner"] not in PRECONDITIONERS:
        raise ConfigError(f"solver 'preconditioner' must be one of {', '.join(PRECONDITIONERS)}, "
                          f"got {s['preconditioner']!r}", source)
    if s["demag_method"] not in ("airshell", "fembem"):
        raise ConfigError(f"solver 'demag_method' must be airshell or fembem, got {s['demag_method']!r}", source)
    return f, s


def field_grid(start: float, stop: float, step: float) -> np.ndarray:
    n = int(math.floor((start - stop) / step + 1e-9))
    g = start - step * np.arange(n + 1)
    if g[-1] - stop > 1e-9 * max(1.0, abs(stop)):
        g = np.append(g, stop)
    return g


class _JumpSeen(Exception):
    """Internal: the magnetisation left the branch during a watched relaxation."""


class Simulation:
    """Set-up of one curve computation (state, field terms) on ``comm``."""

    def __init__(self, mesh: MeshData, materials: dict, field: dict, solver: dict,
                 comm=MPI.COMM_WORLD, sources: dict | None = None):
        src = sources or {}
        self.field, self.solver = check_settings(field, solver, src.get("settings"))
        check_mesh(mesh, src.get("mesh"))
        self.materials = resolve_materials(materials, mesh.regions, mesh.region_id,
                                           mesh.alignment_axis, src.get("materials"))
        self.mesh = mesh
        self.comm = comm
        self.state = State(mesh.points_nm, mesh.tetrahedra, mesh.region_id, self.materials, comm)
        s = self.solver
        demag = None
        if s["demag"] and s["demag_method"] == "fembem":
            from magtwin.micromag.fembem import FemBem

            demag = FemBem(self.state, {"pc": s["demag_pc"], "rtol": s["demag_rtol"]}, source=src.get("mesh"))
        elif s["demag"]:
            demag = Demag(self.state, {
                "pc": s["demag_pc"], "rtol": s["demag_rtol"], "inner_ratio": s["air_inner_ratio"],
                "shell_ratio": s["air_shell_ratio"], "shell_layers": s["air_shell_layers"],
                "sphere_subdivisions": s["air_sphere_subdivisions"], "air_quality": s["air_quality"],
                "air_max_volume_nm3": s["air_max_volume_nm3"]}, source=src.get("mesh"))
        self.effective = EffectiveField(self.state, demag)
        self.preconditioner = make_preconditioner(s["preconditioner"], self.effective)
        self.h = field_direction(mesh.alignment_axis, self.field["angle_deg"])
        self._warn_resolution()
        self.js_mean = self.state.total_js_vol / self.state.total_volume

    def _warn_resolution(self) -> None:
        """Log a warning when elements in anisotropic regions are much larger than the wall
        parameter sqrt(A/K1) (1.3 nm for Nd2Fe14B): switching fields then come out too high
        (walls pinned by the mesh)."""
        el = self.state.elements
        k1, a = el.mat["K1_J_per_m3"], el.mat["A_J_per_m"]
        hard = (k1 > 0) & (a > 0)
        ratio = 0.0
        if hard.any():
            edge = np.abs(el.vol[hard] * 6 * np.sqrt(2)) ** (1 / 3)     # edge of a regular tet
            ratio = float((edge / (np.sqrt(a[hard] / k1[hard]) * 1e9)).max())
        ratio = self.comm.allreduce(ratio, op=MPI.MAX)
        if ratio > 2.0 and self.state.rank == 0:
            log.warning("elements up to %.1f x the wall parameter sqrt(A/K1) in anisotropic regions: "
                        "reversal fields may be too high (refine the mesh)", ratio)

    def relax(self, b_T: float, callback=None):
        self.effective.b_ext = b_T * self.h
        s = self.solver
        rtol = (s["demag_rtol"], max(s["demag_rtol"], s["demag_rtol_loose"]))
        return minimize(self.effective, torque_tol_T=s["torque_tol_T"], max_iterations=s["max_iterations"],
                        max_angle_rad=s["max_angle_rad"], callback=callback,
                        demag_rtol=rtol if rtol[1] > rtol[0] else None, preconditioner=self.preconditioner)

    def parameters(self) -> dict:
        return {"materials": self.materials.table, "field": self.field, "solver": self.solver}

    def fingerprint(self) -> str:
        return fingerprint(self.mesh, self.materials.table, self.field, self.solver)

    def run(self, checkpoint_path=None) -> Curve:
        """Sweep the field; with ``checkpoint_path``, resume from it when present and write it
        periodically and on SIGTERM/SIGUSR1 (see :mod:`magtwin.micromag.checkpoint`)."""
        with SignalFlag() as sig:
            return self._run(Path(checkpoint_path) if checkpoint_path else None, sig)

    def _run(self, ckpt: Path | None, sig: SignalFlag) -> Curve:
        st, s, f = self.state, self.solver, self.field
        comm = st.comm
        grid = list(field_grid(f["start_T"], f["stop_T"], f["step_T"]))
        thresh = s["jump_threshold"] * max(self.js_mean, 1e-12)
        pts: list[dict] = []        # "m" (local) kept only for the last point
        jumps: list[tuple[float, float]] = []
        snapshots: dict[int, np.ndarray] = {}      # rank 0: point -> m (input order)
        snap_fields = sorted(s["snapshot_fields_T"], reverse=True)
        fp = self.fingerprint() if ckpt is not None else ""
        i = n_ref = 0
        taken: set[int] = set()                    # snapshot points (known on every rank)
        st.set_uniform(self.h)
        if ckpt is not None and ckpt.exists():
            meta, m_full, snaps = read_checkpoint(ckpt, fp)
            pts = meta["points"]
            for p in pts:
                p["J"] = np.asarray(p["J"])
            i, n_ref = meta["i"], meta["n_ref"]
            jumps = [tuple(j) for j in meta["jumps"]]
            taken = set(snaps)
            snapshots = snaps if st.rank == 0 else {}
            st.scatter_m(m_full)
            if pts:
                pts[-1]["m"] = st.m_local.copy()
            log.info("resumed from %s at point %d (field %+.4f T)", ckpt, len(pts),
                     pts[-1]["field"] if pts else grid[0])
        t_ckpt = MPI.Wtime()
        safe = {"n": len(pts), "i": i, "n_ref": n_ref, "n_jumps": len(jumps),
                "m": pts[-1]["m"] if pts else st.m_local.copy()}

        def snapshot(k):
            # collective: the decision must not depend on rank-0-only data
            if k in taken or k < 0 or k >= len(pts) or pts[k].get("m") is None:
                return
            taken.add(k)
            st_m = st.m_local.copy()
            st.m_local[:] = pts[k]["m"]
            g = st.gather_m(root=0)
            st.m_local[:] = st_m
            if st.rank == 0:
                snapshots[k] = g

        branch: list = []    # (field, m) of the point before the last one, on the same branch

        def record(b, res, jump=False):
            J = st.mean_polarisation()
            branch[:] = [] if jump or not pts or pts[-1].get("m") is None else [(pts[-1]["field"], pts[-1]["m"])]
            if pts:
                pts[-1]["m"] = None
            pts.append({"field": b, "J": J, "Jh": float(J @ self.h), "E": self.effective.energies(),
                        "it": res.iterations, "conv": res.converged, "tq": res.max_torque_T,
                        "m": st.m_local.copy()})
            log.info("field %+.4f T  J.h %+.4f T  iterations %d%s", b, pts[-1]["Jh"], res.iterations,
                     "" if res.converged else "  NOT CONVERGED")
            k = len(pts) - 1
            if k == 0 or (s["snapshot_every"] and k % s["snapshot_every"] == 0):
                snapshot(k)
            while snap_fields and b <= snap_fields[0] + 1e-12:
                snap_fields.pop(0)
                snapshot(k)
            return pts[-1]

        def save():
            cur = st.m_local.copy()
            st.m_local[:] = safe["m"]
            m_full = st.gather_m(root=0)
            st.m_local[:] = cur
            if st.rank == 0:
                meta = {"points": [{k: (v.tolist() if isinstance(v, np.ndarray) else v)
                                    for k, v in p.items() if k != "m"} for p in pts[:safe["n"]]],
                        "i": safe["i"], "n_ref": safe["n_ref"], "jumps": jumps[:safe["n_jumps"]],
                        "snapshots": sorted(k for k in taken if k < safe["n"])}
                write_checkpoint(ckpt, fp, meta, m_full,
                                 {k: v for k, v in snapshots.items() if k < safe["n"]})
            comm.Barrier()

        def mark_safe():
            nonlocal t_ckpt
            safe.update(n=len(pts), i=i, n_ref=n_ref, n_jumps=len(jumps), m=pts[-1]["m"])
            if ckpt is None:
                return
            interval = float(s.get("checkpoint_interval_s") or 0)
            due = interval > 0 and comm.allreduce(MPI.Wtime() - t_ckpt, op=MPI.MAX) >= interval
            if due:
                save()
                t_ckpt = MPI.Wtime()
            check_signal()

        def check_signal(_it=None):
            if (_it is None or _it % 20 == 0) and sig.pending(comm):
                if ckpt is not None:
                    save()
                raise Interrupted(f"stopped by signal {sig.pending(comm)}; checkpoint written, run "
                                  "the same command again to resume" if ckpt is not None else
                                  "stopped by a signal (no checkpoint file configured)", ckpt)

        def predict(b):
            """Start from the state linearly extrapolated in the field along the branch
            (m_k + t (m_k - m_k-1), t = (b - b_k) / (b_k - b_k-1) <= 1, renormalised): the
            reversible part of the curve then needs fewer iterations per point."""
            if not s["extrapolate"] or not branch or not pts or pts[-1].get("m") is None:
                return
            (b0, m0), b1, m1 = branch[0], pts[-1]["field"], pts[-1]["m"]
            if b0 <= b1 or b >= b1:
                return
            t = min((b1 - b) / (b0 - b1), 1.0)
            m = m1 + t * (m1 - m0)
            norm = np.linalg.norm(m, axis=1, keepdims=True)
            st.m_local[:] = np.where(st.magnetic[:, None], m / np.where(norm > 0, norm, 1.0), 0.0)

        def relax_watch(b, ref_jh):
            """Relax at ``b``; abort early (returns None) once J.h has left ``ref_jh`` by more
            than the jump threshold: only the fact of the jump matters for the bisection."""
            def cb(it):
                check_signal(it)
                if it % 10 == 0 and abs(float(st.mean_polarisation() @ self.h) - ref_jh) > thresh:
                    raise _JumpSeen
            try:
                return self.relax(b, cb)
            except _JumpSeen:
                return None

        def jumped(res):
            return res is None or abs(float(st.mean_polarisation() @ self.h) - pts[-1]["Jh"]) > thresh

        while i < len(grid):
            b = grid[i]
            refine = bool(pts) and n_ref < s["max_refinements"] and pts[-1]["field"] - b > s["refine_tol_T"]
            predict(b)
            res = relax_watch(b, pts[-1]["Jh"]) if refine else self.relax(b, check_signal)
            if refine and jumped(res):
                n_ref += 1
                ha, hb = pts[-1]["field"], b
                m_b, res_b = st.m_local.copy(), res
                while ha - hb > s["refine_tol_T"]:
                    hm = 0.5 * (ha + hb)
                    st.m_local[:] = pts[-1]["m"]
                    predict(hm)
                    r = relax_watch(hm, pts[-1]["Jh"])
                    if jumped(r):
                        hb, m_b, res_b = hm, st.m_local.copy(), r
                    else:
                        ha = hm
                        record(hm, r)
                st.m_local[:] = m_b
                if res_b is None:   # finish the reversal that was cut short
                    res_b = self.relax(hb, check_signal)
                else:
                    self.effective.b_ext = hb * self.h
                    self.effective.compute()
                is_jump = jumped(res_b)
                if is_jump:  # else: a fast but smooth change, resolved by the bisection points
                    snapshot(len(pts) - 1)
                record(hb, res_b, jump=is_jump)
                if is_jump:
                    snapshot(len(pts) - 1)
                    jumps.append((ha, hb))
                    log.info("jump located between %+.4f and %+.4f T", ha, hb)
                if hb <= b:
                    i += 1
                mark_safe()
                if s["stop_when_reversed"] and pts[-1]["Jh"] < 0:
                    break
                continue
            if pts and jumped(res):
                snapshot(len(pts) - 1)
                record(b, res, jump=True)
                snapshot(len(pts) - 1)
            else:
                record(b, res)
            i += 1
            mark_safe()
            if s["stop_when_reversed"] and pts[-1]["Jh"] < 0:
                break

        snapshot(len(pts) - 1)
        terms = self.effective.terms
        dm = self.effective.demag
        return Curve(
            field_T=np.array([p["field"] for p in pts]),
            J_T=np.array([p["J"] for p in pts]),
            J_along_field_T=np.array([p["Jh"] for p in pts]),
            energy_J=np.array([[p["E"][t] for t in terms] for p in pts]),
            terms=tuple(terms),
            iterations=np.array([p["it"] for p in pts], dtype=np.int64),
            converged=np.array([p["conv"] for p in pts], dtype=bool),
            max_torque=np.array([p["tq"] for p in pts]),
            field_angle_deg=f["angle_deg"], field_direction=self.h, Js_mean_T=self.js_mean,
            magnet_volume_nm3=st.total_volume, jumps=jumps, snapshots=snapshots,
            parameters=self.parameters(),
            demag_iterations=dm.total_iterations if dm is not None else 0,
            n_air_nodes=dm.n_air_nodes if dm is not None else 0,
        )


def simulate_curve(mesh: MeshData, materials: dict, field: dict, solver: dict,
                   comm=MPI.COMM_WORLD, sources: dict | None = None) -> Curve:
    """Compute the demagnetisation curve of ``mesh`` (see module docstring).

    Parameters
    ----------
    mesh : the magnet mesh (same on every rank)
    materials : materials mapping (:mod:`magtwin.micromag.materials`)
    field : ``start_T``, ``stop_T``, ``step_T``, ``angle_deg``
    solver : see ``SOLVER_DEFAULTS`` (``demag``, ``torque_tol_T``, ``max_iterations``, ...)
    comm : MPI communicator
    sources : optional file names (``mesh``, ``materials``, ``settings``) for error messages
    """
    return Simulation(mesh, materials, field, solver, comm, sources).run()

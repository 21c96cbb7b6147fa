"""``magtwin dynamics``: Landau-Lifshitz-Gilbert dynamics of a mesh artefact (PETSc TS).

Run in parallel as ``mpirun -n N magtwin dynamics ...``. The field is constant (``--field``),
ramped (``--field`` + ``--ramp``) or given by a YAML schedule (``--field-file``, see
:mod:`magtwin.micromag.applied_field`). Every PETSc TS/SNES/KSP option can be passed with
the prefix ``llg_`` in PETSC_OPTIONS (e.g. ``-llg_ts_adapt_dt_max 1e-3``).

``magtwin movie``: off-screen rendered image sequence of a dynamics artefact.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from magtwin.cli._common import add_out_argument


def register(sub) -> None:
    p = sub.add_parser("dynamics", help="LLG magnetisation dynamics (MPI-parallel, PETSc TS)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mesh", type=Path, required=True, help="mesh artefact (07_mesh.h5)")
    p.add_argument("--materials", type=Path, required=True, help="materials YAML")
    p.add_argument("--alpha", type=float, required=True, help="Gilbert damping (> 0)")
    p.add_argument("--gamma", type=float, help="gyromagnetic ratio in rad/(s T) (default 1.76086e11)")
    p.add_argument("--t-end-ns", type=float, required=True, help="end time in ns")
    p.add_argument("--field", help="applied field mu0H: 'BX,BY,BZ' or a scalar along --field-direction (write --field=-1,0,0 for a leading minus)")
    p.add_argument("--field-unit", choices=("T", "mT"), default="T", help="unit of --field (default T)")
    p.add_argument("--ramp", help="ramp rate in T/s: 'RX,RY,RZ' or a scalar along --field-direction")
    p.add_argument("--field-direction", help="unit direction 'X,Y,Z' for scalar --field/--ramp")
    p.add_argument("--field-file", type=Path, help="YAML field schedule (constant, ramp or steps)")
    p.add_argument("--method", choices=("rk5dp", "rk3bs", "bdf", "arkimex"), default="rk5dp",
                   help="explicit adaptive RK (rk5dp, rk3bs), implicit BDF or IMEX ARK with "
                        "Jacobian-free Newton-Krylov (default rk5dp)")
    p.add_argument("--dt0-ns", type=float, help="first time step in ns (default 1e-4)")
    p.add_argument("--dt-max-ns", type=float, help="largest time step in ns (default unlimited)")
    p.add_argument("--rtol", type=float, help="relative error tolerance per step (default 1e-5)")
    p.add_argument("--atol", type=float, help="absolute error tolerance per step (default 1e-5)")
    p.add_argument("--stop-torque", type=float, help="stop when max |m x B| < this (T)")
    p.add_argument("--stop-crossing", metavar="COMP[:LEVEL]",
                   help="stop when <m> along COMP (x, y, z or 'vx,vy,vz') crosses LEVEL (default 0)")
    p.add_argument("--snapshots-ns", help="comma-separated snapshot times in ns")
    p.add_argument("--snapshot-every-ns", type=float, help="snapshot interval in ns")
    p.add_argument("--initial-m", help="initial uniform direction 'X,Y,Z' (default alignment axis)")
    p.add_argument("--initial", type=Path, help="start from the last snapshot of this artefact")
    p.add_argument("--relax", action="store_true", help="relax the initial state in zero field first")
    p.add_argument("--relax-torque", type=float, help="torque tolerance of --relax in T (default 1e-4)")
    p.add_argument("--no-demag", action="store_true", help="switch the demagnetising field off")
    p.add_argument("--demag-method", choices=("airshell", "fembem"),
                   help="open boundary: air shell (default, scalable) or hybrid FEM/BEM (small models)")
    p.add_argument("--demag-pc", choices=("gamg", "hypre"), help="AMG preconditioner of the potential solve")
    p.add_argument("--demag-rtol", type=float, help="relative tolerance of the potential solve (default 1e-9)")
    add_out_argument(p)
    p.set_defaults(func=_run)

    q = sub.add_parser("movie", help="off-screen image sequence of a reversal (dynamics artefact)")
    q.add_argument("--dynamics", type=Path, required=True, help="artefact written by 'magtwin dynamics'")
    q.add_argument("--direction", help="reference direction 'X,Y,Z' for 'reversed' (default: the "
                                       "initial average magnetisation)")
    q.add_argument("--size", default="800,600", help="image size W,H in pixels")
    q.add_argument("-o", "--out", type=Path, required=True, help="output folder for frame_NNNN.png")
    q.set_defaults(func=_movie)


def _floats(text: str | None, what: str):
    from magtwin.errors import ConfigError

    if text is None:
        return None
    try:
        return [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise ConfigError(f"{what} must be comma-separated numbers, got {text!r}", "command line") from None


def _run(args: argparse.Namespace) -> int:
    from magtwin.cli._mpi import ranks_fail_together
    from magtwin.errors import ConfigError
    from magtwin.micromag.applied_field import read_schedule_file, schedule_from_cli
    from magtwin.micromag.dynamics_io import run_dynamics

    with ranks_fail_together():
        if args.field_file is not None:
            if args.field is not None or args.ramp is not None:
                raise ConfigError("give either --field-file or --field/--ramp, not both", "command line")
            schedule = read_schedule_file(args.field_file)
        else:
            schedule = schedule_from_cli(args.field, args.field_unit, args.ramp, args.field_direction)
        opts = {"alpha": args.alpha, "t_end_ns": args.t_end_ns, "method": args.method}
        for key, val in (("gamma_rad_per_sT", args.gamma), ("dt0_ns", args.dt0_ns), ("dt_max_ns", args.dt_max_ns),
                         ("rtol", args.rtol), ("atol", args.atol), ("stop_torque_T", args.stop_torque),
                         ("snapshot_every_ns", args.snapshot_every_ns), ("relax_torque_T", args.relax_torque)):
            if val is not None:
                opts[key] = val
        if args.snapshots_ns:
            opts["snapshot_times_ns"] = _floats(args.snapshots_ns, "--snapshots-ns")
        if args.relax:
            opts["relax_initial"] = True
        if args.stop_crossing:
            comp, _, level = args.stop_crossing.partition(":")
            c = comp if comp in ("x", "y", "z") else _floats(comp, "--stop-crossing component")
            opts["stop_crossing"] = {"component": c, "level": _floats(level, "--stop-crossing level")[0] if level else 0.0}
        solver = {}
        if args.no_demag:
            solver["demag"] = False
        if args.demag_pc:
            solver["demag_pc"] = args.demag_pc
        if args.demag_method:
            solver["demag_method"] = args.demag_method
        if args.demag_rtol is not None:
            solver["demag_rtol"] = args.demag_rtol
        if args.initial is not None and args.initial_m is not None:
            raise ConfigError("give either --initial or --initial-m, not both", "command line")
        initial = args.initial if args.initial is not None else _floats(args.initial_m, "--initial-m")
        run_dynamics(args.mesh, args.materials, args.out, schedule, opts, solver, initial)
    return 0


def _movie(args: argparse.Namespace) -> int:
    from magtwin.analysis.movie import render_movie

    size = _floats(args.size, "--size")
    render_movie(args.dynamics, args.out, direction=_floats(args.direction, "--direction"),
                 size=(int(size[0]), int(size[1])))
    return 0

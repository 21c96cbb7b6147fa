"""``magtwin simulate``: demagnetisation curve of a mesh artefact by FEM micromagnetics.

Run in parallel as ``mpirun -n N magtwin simulate ...`` (or ``srun``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from magtwin.cli._common import add_out_argument


def register(sub) -> None:
    p = sub.add_parser("simulate", help="demagnetisation curve (MPI-parallel FEM micromagnetics)",
                       description=__doc__)
    p.add_argument("--mesh", type=Path, required=True, help="mesh artefact (07_mesh.h5)")
    p.add_argument("--materials", type=Path, required=True, help="materials YAML")
    p.add_argument("--settings", type=Path, default=None,
                   help="YAML with 'field:' and 'solver:' sections (command-line values win)")
    p.add_argument("--field-start", type=float, help="first applied field mu0H in T (default 8)")
    p.add_argument("--field-stop", type=float, help="last applied field in T (default -8)")
    p.add_argument("--field-step", type=float, help="field step in T (default 0.25)")
    p.add_argument("--angle", type=float, help="field angle to the alignment axis in deg (default 1)")
    p.add_argument("--no-demag", action="store_true", help="switch the demagnetising field off")
    p.add_argument("--torque-tol", type=float, help="convergence: max |m x H_eff| in T (default 1e-4)")
    p.add_argument("--max-iterations", type=int, help="iteration budget per field point (default 20000)")
    p.add_argument("--refine-tol", type=float, help="locate jumps to this field interval in T (default 0.01)")
    p.add_argument("--demag-pc", choices=("gamg", "hypre"), help="AMG preconditioner of the potential solve")
    p.add_argument("--demag-method", choices=("airshell", "fembem"),
                   help="open boundary: air shell (default, scalable) or hybrid FEM/BEM (small models)")
    p.add_argument("--preconditioner", choices=("exchange", "jacobi"),
                   help="minimiser preconditioner (default exchange: AMG on the exchange operator)")
    p.add_argument("--snapshot-every", type=int, help="also store m every N curve points (default: ends and jumps)")
    add_out_argument(p)
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from magtwin.micromag.run import run_simulation

    field = {k: v for k, v in (("start_T", args.field_start), ("stop_T", args.field_stop),
                                ("step_T", args.field_step), ("angle_deg", args.angle)) if v is not None}
    solver = {k: v for k, v in (("torque_tol_T", args.torque_tol), ("max_iterations", args.max_iterations),
                                 ("refine_tol_T", args.refine_tol), ("demag_pc", args.demag_pc),
                                 ("demag_method", args.demag_method),
                                 ("preconditioner", args.preconditioner),
                                 ("snapshot_every", args.snapshot_every)) if v is not None}
    if args.no_demag:
        solver["demag"] = False
    from magtwin.cli._mpi import ranks_fail_together

    with ranks_fail_together():
        run_simulation(args.mesh, args.materials, args.out, field, solver, settings_path=args.settings)
    return 0

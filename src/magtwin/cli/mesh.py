"""``magtwin mesh``: 06_model.h5 -> 07_mesh.h5 (TetGen, one region id per element)."""

from __future__ import annotations

import json
from pathlib import Path

from magtwin.cli._common import add_config_arguments, add_out_argument, stage_params


def register(sub) -> None:
    p = sub.add_parser("mesh", help="conforming multi-region tetrahedral mesh of the model (TetGen)",
                       description="Stage 'mesh': reads 06_model.h5, writes 07_mesh.h5 (and optional "
                                   "XDMF/VTU exports). Parameters: the 'mesh' section of the config.")
    p.add_argument("input", type=Path, metavar="MODEL.h5", help="model artefact (06_model.h5)")
    add_out_argument(p)
    p.add_argument("--xdmf", type=Path, help="also write XDMF+HDF5 for ParaView")
    p.add_argument("--vtu", type=Path, help="also write VTU for ParaView")
    add_config_arguments(p, "mesh", "gb_size_nm=1.5")
    p.set_defaults(func=_run)


def _run(args) -> None:
    from magtwin.mesh.build import run_mesh

    stats = run_mesh(args.input, args.out, stage_params(args), args.xdmf, args.vtu)
    print(json.dumps({k: stats[k] for k in ("nodes", "elements", "per_kind")}, sort_keys=True))

"""``magtwin import-mesh``: a user's tetrahedral mesh (gmsh .msh or any meshio format) -> 07_mesh.h5."""

from __future__ import annotations

import json
from pathlib import Path

from magtwin.cli._common import add_config_arguments, add_out_argument, stage_params


def register(sub) -> None:
    p = sub.add_parser("import-mesh", help="import a gmsh/meshio tetrahedral mesh as the mesh artefact",
                       description="Reads a tetrahedral mesh (gmsh .msh with physical groups, or any "
                                   "meshio-readable file) and writes a mesh artefact for the solver. "
                                   "Parameters: the 'mesh_import' section of the config.")
    p.add_argument("input", type=Path, metavar="MESH", help="mesh file (.msh, .vtu, .xdmf, .mesh, ...)")
    add_out_argument(p)
    p.add_argument("--kind", action="append", default=[], metavar="REGION=KIND",
                   help="kind (grain|gb|tj) of a region tag or physical-group name; repeatable")
    add_config_arguments(p, "mesh_import", "scale_to_nm=1000")
    p.set_defaults(func=_run)


def _run(args) -> None:
    from magtwin.errors import ConfigError
    from magtwin.mesh.importers import run_import

    prm = stage_params(args)
    kinds = dict(prm.get("kinds") or {})
    for item in args.kind:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--kind: expected REGION=KIND, got {item!r}")
        kinds[key.strip()] = value.strip()
    prm["kinds"] = kinds
    stats = run_import(args.input, args.out, prm)
    print(json.dumps({k: stats[k] for k in ("nodes", "elements", "per_kind")}, sort_keys=True))

"""``magtwin denoise``: 01_ingest.h5 -> 02_denoise.h5 (curtaining removal, shading/brightness normalisation, edge-preserving denoising)."""

from __future__ import annotations

import json
from pathlib import Path

from magtwin.cli._common import add_out_argument


def register(sub) -> None:
    p = sub.add_parser("denoise", help="curtaining removal, shading/brightness normalisation, edge-preserving denoising",
                       description="Stage 'denoise': reads 01_ingest.h5, writes 02_denoise.h5. Parameters are the "
                                   "'denoise' section of the workflow config (see "
                                   "workflow/schemas/config.schema.yaml); defaults apply to "
                                   "anything not given.")
    p.add_argument("input", type=Path, metavar="IN.h5", help="input artefact (01_ingest.h5)")
    add_out_argument(p)
    p.add_argument("--config", type=Path, metavar="CONFIG.yaml",
                   help="workflow config whose 'denoise' section gives the parameters")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override one parameter (YAML value), e.g. --set method=median")
    p.set_defaults(func=_run)


def _run(args) -> None:
    from magtwin.imaging.denoise import run_denoise
    from magtwin.imaging.stackio import cli_params

    quality = run_denoise(args.input, args.out, cli_params("denoise", args.config, args.set))
    print(json.dumps(quality, sort_keys=True))

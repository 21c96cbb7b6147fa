"""``magtwin denoise``: 01_ingest.h5 -> 02_denoise.h5 (curtaining removal, shading/brightness normalisation, edge-preserving denoising)."""

from __future__ import annotations

import json
from pathlib import Path

from magtwin.cli._common import add_config_arguments, add_out_argument, stage_params


def register(sub) -> None:
    p = sub.add_parser("denoise", help="curtaining removal, shading/brightness normalisation, edge-preserving denoising",
                       description="Stage 'denoise': reads 01_ingest.h5, writes 02_denoise.h5. Parameters are the "
                                   "'denoise' section of the workflow config (see "
                                   "workflow/schemas/config.schema.yaml); defaults apply to "
                                   "anything not given.")
    p.add_argument("input", type=Path, metavar="IN.h5", help="input artefact (01_ingest.h5)")
    add_out_argument(p)
    add_config_arguments(p, "denoise", "method=median")
    p.set_defaults(func=_run)


def _run(args) -> None:
    from magtwin.imaging.denoise import run_denoise

    quality = run_denoise(args.input, args.out, stage_params(args))
    print(json.dumps(quality, sort_keys=True))

"""``magtwin align``: 02_denoise.h5 -> 03_align.h5 (drift correction to sub-pixel accuracy (cap/fiducial region or multi-slice least squares))."""

from __future__ import annotations

import json
from pathlib import Path

from magtwin.cli._common import add_config_arguments, add_out_argument, stage_params


def register(sub) -> None:
    p = sub.add_parser("align", help="drift correction to sub-pixel accuracy (cap/fiducial region or multi-slice least squares)",
                       description="Stage 'align': reads 02_denoise.h5, writes 03_align.h5. Parameters are the "
                                   "'align' section of the workflow config (see "
                                   "workflow/schemas/config.schema.yaml); defaults apply to "
                                   "anything not given.")
    p.add_argument("input", type=Path, metavar="IN.h5", help="input artefact (02_denoise.h5)")
    add_out_argument(p)
    add_config_arguments(p, "align", "cap_rows=[0,30]")
    p.set_defaults(func=_run)


def _run(args) -> None:
    from magtwin.imaging.align import run_align

    quality = run_align(args.input, args.out, stage_params(args))
    print(json.dumps(quality, sort_keys=True))

"""``magtwin grains``: 04_segment.h5 -> 05_grains.h5 (link 2D grain sections into 3D grains: label volume and grain table)."""

from __future__ import annotations

import json
from pathlib import Path

from magtwin.cli._common import add_config_arguments, add_out_argument, stage_params


def register(sub) -> None:
    p = sub.add_parser("grains", help="link 2D grain sections into 3D grains: label volume and grain table",
                       description="Stage 'grains': reads 04_segment.h5, writes 05_grains.h5. Parameters are the "
                                   "'grains' section of the workflow config (see "
                                   "workflow/schemas/config.schema.yaml); defaults apply to "
                                   "anything not given.")
    p.add_argument("input", type=Path, metavar="IN.h5", help="input artefact (04_segment.h5)")
    add_out_argument(p)
    p.add_argument("--image", type=Path, metavar="ALIGN.h5",
                   help="aligned volume (03_align.h5): section brightness then also decides which "
                        "sections link across slices (grains.link_max_contrast) and which grains "
                        "split along a weak border are joined (recommended)")
    add_config_arguments(p, "grains", "min_grain_voxels=200")
    p.set_defaults(func=_run)


def _run(args) -> None:
    from magtwin.reconstruct.grains import run_grains

    quality = run_grains(args.input, args.out, stage_params(args),
                         image_path=args.image)
    print(json.dumps(quality, sort_keys=True))

"""``magtwin segment``: 03_align.h5 -> 04_segment.h5 (per-slice grain segmentation and vectorised grain outlines)."""

from __future__ import annotations

import json
from pathlib import Path

from magtwin.cli._common import add_config_arguments, add_out_argument, stage_params


def register(sub) -> None:
    p = sub.add_parser("segment", help="per-slice grain segmentation and vectorised grain outlines",
                       description="Stage 'segment': reads 03_align.h5, writes 04_segment.h5. Parameters are the "
                                   "'segment' section of the workflow config (see "
                                   "workflow/schemas/config.schema.yaml); defaults apply to "
                                   "anything not given.")
    p.add_argument("input", type=Path, metavar="IN.h5", help="input artefact (03_align.h5)")
    add_out_argument(p)
    add_config_arguments(p, "segment", "merge_threshold=0.08")
    p.set_defaults(func=_run)


def _run(args) -> None:
    from magtwin.reconstruct.segment import run_segment

    quality = run_segment(args.input, args.out, stage_params(args))
    print(json.dumps(quality, sort_keys=True))

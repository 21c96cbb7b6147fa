"""``magtwin segment``: 03_align.h5 -> 04_segment.h5 (per-slice grain segmentation and vectorised grain outlines)."""

from __future__ import annotations

import json
from pathlib import Path

from magtwin.cli._common import add_out_argument


def register(sub) -> None:
    p = sub.add_parser("segment", help="per-slice grain segmentation and vectorised grain outlines",
                       description="Stage 'segment': reads 03_align.h5, writes 04_segment.h5. Parameters are the "
                                   "'segment' section of the workflow config (see "
                                   "workflow/schemas/config.schema.yaml); defaults apply to "
                                   "anything not given.")
    p.add_argument("input", type=Path, metavar="IN.h5", help="input artefact (03_align.h5)")
    add_out_argument(p)
    p.add_argument("--config", type=Path, metavar="CONFIG.yaml",
                   help="workflow config whose 'segment' section gives the parameters")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override one parameter (YAML value), e.g. --set merge_threshold=0.3")
    p.set_defaults(func=_run)


def _run(args) -> None:
    from magtwin.reconstruct.segment import run_segment
    from magtwin.imaging.stackio import cli_params

    quality = run_segment(args.input, args.out, cli_params("segment", args.config, args.set))
    print(json.dumps(quality, sort_keys=True))

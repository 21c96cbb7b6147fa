"""``magtwin model``: grain labels -> 06_model.h5 (convex grains, GB phase per grain pair, TJs)."""

from __future__ import annotations

import json
from pathlib import Path

from magtwin.cli._common import add_config_arguments, add_out_argument, stage_params


def register(sub) -> None:
    p = sub.add_parser("model", help="fit convex (Laguerre) grains to labels; build GB and TJ regions",
                       description="Stage 'model': reads a label volume (05_grains.h5, 00_synth/truth.h5 "
                                   "or any HDF5 with a 'labels' dataset and 'voxel_size_nm'), writes "
                                   "06_model.h5. Parameters: the 'model' section of the workflow config.")
    p.add_argument("input", type=Path, metavar="LABELS.h5", help="label volume")
    add_out_argument(p)
    add_config_arguments(p, "model", "scale=0.1")
    p.set_defaults(func=_run)


def _run(args) -> None:
    from magtwin.model.build import run_model

    print(json.dumps(run_model(args.input, args.out, stage_params(args)), sort_keys=True))

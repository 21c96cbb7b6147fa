"""``magtwin ingest``: TIFF stack -> 01_ingest.h5."""

from __future__ import annotations

import json
from pathlib import Path

from magtwin.cli._common import add_out_argument, voxel_size_type


def register(sub) -> None:
    p = sub.add_parser("ingest", help="read a FIB-SEM TIFF stack into the ingest artefact",
                       description="Multi-page TIFF, OME-TIFF or a folder of single-slice TIFFs "
                                   "-> (z, y, x) volume with voxel size (HDF5).")
    p.add_argument("stack", type=Path, help="TIFF file or folder of TIFFs")
    add_out_argument(p)
    p.add_argument("--voxel-size", type=voxel_size_type, metavar="Z,Y,X",
                   help="voxel size in nm (overrides TIFF metadata)")
    p.add_argument("--slice-thickness-nm", type=float,
                   help="slice thickness in nm when the metadata gives only the pixel size")
    p.add_argument("--crop", type=json.loads, metavar="JSON",
                   help='region of interest in px, e.g. \'{"z": [0, 20], "x": [10, 200]}\'')
    p.set_defaults(func=_run)


def _run(args) -> None:
    from magtwin.imaging.ingest import ingest

    ingest(args.stack, args.out, args.voxel_size, args.slice_thickness_nm, args.crop)

"""Small helpers shared by the sub-command modules."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_out_argument(p: argparse.ArgumentParser, default: str | None = None) -> None:
    p.add_argument("-o", "--out", type=Path, required=default is None, default=default,
                   help="output artefact (.h5), written atomically")


def voxel_size_type(text: str) -> tuple[float, float, float]:
    """Parse ``"z,y,x"`` (nm) or a single value for an isotropic voxel."""
    try:
        parts = [float(t) for t in text.replace("x", ",").split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"voxel size must be numbers in nm, got {text!r}") from None
    if len(parts) == 1:
        parts = parts * 3
    if len(parts) != 3 or min(parts) <= 0:
        raise argparse.ArgumentTypeError(f"voxel size must be 1 or 3 positive numbers (z,y,x nm), got {text!r}")
    return tuple(parts)  # type: ignore[return-value]

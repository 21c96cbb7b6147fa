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


def add_config_arguments(p: argparse.ArgumentParser, section: str, example: str) -> None:
    """``--config CONFIG.yaml`` (parameters from the workflow config's ``section``) and
    repeatable ``--set KEY=VALUE`` overrides; read them back with :func:`stage_params`."""
    p.add_argument("--config", type=Path, metavar="CONFIG.yaml",
                   help=f"workflow config whose '{section}' section gives the parameters")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help=f"override one parameter (YAML value), e.g. --set {example}")
    p.set_defaults(config_section=section)


def stage_params(args: argparse.Namespace) -> dict:
    """The stage parameters given by :func:`add_config_arguments`' options."""
    from magtwin.imaging.stackio import cli_params

    return cli_params(args.config_section, args.config, args.set)

"""``magtwin synth``: generate the synthetic FIB-SEM sample (stack TIFF + ground-truth HDF5)."""

from __future__ import annotations

import argparse
from pathlib import Path


def _shape(text: str) -> list[int]:
    try:
        parts = [int(t) for t in text.replace("x", ",").split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"shape must be Z,Y,X integers, got {text!r}") from None
    if len(parts) != 3 or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"shape must be 3 positive integers Z,Y,X, got {text!r}")
    return parts


def _key_value(text: str) -> tuple[str, object]:
    import yaml

    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    try:
        return key.strip(), yaml.safe_load(value)
    except yaml.YAMLError:
        raise argparse.ArgumentTypeError(f"cannot parse the value of {key.strip()!r}: {value!r}") from None


def register(sub) -> None:
    p = sub.add_parser(
        "synth", help="generate a synthetic Nd-Fe-B FIB-SEM stack with ground truth",
        description="Hot-deformed Nd-Fe-B platelet microstructure imaged as a FIB-SEM slice series "
                    "(GB/TJ phase, cap with fiducials, drift, curtaining, shading, noise): writes an "
                    "ImageJ TIFF stack and a ground-truth HDF5 (labels, masks, shifts, easy axes).")
    p.add_argument("--out-stack", type=Path, required=True, metavar="STACK.tif", help="output TIFF stack")
    p.add_argument("--out-truth", type=Path, required=True, metavar="TRUTH.h5", help="output ground truth")
    p.add_argument("--config", type=Path, metavar="CONFIG.yaml",
                   help="workflow config whose 'synth' section gives the parameters")
    p.add_argument("--seed", type=int, help="random seed (overrides the config)")
    p.add_argument("--shape", type=_shape, metavar="Z,Y,X", help="stack size in px (overrides the config)")
    p.add_argument("--set", type=_key_value, action="append", default=[], metavar="KEY=VALUE",
                   help="override one synth parameter (YAML value), e.g. --set noise_level=0.08")
    p.set_defaults(func=_run)


def _run(args) -> None:
    import logging

    from magtwin.config import load_yaml
    from magtwin.errors import ConfigError
    from magtwin.synth import generate_files

    params: dict = {}
    source = "command line"
    if args.config is not None:
        cfg = load_yaml(args.config) or {}
        if not isinstance(cfg, dict) or not isinstance(cfg.get("synth", {}) or {}, dict):
            raise ConfigError("synth: must be a mapping", args.config)
        params = dict(cfg.get("synth") or {})
        source = str(args.config)
    params.update(dict(args.set))
    if args.seed is not None:
        params["seed"] = args.seed
    if args.shape is not None:
        params["shape_px"] = args.shape
    summary = generate_files(params, args.out_stack, args.out_truth, source=source)
    logging.getLogger("magtwin.synth").info(
        "wrote %s and %s: %d grains, shape %s", args.out_stack, args.out_truth,
        summary["n_grains"], summary["shape_px"])

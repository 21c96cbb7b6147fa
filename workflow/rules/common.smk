# Shared definitions: validated config, RESULTS/SAMPLES, input functions of several rules.

import sys
from pathlib import Path

from magtwin.config import check_files_exist, validate_config
from magtwin.errors import MagtwinError
from magtwin.sweep import expand_sweep


def validated_config(cfg):
    """Validate the config against workflow/schemas (filling defaults); one clear line naming
    the config file and the key, and exit 1, before any job runs."""
    source = " + ".join(str(p) for p in workflow.configfiles) or "config"
    try:
        validate_config(cfg, Path(workflow.basedir) / "workflow/schemas/config.schema.yaml",
                        source=source)
        check_files_exist(cfg, source=source)
    except MagtwinError as exc:
        print(f"magtwin: invalid configuration: {exc}", file=sys.stderr)
        raise SystemExit(1)
    return cfg


def sweep_points(cfg):
    """Named sweep points {name: {parameter: value}} (stable names: adding a value adds jobs
    without renaming existing ones)."""
    try:
        return expand_sweep(cfg["sweep"])
    except MagtwinError as exc:
        print(f"magtwin: invalid configuration: {exc}", file=sys.stderr)
        raise SystemExit(1)


config = validated_config(config)
RESULTS = config["results_dir"]
SAMPLES = list(config["samples"])
SYNTHETIC = [s for s, v in config["samples"].items() if v.get("synthetic")]
SWEEP_POINTS = sweep_points(config)


def ingest_stack(wildcards):
    """The stack of a sample: generated for synthetic samples, the user's file otherwise."""
    sample = config["samples"][wildcards.sample]
    if sample.get("synthetic"):
        return f"{RESULTS}/{wildcards.sample}/00_synth/stack.tif"
    return sample["stack"]


def ingest_voxel(wildcards):
    vs = config["samples"][wildcards.sample].get("voxel_size_nm")
    return None if vs is None else [float(v) for v in vs]


def model_labels(wildcards):
    """Labels to fit: the reconstructed grains, or the synthetic ground truth on request."""
    sample = config["samples"][wildcards.sample]
    if sample.get("labels"):
        return sample["labels"]
    if config["model"]["labels_from"] == "truth" and sample.get("synthetic"):
        return f"{RESULTS}/{wildcards.sample}/00_synth/truth.h5"
    return f"{RESULTS}/{wildcards.sample}/05_grains.h5"

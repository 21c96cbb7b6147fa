# magtwin: FIB-SEM tomography stack of a Nd-Fe-B magnet -> finite-element digital twin ->
# demagnetisation curves. Thin rules in workflow/rules/, thin scripts in scripts/, the
# library in src/magtwin/. Run: `snakemake --profile profiles/local` (or ./run.sh pipeline).

import sys
from pathlib import Path

from magtwin.config import check_files_exist, validate_config
from magtwin.errors import MagtwinError

configfile: "config/config.yaml"


def _validated(cfg):
    # One clear line naming the config file and the key, before any job runs.
    source = " + ".join(str(p) for p in workflow.configfiles) or "config"
    try:
        validate_config(cfg, Path(workflow.basedir) / "workflow/schemas/config.schema.yaml",
                        source=source)
        check_files_exist(cfg, source=source)
    except MagtwinError as exc:
        print(f"magtwin: invalid configuration: {exc}", file=sys.stderr)
        raise SystemExit(1)
    return cfg


config = _validated(config)
RESULTS = config["results_dir"]
SAMPLES = list(config["samples"])
SYNTHETIC = [s for s, v in config["samples"].items() if v.get("synthetic")]

wildcard_constraints:
    sample="[A-Za-z0-9_.-]+",


include: "workflow/rules/synth.smk"
include: "workflow/rules/ingest.smk"
include: "workflow/rules/imaging.smk"
include: "workflow/rules/model.smk"
include: "workflow/rules/simulate.smk"
include: "workflow/rules/analysis.smk"


rule all:
    input:
        expand(f"{RESULTS}/{{sample}}/01_ingest.h5", sample=SAMPLES),

"""The Snakemake workflow as a user drives it: a parameter edit re-runs only the rule it
belongs to and the rules downstream of it; the workflow lints clean."""

import re
import subprocess
import sys

import pytest
import yaml

from tests.util import ROOT

TINY_SYNTH = {"shape_px": [6, 64, 64], "grain_diameter_nm": 150.0, "grain_thickness_nm": 60.0}


def _snakemake(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", *map(str, args)],
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def _jobs_in_dry_run(output: str) -> set[str]:
    """Rule names from the 'Job stats' table of a dry run."""
    jobs, in_table = set(), False
    for line in output.splitlines():
        if line.startswith("job ") and "count" in line:
            in_table = True
            continue
        if in_table:
            m = re.match(r"^([A-Za-z_]\w*)\s+\d+$", line.strip())
            if m and m.group(1) != "total":
                jobs.add(m.group(1))
            elif line.strip() == "" and jobs:
                break
    return jobs


def _config(tmp_path, name, **sections):
    cfg = {"results_dir": str(tmp_path / "results"), "synth": dict(TINY_SYNTH)}
    for key, value in sections.items():
        if isinstance(value, dict):
            cfg.setdefault(key, {}).update(value)
        else:
            cfg[key] = value
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_parameter_edit_reruns_only_downstream(tmp_path):
    target = tmp_path / "results" / "synthetic" / "01_ingest.h5"
    base = _config(tmp_path, "base")
    run = _snakemake(target, "--configfile", base)
    assert run.returncode == 0, run.stderr[-3000:]
    assert target.exists()

    again = _snakemake(target, "-n", "--configfile", base)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr

    noisier = _config(tmp_path, "noisier", synth={"noise_level": 0.06})
    dry = _snakemake(target, "-n", "--configfile", noisier)
    assert _jobs_in_dry_run(dry.stdout + dry.stderr) == {"synth", "ingest"}

    cropped = _config(tmp_path, "cropped", ingest={"crop_px": {"z": [0, 4]}})
    dry = _snakemake(target, "-n", "--configfile", cropped)
    assert _jobs_in_dry_run(dry.stdout + dry.stderr) == {"ingest"}


def test_workflow_lints_clean():
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--lint"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "Lints for" not in out, out[-3000:]

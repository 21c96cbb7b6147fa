"""Configuration: the shipped config validates; bad configs fail with one line naming the key
before any job runs (checked through `snakemake -n`, as a user meets it)."""

import subprocess
import sys

import pytest
import yaml

from magtwin.config import load_yaml, validate_config
from magtwin.errors import ConfigError
from tests.util import ROOT

SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"


def test_shipped_config_is_valid_and_gets_defaults():
    cfg = validate_config(load_yaml(ROOT / "config" / "config.yaml"), SCHEMA, "config.yaml")
    assert cfg["results_dir"] == "results"
    assert cfg["ingest"]["crop_px"] is None
    assert any(s.get("synthetic") for s in cfg["samples"].values())


def test_every_schema_key_is_documented():
    schema = load_yaml(SCHEMA)
    undocumented = []

    def walk(node, path):
        if not isinstance(node, dict):
            return
        for key, sub in (node.get("properties") or {}).items():
            if isinstance(sub, dict) and "description" not in sub and "$ref" not in sub \
                    and sub.get("type") != "object":
                undocumented.append(".".join(path + [key]))
            walk(sub, path + [key])
        if isinstance(node.get("additionalProperties"), dict):
            walk(node["additionalProperties"], path + ["*"])

    walk(schema, [])
    assert undocumented == []


@pytest.mark.parametrize("bad, fragments", [
    ({"synth": {"not_a_parameter": 1}}, ["synth.not_a_parameter", "unknown key"]),
    ({"ingest": {"crop_px": {"z": "all"}}}, ["ingest.crop_px"]),
    ({"results_dir": 3}, ["results_dir", "not of type 'string'"]),
])
def test_validate_config_names_the_key(bad, fragments):
    with pytest.raises(ConfigError) as err:
        validate_config(bad, SCHEMA, "my.yaml")
    text = str(err.value)
    assert text.startswith("my.yaml: ")
    for frag in fragments:
        assert frag in text


def _dry_run(tmp_path, extra: dict):
    cfg = tmp_path / "extra.yaml"
    cfg.write_text(yaml.safe_dump(extra))
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--configfile", str(cfg)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )


@pytest.mark.parametrize("extra, fragments", [
    ({"ingest": {"crop_px": "everything"}}, ["ingest.crop_px"]),
    ({"synth": {"typo_key": 2}}, ["synth.typo_key", "unknown key"]),
    ({"samples": {"mine": {"stack": "data/does_not_exist.tif", "voxel_size_nm": [10, 5, 5]}}},
     ["samples.mine.stack", "does not exist"]),
])
def test_snakemake_refuses_bad_config_before_any_job(tmp_path, extra, fragments):
    proc = _dry_run(tmp_path, extra)
    assert proc.returncode != 0
    lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if "invalid configuration" in ln]
    assert len(lines) == 1, proc.stderr
    for frag in fragments:
        assert frag in lines[0]
    assert str(tmp_path / "extra.yaml") in lines[0]
    assert "Traceback" not in proc.stderr

"""Synthetic sample files: ImageJ TIFF with voxel size, truth.h5 artefact, CLI, config schema."""

from __future__ import annotations

import os

import h5py
import numpy as np
import pytest
import tifffile
import yaml

from magtwin.io.artefact import open_artefact, parameters_of
from magtwin.synth import generate_files, make_sample, write_sample
from magtwin.synth.params import SCHEMA, defaults, resolve_params
from tests.util import ROOT, assert_one_line_error, run_cli

SMALL = dict(shape_px=[5, 72, 80], n_grains=4, seed=9, voxel_size_nm=[12.0, 4.0, 5.0])


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    d = tmp_path_factory.mktemp("synth")
    s = make_sample(SMALL)
    write_sample(s, d / "stack.tif", d / "truth.h5", s.params)
    return s, d


def test_tiff_reads_back_with_voxel_size(written):
    s, d = written
    with tifffile.TiffFile(d / "stack.tif") as tf:
        assert tf.is_imagej
        data = tf.asarray()
        meta = tf.imagej_metadata
        xres = tf.pages[0].tags["XResolution"].value
        yres = tf.pages[0].tags["YResolution"].value
    assert np.array_equal(data, s.stack) and data.dtype == np.uint16
    assert meta["spacing"] == pytest.approx(12.0) and meta["unit"] == "nm"
    assert xres[1] / xres[0] == pytest.approx(5.0) and yres[1] / yres[0] == pytest.approx(4.0)
    assert not list(d.glob("*.tmp-*"))


def test_truth_artefact_contents(written):
    s, d = written
    with open_artefact(d / "truth.h5", "truth") as f:
        for name in ("labels", "gb_mask", "tj_mask", "shifts_px", "easy_axes"):
            assert np.array_equal(f[name][()], s.truth[name]), name
        assert f["labels"].chunks == (1, 72, 80) and f["labels"].compression == "gzip"
        assert np.allclose(f.attrs["voxel_size_nm"], [12.0, 4.0, 5.0])
        assert np.allclose(f.attrs["alignment_axis"], s.truth["alignment_axis"])
        assert tuple(f.attrs["cap_rows"]) == tuple(s.truth["cap_rows"])
        assert list(f["grain_table/id"][()]) == [1, 2, 3, 4]
        assert parameters_of(f)["seed"] == 9


def test_streamed_files_equal_in_memory_sample(written, tmp_path):
    s, _ = written
    info = generate_files(SMALL, tmp_path / "a.tif", tmp_path / "a.h5")
    assert info["n_grains"] == 4
    assert np.array_equal(tifffile.imread(tmp_path / "a.tif"), s.stack)
    with h5py.File(tmp_path / "a.h5") as f:
        assert np.array_equal(f["labels"][()], s.truth["labels"])
        assert np.array_equal(f["tj_mask"][()], s.truth["tj_mask"])
        assert np.allclose(f["grain_table/centroid_nm"][()], s.truth["grain_table"]["centroid_nm"])


def test_cli_config_seed_shape_and_set(tmp_path):
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({"synth": {"n_grains": 3, "noise_level": 0.0, "seed": 1}}))
    out = run_cli("synth", "--out-stack", tmp_path / "s.tif", "--out-truth", tmp_path / "t.h5",
                  "--config", cfg, "--seed", 5, "--shape", "3,64,72", "--set", "cap=false", check=True)
    assert out.returncode == 0
    with open_artefact(tmp_path / "t.h5", "truth") as f:
        p = parameters_of(f)
        assert f.attrs["n_grains"] == 3 and tuple(f.attrs["cap_rows"]) == (-1, -1)
        assert f["labels"][()].min() >= 1  # no cap: every voxel is in a grain
    assert (p["seed"], p["shape_px"], p["noise_level"], p["cap"]) == (5, [3, 64, 72], 0.0, False)
    assert tifffile.imread(tmp_path / "s.tif").shape == (3, 64, 72)


@pytest.mark.parametrize("args, fragment", [
    (["--set", "noise_levl=0.1"], "synth.noise_levl"),
    (["--set", "gb_thickness_nm=-2"], "synth.gb_thickness_nm"),
    (["--set", "shape_px=[2, 64]"], "synth.shape_px"),
])
def test_cli_bad_parameter_one_line_no_files(tmp_path, args, fragment):
    proc = run_cli("synth", "--out-stack", tmp_path / "s.tif", "--out-truth", tmp_path / "t.h5", *args)
    assert_one_line_error(proc, fragment)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_cli_non_writable_folder(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        proc = run_cli("synth", "--out-stack", ro / "s.tif", "--out-truth", ro / "t.h5", "--shape", "2,48,48")
        assert_one_line_error(proc, str(ro))
        assert list(ro.iterdir()) == []
    finally:
        ro.chmod(0o700)


def test_cli_unwritable_path(tmp_path):
    """Output under a file (not a folder): one clear line, nothing left behind."""
    blocker = tmp_path / "file"
    blocker.write_text("x")
    proc = run_cli("synth", "--out-stack", tmp_path / "s.tif", "--out-truth", blocker / "t.h5",
                   "--shape", "2,48,48")
    assert_one_line_error(proc, "file")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_workflow_schema_and_config_match_library():
    schema = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
    assert schema["properties"]["synth"] == SCHEMA
    for key, sub in SCHEMA["properties"].items():
        assert sub.get("description"), key
    cfg = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    resolve_params(cfg["synth"])  # the shipped config is a valid sample
    assert defaults()["shape_px"][0] >= 20 and resolve_params()["cap"] is True

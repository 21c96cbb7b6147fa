"""Ingest stage: stack formats, vendor voxel sizes, crop, and bad input through the CLI."""

import os

import h5py
import numpy as np
import pytest
import tifffile

from magtwin.imaging.ingest import ingest
from magtwin.io.artefact import open_artefact
from tests.util import assert_one_line_error, run_cli

RNG = np.random.default_rng(12)


def _stack(nz=6, ny=24, nx=32, dtype=np.uint16):
    return (RNG.random((nz, ny, nx)) * 4000).astype(dtype)


def _assert_no_artefact(folder):
    leftovers = [p for p in folder.rglob("*.h5")] if folder.exists() else []
    assert leftovers == [], leftovers


def test_imagej_stack_with_voxel_size(tmp_path):
    a = _stack()
    tif = tmp_path / "s.tif"
    tifffile.imwrite(tif, a, imagej=True, resolution=(1 / 0.005, 1 / 0.004),
                     metadata={"spacing": 0.01, "unit": "um", "axes": "ZYX"})
    out = tmp_path / "o" / "01_ingest.h5"
    run_cli("ingest", tif, "-o", out, check=True)
    with open_artefact(out, "ingest") as f:
        np.testing.assert_array_equal(f["volume"][...], a)
        np.testing.assert_allclose(f.attrs["voxel_size_nm"], [10.0, 4.0, 5.0])
        assert f["volume"].dtype == np.uint16


def test_ome_tiff(tmp_path):
    a = _stack(dtype=np.uint8)
    tif = tmp_path / "s.ome.tif"
    tifffile.imwrite(tif, a, ome=True, metadata={
        "axes": "ZYX", "PhysicalSizeX": 0.004, "PhysicalSizeY": 0.004, "PhysicalSizeZ": 0.008})
    out = tmp_path / "01_ingest.h5"
    ingest(tif, out)
    with open_artefact(out, "ingest") as f:
        np.testing.assert_array_equal(f["volume"][...], a)
        # OME's default length unit is the micrometre (OME-XML schema 2016-06).
        np.testing.assert_allclose(f.attrs["voxel_size_nm"], [8.0, 4.0, 4.0])


def test_fei_metadata_needs_slice_thickness(tmp_path):
    a = _stack(nz=3)
    folder = tmp_path / "fei"
    folder.mkdir()
    ini = "[User]\nDate=01/01/2024\n[Scan]\nPixelWidth=3.5e-09\nPixelHeight=3.5e-09\n"
    for k in range(3):
        # Thermo/FEI Helios images carry their metadata as INI text in private tag 34682.
        tifffile.imwrite(folder / f"slice_{k:03d}.tif", a[k], extratags=[(34682, "s", 0, ini, True)])
    out = tmp_path / "01_ingest.h5"
    proc = run_cli("ingest", folder, "-o", out)
    assert_one_line_error(proc, str(folder), "voxel size missing", "x=3.5 nm")
    assert not out.exists()
    run_cli("ingest", folder, "-o", out, "--slice-thickness-nm", "10", check=True)
    with open_artefact(out, "ingest") as f:
        np.testing.assert_allclose(f.attrs["voxel_size_nm"], [10.0, 3.5, 3.5])
        np.testing.assert_array_equal(f["volume"][...], a)


def test_folder_natural_sort_and_crop(tmp_path):
    a = _stack(nz=12)
    folder = tmp_path / "slices"
    folder.mkdir()
    for k in range(12):
        tifffile.imwrite(folder / f"img_{k}.tif", a[k])  # img_10 must come after img_9
    out = tmp_path / "01_ingest.h5"
    ingest(folder, out, voxel_size_nm=(10, 5, 5), crop_px={"z": [1, 11], "x": [4, 20]})
    with open_artefact(out, "ingest") as f:
        np.testing.assert_array_equal(f["volume"][...], a[1:11, :, 4:20])


# --- bad input: one clear line naming the file, non-zero exit, no artefact -----------------

def test_truncated_tiff(tmp_path):
    tif = tmp_path / "cut.tif"
    tifffile.imwrite(tif, _stack(nz=8), imagej=True, resolution=(0.2, 0.2), metadata={"spacing": 10, "unit": "nm"})
    data = tif.read_bytes()
    tif.write_bytes(data[: int(len(data) * 0.6)])
    out = tmp_path / "o" / "01_ingest.h5"
    proc = run_cli("ingest", tif, "-o", out)
    assert_one_line_error(proc, str(tif))
    _assert_no_artefact(tmp_path)


def test_not_a_tiff(tmp_path):
    bad = tmp_path / "notes.tif"
    bad.write_text("this is not an image")
    proc = run_cli("ingest", bad, "-o", tmp_path / "x.h5", "--voxel-size", "10,5,5")
    assert_one_line_error(proc, str(bad), "not a readable TIFF")
    _assert_no_artefact(tmp_path)


def test_slices_of_different_sizes(tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    tifffile.imwrite(folder / "s1.tif", _stack(nz=1)[0])
    tifffile.imwrite(folder / "s2.tif", _stack(nz=1)[0])
    tifffile.imwrite(folder / "s3.tif", _stack(nz=1, ny=30)[0])
    proc = run_cli("ingest", folder, "-o", tmp_path / "o.h5", "--voxel-size", "10,5,5")
    assert_one_line_error(proc, "s3.tif", "shape")
    _assert_no_artefact(tmp_path)


def test_rgb_stack(tmp_path):
    tif = tmp_path / "rgb.tif"
    tifffile.imwrite(tif, (RNG.random((4, 16, 16, 3)) * 255).astype(np.uint8), photometric="rgb")
    proc = run_cli("ingest", tif, "-o", tmp_path / "o.h5", "--voxel-size", "10,5,5")
    assert_one_line_error(proc, str(tif), "RGB")
    _assert_no_artefact(tmp_path)


def test_four_dimensional_stack(tmp_path):
    tif = tmp_path / "4d.tif"
    tifffile.imwrite(tif, _stack(nz=6).reshape(2, 3, 24, 32), imagej=True, metadata={"axes": "TZYX"})
    proc = run_cli("ingest", tif, "-o", tmp_path / "o.h5", "--voxel-size", "10,5,5")
    assert_one_line_error(proc, str(tif), "expected a (z, y, x) greyscale stack")
    _assert_no_artefact(tmp_path)


def test_folder_without_tiffs(tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    (folder / "readme.txt").write_text("nothing here")
    proc = run_cli("ingest", folder, "-o", tmp_path / "o.h5", "--voxel-size", "10,5,5")
    assert_one_line_error(proc, str(folder), "no TIFF files")


def test_missing_voxel_size(tmp_path):
    tif = tmp_path / "plain.tif"
    tifffile.imwrite(tif, _stack())
    proc = run_cli("ingest", tif, "-o", tmp_path / "o.h5")
    assert_one_line_error(proc, str(tif), "voxel size missing")
    _assert_no_artefact(tmp_path)


def test_single_slice_and_constant_stack(tmp_path):
    one = tmp_path / "one.tif"
    tifffile.imwrite(one, _stack(nz=1)[0])
    proc = run_cli("ingest", one, "-o", tmp_path / "o.h5", "--voxel-size", "10,5,5")
    assert_one_line_error(proc, str(one), "at least 2")
    flat = tmp_path / "flat.tif"
    tifffile.imwrite(flat, np.zeros((5, 8, 8), np.uint16))
    proc = run_cli("ingest", flat, "-o", tmp_path / "o.h5", "--voxel-size", "10,5,5")
    assert_one_line_error(proc, str(flat), "constant")
    _assert_no_artefact(tmp_path)


def test_non_writable_output_folder(tmp_path):
    tif = tmp_path / "s.tif"
    tifffile.imwrite(tif, _stack())
    if os.geteuid() == 0:
        # root writes through permission bits: use a folder that cannot be created at all.
        blocker = tmp_path / "blocker"
        blocker.write_text("a file, not a folder")
        target = blocker / "results" / "01_ingest.h5"
        where = str(blocker / "results")
    else:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        target = ro / "01_ingest.h5"
        where = str(ro)
    proc = run_cli("ingest", tif, "-o", target, "--voxel-size", "10,5,5")
    assert_one_line_error(proc, where)
    assert not target.exists()


def test_crop_out_of_range(tmp_path):
    tif = tmp_path / "s.tif"
    tifffile.imwrite(tif, _stack())
    proc = run_cli("ingest", tif, "-o", tmp_path / "o.h5", "--voxel-size", "10,5,5",
                   "--crop", '{"y": [0, 100]}')
    assert_one_line_error(proc, str(tif), "outside")

"""Stages 2-5 on freshly generated synthetic stacks, scored against their ground truth.

Accuracy targets are those of issue 3: drift RMS <= 0.5 px (default noise) and <= 1 px
(twice the noise) with a cap/fiducial region; >= 90 % of ground-truth grains larger than 500
voxels matched one-to-one with IoU >= 0.8, <= 5 % spurious grains, at default noise.
Parameters were tuned on seeds 1-3; the seeds here (21-24) were not used for tuning.
"""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from magtwin.cli.main import main
from magtwin.io.artefact import read_json_attr
from magtwin.reconstruct.outlines import polygon_area
from magtwin.reconstruct.scoring import match_grains, shift_rms_error
from tests.util import write_ingest

try:
    from magtwin.synth import make_sample
except ImportError:  # pragma: no cover - package layout during development
    from magtwin.synth.sample import make_sample

SHAPE = [24, 128, 160]   # small: ~17 grains > 500 voxels, a few seconds per stage
LONG_SHAPE = [60, 128, 160]   # two grain extents along z: ~42 grains > 500 voxels
STAGES = ("denoise", "align", "segment", "grains")


def run_stages(folder, sample, upto="grains"):
    """Run the stages through the ``magtwin`` CLI; return the artefact paths."""
    paths = {"ingest": folder / "01_ingest.h5"}
    write_ingest(paths["ingest"], sample.stack, sample.voxel_size_nm)
    prev = paths["ingest"]
    for i, st in enumerate(STAGES):
        out = folder / f"0{i + 2}_{st}.h5"
        argv = [st, str(prev), "-o", str(out)]
        if st == "grains":
            argv += ["--image", str(paths["align"])]
        assert main(["-q"] + argv) == 0, st
        paths[st] = prev = out
        if st == upto:
            break
    return paths


_cache: dict = {}


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    def get(seed, upto="grains", shape=SHAPE, **synth):
        key = (seed, upto, tuple(shape), tuple(sorted(synth.items())))
        if key not in _cache:
            sample = make_sample(seed=seed, shape_px=list(shape), **synth)
            folder = tmp_path_factory.mktemp(f"seed{seed}")
            _cache[key] = (sample, run_stages(folder, sample, upto))
        return _cache[key]
    return get


def recovered_shifts(path):
    with h5py.File(path, "r") as f:
        return f["shifts_px"][...], read_json_attr(f, "quality_json"), f.attrs["cap_rows"]


@pytest.mark.parametrize("seed", [21, 22])
def test_drift_with_cap_at_default_noise(pipeline, seed):
    sample, paths = pipeline(seed)
    shifts, q, cap = recovered_shifts(paths["align"])
    assert q["registration_region"].startswith("cap rows")
    assert tuple(cap) == pytest.approx(sample.truth["cap_rows"], abs=1)
    assert shift_rms_error(shifts, sample.truth["shifts_px"]) <= 0.5


def test_drift_with_cap_at_twice_the_noise(pipeline):
    sample, paths = pipeline(23, upto="align", noise_level=0.08)
    shifts, q, _ = recovered_shifts(paths["align"])
    assert q["registration_region"].startswith("cap rows")
    assert shift_rms_error(shifts, sample.truth["shifts_px"]) <= 1.0


def test_drift_without_cap_is_bounded_and_reports_its_uncertainty(pipeline):
    # Without fiducials, inclined GBs bias every registration; the linear trend is removed so
    # a constant bias cannot add up. Measured: 0.5-1.6 px RMS over 24 slices (seeds 1-3, 25,
    # 26); over 60 slices 1.8 px (seed 2) and 6.6 px (seed 25: y 0.6 px, x 6.5 px -- along
    # the platelets only inclined side faces carry x information, and their bias varies with
    # depth). Issue: "state what the method reaches".
    sample, paths = pipeline(24, upto="align", cap=False)
    shifts, q, cap = recovered_shifts(paths["align"])
    assert q["registration_region"].startswith("whole slice") and tuple(cap) == (-1, -1)
    assert shift_rms_error(shifts, sample.truth["shifts_px"]) <= 2.5
    assert 0 < q["uncertainty_max_px"] < 5


def grain_scores(pipeline, seeds, shape=SHAPE, **synth) -> tuple[int, int, int, int]:
    """Truth grains > 500 voxels, those matched at IoU >= 0.8, spurious and reconstructed
    grains, summed over the stacks of ``seeds`` (``synth``: sample parameters)."""
    n = np.zeros(4, int)
    for seed in seeds:
        sample, paths = pipeline(seed, shape=shape, **synth)
        with h5py.File(paths["grains"], "r") as f:
            m = match_grains(sample.truth["labels"], f["labels"], min_voxels=500, min_iou=0.8)
        n += [m["n_truth"], m["n_matched"], m["n_spurious"], m["n_reconstructed"]]
    return tuple(int(v) for v in n)


def test_grains_match_ground_truth(pipeline):
    n_truth, n_matched, n_spurious, n_rec = grain_scores(pipeline, (21, 22, 25, 26))
    assert n_truth >= 50
    assert n_matched / n_truth >= 0.9
    assert n_spurious / n_rec <= 0.05


def test_grains_match_ground_truth_on_long_stacks(pipeline):
    # Stacks of 60 slices, two grain extents along z (300 nm / 10 nm): every grain ends
    # inside the stack and another one starts at its place, and a grain spanning N slices
    # survives N linking decisions -- errors that compound with the stack length (issue 3:
    # 83.9 % matched on such stacks before the area-dip cut and the 3D refinement of the
    # grains stage). Those were tuned on seeds 41-48 (83.0 -> 91.4 % matched); seeds 51-54
    # were scored during the work (86.3 %; one stack, 52, at 69 %: thin grains along the
    # field edge), seeds 61-64 once after it (92.3 %, 0.7 % spurious). With segment
    # merge_threshold 0.2 (set on small-grain stacks, seeds 71-73): 41-48 91.7 %, 51-54
    # 89.3 %, 61-64 91.7 % (0.3 % spurious). After the small-grain work (segment merging on
    # the line evidence, cores along grain borders only, zsplit_max_dip 0.7, sheet cuts):
    # 41-48 98.2 %, 51-54 98.2 %, 61-64 98.2 % (0.4 % spurious).
    n_truth, n_matched, n_spurious, n_rec = grain_scores(pipeline, (61, 62, 63, 64), LONG_SHAPE)
    assert n_truth >= 120
    assert n_matched / n_truth >= 0.9
    assert n_spurious / n_rec <= 0.05


def test_grains_match_ground_truth_on_long_stacks_of_small_grains(pipeline):
    # Platelets of 200 x 60 nm (default 300 x 80 nm): ~125 grains > 500 voxels per stack,
    # their sections 40 x 12 px, half of them cut by the field edge or the cap. Issue 3
    # before this test: 57 % matched (seeds 71-73; the per-slice merging joined sections
    # across their faint GB lines, thin grains along the field edge had no core in the 3D
    # refinement, grains linked end to end were not cut). Tuned on seeds 71-73 and checked
    # on 74-76 (92.5 % matched both, <= 0.2 % spurious); seeds 81-83 held out, scored once
    # after the tuning: 95.5 % matched, 0 spurious.
    small = {"grain_diameter_nm": 200.0, "grain_thickness_nm": 60.0}
    n_truth, n_matched, n_spurious, n_rec = grain_scores(pipeline, (81, 82, 83), LONG_SHAPE, **small)
    assert n_truth >= 300
    assert n_matched / n_truth >= 0.9
    assert n_spurious / n_rec <= 0.05


def test_artefact_contents_and_quality_report(pipeline):
    sample, paths = pipeline(21)
    nz, ny, nx = sample.stack.shape
    with h5py.File(paths["denoise"], "r") as f:
        q = read_json_attr(f, "quality_json")
        assert q["noise_rel_after"] < 0.5 * q["noise_rel_before"]
        assert q["stripe_power_after"] < q["stripe_power_before"]
        assert tuple(f.attrs["voxel_size_nm"]) == tuple(sample.voxel_size_nm)
    with h5py.File(paths["align"], "r") as f:
        vol, valid = f["volume"], f["valid_mask"][...].astype(bool)
        assert vol.shape == (nz, ny, nx) and valid.shape == (ny, nx)
        # pixels outside the common footprint are marked, not filled
        assert 0.8 < valid.mean() < 1.0
        assert np.isnan(vol[...][:, ~valid]).any(axis=0).all()
        assert np.isfinite(vol[...][:, valid]).all()
    with h5py.File(paths["segment"], "r") as f:
        lab2d = f["labels2d"][...]
        table = f["outlines/table"][...]
        verts = f["outlines/vertices_nm"][...]
        # one polygon per 2D section, its area (nm^2 -> px) close to the section's pixel count
        assert len(table) == sum(int(lab2d[k].max()) for k in range(nz))
        big = table[table[:, 4] > 200]
        px_area = sample.voxel_size_nm[1] * sample.voxel_size_nm[2]
        for k, lbl, first, n, area in big[:50]:
            poly = verts[first:first + n]
            assert polygon_area(poly) / px_area == pytest.approx(area, rel=0.15)
    with h5py.File(paths["grains"], "r") as f:
        labels = f["labels"][...]
        tab = f["grain_table"][...]
        cols = f["grain_table"].attrs["columns"].split(",")
        assert labels.dtype == np.uint32 and labels.shape == (nz, ny, nx)
        c0, c1 = sample.truth["cap_rows"]
        assert (labels[:, c0:c1 - 1] == 0).all()      # the cap is not a grain
        assert tab[:, cols.index("volume_voxels")].sum() == (labels > 0).sum()
        assert len(tab) == int(f.attrs["n_grains"]) == labels.max()
        assert (tab[:, cols.index("aspect_ratio")] >= 1).all()
        q = json.loads(f.attrs["quality_json"])
        assert q["n_grains"] == len(tab)


def test_segment_in_worker_processes_equals_one_process(pipeline, tmp_path):
    # slices segmented in a process pool are written in order and equal the serial result
    from magtwin.reconstruct.segment import run_segment

    _, paths = pipeline(21)
    out = {}
    for n in (1, 2):
        out[n] = tmp_path / f"seg{n}.h5"
        run_segment(paths["align"], out[n], {"workers": n})
    with h5py.File(out[1], "r") as a, h5py.File(out[2], "r") as b:
        assert np.array_equal(a["labels2d"][...], b["labels2d"][...])
        assert np.array_equal(a["outlines/table"][...], b["outlines/table"][...])
        assert np.array_equal(a["outlines/vertices_nm"][...], b["outlines/vertices_nm"][...])

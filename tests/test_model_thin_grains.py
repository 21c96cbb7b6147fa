"""Issue 4 target "every GB region's measured thickness within 5 % of the configured value" on
the exact model, where grains too thin for a centred GB shell occur (mostly cut thin by the
box): such a grain gets its GBs placed in its neighbours (one-sided, still t thick), or is
dropped from the tessellation if even its whole cell is a sliver, instead of its core sliver
being merged into a GB region, which made that region thicker (3.08 nm instead of 2 nm on
the 30-grain benchmark model). Thickness measured with :func:`tests.model_helpers.slab_thickness`
on the vertices of each region's pieces, and along the pair's power-bisector normal from the
two sites; the reference is the configured thickness itself (DESIGN.md,
magtwin.model.boundary_phase)"""

from __future__ import annotations

import numpy as np
import pytest

from magtwin.model.build import model_from_labels
from magtwin.model.geometry import build_geometry

from .model_helpers import slab_thickness

T = 2.0
BOX = np.array([60.0, 60.0, 20.0])
COLUMNS = np.array([[20.0, 20.0, 10.0], [45.0, 25.0, 10.0], [25.0, 45.0, 10.0]])


def gb_thicknesses(geom, slab_like_only=False) -> dict[tuple, float]:
    """{grain labels of a GB region: slab thickness (nm) of its pieces' vertices}."""
    out = {}
    for r in geom.regions:
        if r["kind"] != "gb":
            continue
        pts = np.vstack([p.poly.vertices for p in geom.pieces if p.region == r["id"]])
        sv = np.linalg.svd(pts - pts.mean(axis=0), compute_uv=False)
        if slab_like_only and sv[1] < 4 * sv[2]:  # a tiny GB patch: its width is not its thickness
            continue
        out[tuple(r["grains"])] = slab_thickness(pts)
    return out


def _cap_model(cap_weight):
    # three grain columns through the box and a flat cap grain (label 4) at the top face, from a
    # site above the box: at most 0.6 nm thick at weight 1325, 1.8 nm at 1450, 2.3 nm at 1500
    sites = np.vstack([COLUMNS, [[30.0, 30.0, 60.0]]])
    weights = np.array([0.0, 0.0, 0.0, cap_weight])
    geom = build_geometry(sites, weights, np.array([1, 2, 3, 4]), [0, 0, 0], BOX, T, 0.3, 3.0)
    return geom, sites, weights


def _owner(sites, weights):
    """Cell index of 40 000 random points of the box by brute-force power classification
    (independent of the clipping code), and the points."""
    pts = np.random.default_rng(0).uniform(0, 1, (40000, 3)) * BOX
    return np.argmin(((pts[:, None] - sites[None]) ** 2).sum(-1) - weights[None], axis=1)


def _grain_volume_fraction(geom, g):
    return sum(p.poly.volume() for p in geom.pieces if p.grain == g) / np.prod(BOX)


def test_grain_too_thin_for_any_gb_shell_is_dropped_and_every_gb_is_t_thick():
    # the 0.6 nm cap has no room for a core even with its GB shell in the columns: dropped
    geom, _, _ = _cap_model(1325.0)
    thick = gb_thicknesses(geom)
    for pair, t in thick.items():
        assert t == pytest.approx(T, rel=0.05), pair
    assert set(thick) == {(1, 2), (1, 3), (2, 3)}
    dropped = geom.cleanup["dropped_grains"]
    assert [d["grain"] for d in dropped] == [4]
    assert "GB shell" in dropped[0]["reason"] and dropped[0]["core_inner_radius_nm"] < 0.3
    assert all(4 not in r["grains"] for r in geom.regions)
    assert sum(r["volume_nm3"] for r in geom.regions) == pytest.approx(np.prod(BOX), rel=1e-12)
    # the columns took its space: each fills its power cell among the three remaining sites
    owner = _owner(COLUMNS, np.zeros(3))
    for g in range(3):
        assert _grain_volume_fraction(geom, g) == pytest.approx(np.mean(owner == g), abs=0.01)


def test_thin_grain_keeps_its_cell_as_core_with_its_gb_in_the_neighbours():
    # the 1.8 nm cap: a centred 2 nm shell leaves a core sliver 0.2 nm from its centroid to its
    # faces (merged into a GB before, which became 2.52 nm thick); its GBs lie in the columns
    geom, sites, weights = _cap_model(1450.0)
    thick = gb_thicknesses(geom)
    for pair, t in thick.items():
        assert t == pytest.approx(T, rel=0.05), pair
    assert set(thick) == {(1, 2), (1, 3), (2, 3), (1, 4), (2, 4), (3, 4)}
    assert geom.cleanup["dropped_grains"] == []
    assert sorted(geom.cleanup["one_sided_gb"]) == [[1, 4, 1], [2, 4, 2], [3, 4, 3]]
    # the cap's whole power cell is its grain core; every grain keeps its cell
    owner = _owner(sites, weights)
    cap = [r for r in geom.regions if r["kind"] == "grain" and r["grains"] == [4]]
    assert len(cap) == 1 and cap[0]["volume_nm3"] / np.prod(BOX) == pytest.approx(np.mean(owner == 3), abs=0.002)
    for g in range(4):
        assert _grain_volume_fraction(geom, g) == pytest.approx(np.mean(owner == g), abs=0.01)


def test_grain_with_a_core_keeps_a_centred_shell():
    # the 2.3 nm cap has a core of at least min_feature inside a centred shell
    geom, _, _ = _cap_model(1500.0)
    assert geom.cleanup["dropped_grains"] == [] and geom.cleanup["one_sided_gb"] == []
    assert [r["grains"] for r in geom.regions if r["kind"] == "grain"] == [[1], [2], [3], [4]]
    thick = gb_thicknesses(geom)
    assert {(1, 4), (2, 4), (3, 4)} <= set(thick)
    for pair, t in thick.items():
        assert t == pytest.approx(T, rel=0.05), pair


@pytest.mark.parametrize("seed", [0, 3, 4])
def test_benchmark_30_grain_models_every_gb_is_t_thick(seed):
    """benchmarks/model_mesh.py one(30, 15.0, ...) (default seed 0, and 3, 4): jittered-lattice
    Laguerre grains of 15 nm in a 60 x 60 x 30 nm box. Before: seed 0 had a GB 3.08 nm thick
    (a thin grain's core sliver merged into it), seed 3 one 2.24 nm (a third grain's TJ
    sliver), seed 4 one 1.0 nm (a GB half-slab sliver merged into its grain core), and each a
    few GB regions of one half only (halves that never meet, now junction)."""
    rng = np.random.default_rng(seed)
    n, grain_nm, k = 30, 15.0, 4
    g = np.stack(np.meshgrid(*[np.arange(k)] * 3, indexing="ij"), -1).reshape(-1, 3)[:n] + 0.5
    sites = (g + rng.uniform(-0.3, 0.3, g.shape)) * grain_nm
    weights = rng.uniform(0, 0.1 * grain_nm**2, n)
    geom = build_geometry(sites, weights, np.arange(1, n + 1), [0, 0, 0], [60.0, 60.0, 30.0], T, 0.3, 3.0)
    # every GB region: its extent along the normal of its power bisector (from the two sites)
    gb = [r for r in geom.regions if r["kind"] == "gb"]
    assert len(gb) >= 45
    width = {}
    for r in gb:
        a, b = (r["grains"][0] - 1, r["grains"][1] - 1)
        normal = (sites[b] - sites[a]) / np.linalg.norm(sites[b] - sites[a])
        pts = np.vstack([p.poly.vertices for p in geom.pieces if p.region == r["id"]])
        width[tuple(r["grains"])] = float(np.ptp(pts @ normal))
    assert {pair: round(w, 3) for pair, w in width.items() if abs(w / T - 1) > 0.05} == {}
    # and every slab-like one measured as a slab (hull width, tests/model_helpers)
    thick = gb_thicknesses(geom, slab_like_only=True)
    assert len(thick) >= 30
    assert {pair: round(t, 3) for pair, t in thick.items() if abs(t / T - 1) > 0.05} == {}


def test_thin_grains_keep_90_percent_voxel_accuracy_on_synthetic_truth(tmp_path):
    """The default model settings (crop 300 x 250 nm, scale 0.075: platelets 6 nm thick, GB
    2 nm) on a synthetic ground truth (magtwin.synth) in which grains are cut thin by the crop
    box: they keep their cells (one-sided GBs) or are dropped, and the model's cells still
    reproduce >= 90 % of the labelled voxels (issue 4 target), recounted here by brute-force
    power classification of every voxel centre."""
    from magtwin.model.build import read_labels
    from magtwin.synth.output import generate_files

    # seed 5: two platelets cut 1.3-1.5 nm thin by the crop; dropping them (instead of their
    # one-sided GBs) left 87 % voxel accuracy
    generate_files({"shape_px": [40, 200, 200], "seed": 5, "cap": True}, tmp_path / "s.tif", tmp_path / "truth.h5")
    params = {"crop_nm": {"x": [0, 300], "y": [0, 250]}, "scale": 0.075, "fit_sample_voxels": 50000,
              "fit_iterations": 60}
    labels, vs, extra = read_labels(tmp_path / "truth.h5", params["crop_nm"])
    geom, report, sites, weights = model_from_labels(labels, vs, params, extra)
    dropped = [d["grain"] for d in geom.cleanup["dropped_grains"]]
    assert all(r["grains"] != [g] for r in geom.regions for g in dropped)
    keep = ~np.isin(geom.grain_ids, dropped)
    z, y, x = np.nonzero(labels)
    p = np.column_stack([(x + 0.5) * vs[2], (y + 0.5) * vs[1], (z + 0.5) * vs[0]]) * 0.075
    pw = ((p[:, None] - sites[keep][None]) ** 2).sum(-1) - weights[keep][None]
    accuracy = np.mean(geom.grain_ids[keep][np.argmin(pw, axis=1)] == labels[z, y, x])
    assert accuracy >= 0.90
    assert report["voxel_accuracy"] == pytest.approx(accuracy, abs=1e-9)
    assert len(geom.cleanup["one_sided_gb"]) >= 2

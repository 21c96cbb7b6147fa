"""Model + mesh of a held-out synthetic sample with the default config, measured
independently of the project's reports (issue 4, "How it will be checked").

Seed 13 was not used while the mesh stage was developed; its model has a GB slab whose face
passes 0.14 nm from a box corner: the regularisation merged that face's vertex into the
fixed corner and tilted the face (slab 2.135 nm wide, 6.8 % over), until a box edge or corner
could pull a slab face by at most ``mesh.gb_plane_tol_nm``. Targets (issue 4): every GB region t +- 5 %, total volume =
box volume to 1e-9, positive elements, conforming, no dihedral angle below 5 deg.
"""

from __future__ import annotations

import numpy as np
import pytest

from magtwin.cli.main import main
from magtwin.io.mesh_artefact import read_mesh_artefact

from .model_helpers import face_usage, min_dihedral_deg, slab_thickness, tet_volumes

CONFIG = "config/config.yaml"


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    d = tmp_path_factory.mktemp("heldout13")
    assert main(["-q", "synth", "--out-stack", str(d / "stack.tif"), "--out-truth", str(d / "truth.h5"),
                 "--config", CONFIG, "--seed", "13"]) == 0
    assert main(["-q", "model", str(d / "truth.h5"), "-o", str(d / "06_model.h5"), "--config", CONFIG]) == 0
    assert main(["-q", "mesh", str(d / "06_model.h5"), "-o", str(d / "07_mesh.h5"), "--config", CONFIG]) == 0
    return read_mesh_artefact(d / "07_mesh.h5")


def test_heldout_sample_gb_thickness_within_5_percent(mesh):
    pts, tets, rid = mesh.points_nm, mesh.tetrahedra, mesh.region_id
    checked = 0
    for r in mesh.regions:
        if r["kind"] != "gb":
            continue
        nodes = pts[np.unique(tets[rid == r["id"]])]
        sv = np.linalg.svd(nodes - nodes.mean(axis=0), compute_uv=False)
        if sv[1] < 4 * sv[2]:  # a small GB patch, not slab-like: its width is not its thickness
            continue
        assert slab_thickness(nodes) == pytest.approx(2.0, rel=0.05), r
        checked += 1
    assert checked >= 3


def test_heldout_sample_mesh_is_exact_conforming_and_has_no_element_below_5_deg(mesh):
    pts, tets = mesh.points_nm, mesh.tetrahedra
    vol = tet_volumes(pts, tets)
    assert vol.min() > 0
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    assert vol.sum() == pytest.approx(np.prod(hi - lo), rel=1e-9)
    _, count, _ = face_usage(tets)
    assert count.max() == 2
    assert min_dihedral_deg(pts, tets).min() >= 5.0

"""Reversal movie of a two-grain model with a soft grain-boundary phase (``magtwin movie``).

Two Nd2Fe14B grains with a 2 nm boundary phase of Js = 0.8 T and K1 = 0 between them: the
soft layer lowers the nucleation field (Kronmüller & Fähnle, Micromagnetism and the
Microstructure of Ferromagnetic Solids, 2003, ch. 9), so under a reversed field of 6 T
(below the grains' anisotropy field of 7.6 T) reversal must start in the GB region and then
sweep into the grains. The movie must say so.
"""

from __future__ import annotations

import json

import numpy as np

from magtwin.io.mesh_artefact import write_mesh_artefact
from magtwin.micromag.shapes import box_mesh
from tests.util import assert_one_line_error, run_cli


def test_movie_shows_reversal_starting_in_the_grain_boundary(tmp_path):
    mesh = box_mesh((14.0, 4.0, 4.0), (14, 2, 2),
                    region_of_cell=lambda c: np.where(c[:, 0] < 6, 1, np.where(c[:, 0] < 8, 2, 3)))
    mesh.regions = [{"id": 1, "kind": "grain", "grains": [1]}, {"id": 2, "kind": "gb", "grains": [1, 3]},
                    {"id": 3, "kind": "grain", "grains": [3]}]
    write_mesh_artefact(tmp_path / "mesh.h5", mesh)
    (tmp_path / "mat.yaml").write_text("grain: {}\ngb: {Js_T: 0.8}\n")
    run_cli("dynamics", "--mesh", tmp_path / "mesh.h5", "--materials", tmp_path / "mat.yaml", "--no-demag",
            "--alpha", 1, "--t-end-ns", 0.04, "--field=0.3,0,-6", "--initial-m", "0,0,1",
            "--snapshot-every-ns", 0.004, "--out", tmp_path / "dyn.h5", check=True)
    run_cli("movie", "--dynamics", tmp_path / "dyn.h5", "--size", "320,240", "--out", tmp_path / "frames",
            check=True)
    frames = sorted((tmp_path / "frames").glob("frame_*.png"))
    assert len(frames) == 11                       # t = 0, 0.004, ..., 0.04 ns
    assert all(f.stat().st_size > 2000 for f in frames)
    summary = json.loads((tmp_path / "frames" / "nucleation.json").read_text())
    assert summary["nucleation"]["kind"] == "gb" and summary["nucleation"]["region"] == 2
    onset = summary["onset_ns"]
    assert {e["region"] for e in onset} == {1, 2, 3}            # everything reversed in the end
    assert min(e["t_ns"] for e in onset) == next(e["t_ns"] for e in onset if e["kind"] == "gb")


def test_movie_of_a_wrong_artefact(tmp_path):
    mesh = box_mesh((4.0, 4.0, 4.0), (1, 1, 1))
    write_mesh_artefact(tmp_path / "mesh.h5", mesh)
    proc = run_cli("movie", "--dynamics", tmp_path / "mesh.h5", "--out", tmp_path / "frames")
    assert_one_line_error(proc, "mesh.h5")

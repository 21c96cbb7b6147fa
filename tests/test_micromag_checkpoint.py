"""Checkpoint and resume (issue 7 item 3): a run stopped by SIGTERM writes a checkpoint and
no artefact; the same command resumes it and gives the same curve as an uninterrupted run; a
checkpoint from another parameter set is refused."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import h5py
import numpy as np

from magtwin.io.mesh_artefact import write_mesh_artefact
from magtwin.micromag.shapes import box_mesh
from tests.util import ROOT, assert_one_line_error, run_cli


def _args(d, out, angle=5):
    return ["simulate", "--mesh", d / "mesh.h5", "--materials", d / "mat.yaml", "--settings",
            d / "settings.yaml", "--field-start", 0, "--field-stop", -8, "--field-step", 0.5,
            "--angle", angle, "--refine-tol", 0.05, "--torque-tol", 1e-5, "--out", d / out]


def test_sigterm_checkpoint_and_resume(tmp_path):
    d = tmp_path
    mesh = box_mesh((12.0, 6.0, 6.0), (6, 3, 3), region_of_cell=lambda c: 1 + (c[:, 0] > 6.0))
    write_mesh_artefact(d / "mesh.h5", mesh)
    (d / "mat.yaml").write_text("grain: {}\nregions: {2: {easy_axis: [0.3, 0.0, 1.0], K1_J_per_m3: 3.0e+6}}\n")
    (d / "settings.yaml").write_text("solver: {air_sphere_subdivisions: 2, air_shell_layers: 4, "
                                     "checkpoint_interval_s: 0}\n")
    run_cli(*_args(d, "full.h5"), check=True)

    cmd = [sys.executable, "-m", "magtwin.cli.main", *map(str, _args(d, "cut.h5"))]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    n_points = 0
    for line in proc.stderr:                      # stop it a few field points into the sweep
        n_points += " field " in line
        if n_points == 6:
            proc.send_signal(signal.SIGTERM)
            break
    err = proc.stderr.read()
    rc = proc.wait(timeout=300)
    assert rc == 75, err
    assert "checkpoint written" in err
    assert (d / "cut.h5.ckpt").exists()
    assert not (d / "cut.h5").exists()            # nothing that looks complete

    # a different parameter set must not reuse it
    bad = run_cli(*_args(d, "cut.h5", angle=7))
    assert_one_line_error(bad, "cut.h5.ckpt", "different mesh or parameter set")

    resumed = run_cli(*_args(d, "cut.h5"), check=True)
    assert "resumed from" in resumed.stderr
    assert not (d / "cut.h5.ckpt").exists()
    with h5py.File(d / "full.h5") as a, h5py.File(d / "cut.h5") as b:
        np.testing.assert_allclose(b["curve/field_T"][...], a["curve/field_T"][...], atol=1e-12)
        np.testing.assert_allclose(b["curve/J_T"][...], a["curve/J_T"][...], atol=1e-4)
        np.testing.assert_allclose(b["curve/jumps_T"][...], a["curve/jumps_T"][...], atol=1e-12)
        assert sorted(b["snapshots"]) == sorted(a["snapshots"])
        assert b["curve/converged"][...].all()

"""``magtwin dynamics``: 1 vs 2 MPI ranks, bad input, field schedules, stop by signal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from magtwin.errors import ConfigError
from magtwin.io.mesh_artefact import write_mesh_artefact
from magtwin.micromag.applied_field import read_schedule_file, schedule_from_cli, schedule_from_mapping
from magtwin.micromag.shapes import box_mesh
from tests.util import ROOT, assert_one_line_error, run_cli


@pytest.fixture(scope="module")
def film(tmp_path_factory):
    """A small permalloy-like film with demag (the SP4 material, smaller)."""
    d = tmp_path_factory.mktemp("film")
    write_mesh_artefact(d / "mesh.h5", box_mesh((60.0, 20.0, 3.0), (12, 4, 1)))
    (d / "mat.yaml").write_text("grain: {K1_J_per_m3: 0.0, Js_T: 1.005309649, A_J_per_m: 1.3e-11}\n")
    return d


@pytest.mark.mpi
def test_one_and_two_ranks_agree(film):
    args = ["dynamics", "--mesh", film / "mesh.h5", "--materials", film / "mat.yaml", "--alpha", 0.02,
            "--t-end-ns", 0.006, "--field=-24.6,4.3,0", "--field-unit", "mT", "--initial-m", "1,0.3,0.1",
            "--rtol", 1e-6, "--atol", 1e-6, "--snapshots-ns", "0.003", "--demag-rtol", 1e-10]
    run_cli(*args, "--out", film / "one.h5", check=True)
    cmd = ["mpirun", "-n", "2", sys.executable, "-m", "magtwin.cli.main", *map(str, args),
           "--out", str(film / "two.h5")]
    # env: the Python-level environment, without the MPI singleton variables that importing
    # mpi4py put into this process's C environment (they make a child mpirun fail silently)
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600, env=dict(os.environ))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with h5py.File(film / "one.h5") as a, h5py.File(film / "two.h5") as b:
        assert sorted(a["snapshots"], key=int) == sorted(b["snapshots"], key=int)
        for k in a["snapshots"]:
            assert a[f"snapshots/{k}/m"].attrs["t_ns"] == pytest.approx(b[f"snapshots/{k}/m"].attrs["t_ns"], abs=1e-12)
            np.testing.assert_allclose(a[f"snapshots/{k}/m"][...], b[f"snapshots/{k}/m"][...], atol=1e-5)
        ta, tb = a["timeseries/t_ns"][...], b["timeseries/t_ns"][...]
        ma, mb = a["timeseries/m_mean"][...], b["timeseries/m_mean"][...]
        for c in range(3):  # adaptive steps may differ in the last digits: compare on one time grid
            np.testing.assert_allclose(np.interp(ta, tb, mb[:, c]), ma[:, c], atol=1e-5)
        ea, eb = a["timeseries/energy_J"][-1], b["timeseries/energy_J"][-1]
        np.testing.assert_allclose(ea, eb, atol=1e-4 * np.abs(ea).max())
        assert np.abs(ma[-1] - ma[0]).max() > 0.01  # the state really evolved


@pytest.mark.parametrize("extra,fragment", [
    (["--alpha", "0"], "'alpha' must be positive"),
    (["--alpha", "-0.1"], "'alpha' must be positive"),
    (["--t-end-ns", "0"], "'t_end_ns' must be positive"),
    (["--dt0-ns", "-0.001"], "'dt0_ns' must be positive"),
    (["--field", "1,2"], "3 components"),
    (["--stop-crossing", "w:0"], "--stop-crossing"),
])
def test_bad_arguments_one_line_error(film, tmp_path, extra, fragment):
    args = {"--alpha": "0.1", "--t-end-ns": "0.01"}
    for k, v in zip(extra[::2], extra[1::2]):
        args[k] = v
    flat = [x for kv in args.items() for x in kv]
    proc = run_cli("dynamics", "--mesh", film / "mesh.h5", "--materials", film / "mat.yaml", "--no-demag",
                   *flat, "--out", tmp_path / "o.h5")
    assert_one_line_error(proc, fragment)
    assert not list(tmp_path.glob("o*.h5"))


@pytest.mark.parametrize("text,fragment", [
    ("type: [\n", "not valid YAML"),
    ("type: wobble\n", "'type' must be one of"),
    ("type: ramp\nfield_T: [0, 0, 1]\n", "rate_T_per_s"),
    ("steps: [{t_ns: 0.1, field_T: [0, 0, 1]}]\n", "steps[0].t_ns"),
    ("steps: [{t_ns: 0, field_T: [0, 0, 1]}, {t_ns: 0, field_T: [0, 0, 2]}]\n", "increase"),
    ("field_T: [0, 0, x]\n", "finite number"),
    ("colour: red\n", "unknown key 'colour'"),
])
def test_unparsable_field_file(film, tmp_path, text, fragment):
    (tmp_path / "field.yaml").write_text(text)
    proc = run_cli("dynamics", "--mesh", film / "mesh.h5", "--materials", film / "mat.yaml", "--no-demag",
                   "--alpha", 0.1, "--t-end-ns", 0.01, "--field-file", tmp_path / "field.yaml",
                   "--out", tmp_path / "o.h5")
    line = assert_one_line_error(proc, fragment)
    assert "field.yaml" in line
    assert not (tmp_path / "o.h5").exists()


def test_integrator_divergence_is_reported(film, tmp_path):
    # A fixed 0.1 ns explicit step in a 10 T field (precession period 3.6 ps) cannot be stable.
    env = {"PETSC_OPTIONS": "-llg_ts_adapt_type none"}
    proc = run_cli("dynamics", "--mesh", film / "mesh.h5", "--materials", film / "mat.yaml", "--no-demag",
                   "--alpha", 0.1, "--t-end-ns", 2, "--field", "0,0,10", "--initial-m", "1,0,0",
                   "--method", "rk3bs", "--dt0-ns", 0.1, "--out", tmp_path / "o.h5", env=env)
    assert_one_line_error(proc, "unstable")
    assert proc.returncode == 3
    assert not list(tmp_path.glob("o*.h5"))


def test_schedules():
    s = schedule_from_mapping({"steps": [{"t_ns": 0, "field_T": [0, 0, 1]}, {"t_ns": 0.5, "field_mT": [0, 0, -50]}]})
    np.testing.assert_allclose(s(0.49), [0, 0, 1])
    np.testing.assert_allclose(s(0.5), [0, 0, -0.05])
    assert s.breakpoints_ns(1.0) == [0.5] and s.breakpoints_ns(0.4) == []
    r = schedule_from_cli("1", "T", "-1e9", "0,0,2")
    np.testing.assert_allclose(r(2.0), [0, 0, -1.0])          # 1 T - 1e9 T/s * 2 ns
    c = schedule_from_cli("-24.6,4.3,0", "mT")
    np.testing.assert_allclose(c(7.0), [-0.0246, 0.0043, 0])
    with pytest.raises(ConfigError, match="direction"):
        schedule_from_cli("1", "T")
    with pytest.raises(ConfigError, match="does not exist"):
        read_schedule_file("/nonexistent/field.yaml")


def test_steps_and_sigterm_writes_final_snapshot(film, tmp_path):
    (tmp_path / "steps.yaml").write_text(
        "steps: [{t_ns: 0, field_T: [0, 0, 1]}, {t_ns: 0.001, field_T: [0, 0, 2]}]\n")
    out = tmp_path / "run.h5"
    cmd = [sys.executable, "-m", "magtwin.cli.main", "dynamics", "--mesh", str(film / "mesh.h5"),
           "--materials", str(film / "mat.yaml"), "--no-demag", "--alpha", "0.001", "--t-end-ns", "100",
           "--field-file", str(tmp_path / "steps.yaml"), "--initial-m", "1,0,0", "--rtol", "1e-8",
           "--out", str(out)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ))
    try:
        time.sleep(8.0)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "stopped by a signal" in err and "Traceback" not in err
    assert not out.exists()
    part = tmp_path / "run.interrupted.h5"
    with h5py.File(part) as f:
        assert f.attrs["complete"] and f.attrs["stop_reason"] == "signal"
        t = f["timeseries/t_ns"][...]
        b = f["timeseries/field_T"][...]
        last = max(f["snapshots"], key=int)
        m = f[f"snapshots/{last}/m"][...]
        assert f[f"snapshots/{last}/m"].attrs["t_ns"] == pytest.approx(t[-1])
        assert 0.001 < t[-1] < 100
        np.testing.assert_allclose(b[t < 0.001], np.tile([0, 0, 1.0], (np.sum(t < 0.001), 1)))
        np.testing.assert_allclose(b[t >= 0.001], np.tile([0, 0, 2.0], (np.sum(t >= 0.001), 1)))
        assert 0.001 in set(np.round(t, 12))             # the integrator stopped at the step
        np.testing.assert_allclose(np.linalg.norm(m, axis=1), 1.0, atol=1e-4)
    # the interrupted state is a valid starting point
    run_cli("dynamics", "--mesh", film / "mesh.h5", "--materials", film / "mat.yaml", "--no-demag",
            "--alpha", 0.5, "--t-end-ns", 0.001, "--field", "0,0,2", "--initial", part,
            "--out", tmp_path / "cont.h5", check=True)
    with h5py.File(tmp_path / "cont.h5") as f:
        np.testing.assert_allclose(f["snapshots/0/m"][...], m, atol=1e-4)  # renormalised start

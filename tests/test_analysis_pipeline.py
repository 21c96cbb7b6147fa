"""Sweep analysis end to end: simulate artefacts -> summary CSV/HDF5 -> figures, renders, CLI.

The simulate artefacts are written here from analytic Stoner–Wohlfarth loops (Stoner &
Wohlfarth, Phil. Trans. R. Soc. A 240, 599 (1948)) following the solver's artefact contract,
on a small three-region box mesh (grain | grain boundary | grain).
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from magtwin.analysis.curve import MU0
from magtwin.analysis.reference import sw_coercive_field, sw_loop
from magtwin.io.artefact import ArtefactWriter
from magtwin.io.mesh_artefact import MeshData, write_mesh_artefact
from magtwin.sweep import expand_sweep
from tests.util import assert_one_line_error, run_cli

JS = 1.61  # T
K1 = 4.9e6  # J/m³, Nd2Fe14B


def box_mesh(n=(10, 4, 4), size=(40.0, 16.0, 16.0)) -> MeshData:
    """Box of n cubes split into 6 tetrahedra each; regions grain 1 | GB 3 | grain 2 along x."""
    xs = [np.linspace(0, s, k + 1) for s, k in zip(size, n)]
    X, Y, Z = np.meshgrid(*xs, indexing="ij")
    pts = np.c_[X.ravel(), Y.ravel(), Z.ravel()]
    idx = np.arange(len(pts)).reshape(X.shape)
    corners = [(0, 0, 0), (1, 0, 0), (0, 1, 0), (1, 1, 0), (0, 0, 1), (1, 0, 1), (0, 1, 1), (1, 1, 1)]
    tets = []
    for i in range(n[0]):
        for j in range(n[1]):
            for k in range(n[2]):
                c = [idx[i + a, j + b, k + d] for a, b, d in corners]
                for t in ((0, 1, 3, 7), (0, 1, 5, 7), (0, 2, 3, 7), (0, 2, 6, 7), (0, 4, 5, 7), (0, 4, 6, 7)):
                    tets.append([c[q] for q in t])
    tets = np.array(tets)
    p = pts[tets]
    vol = np.einsum("ij,ij->i", np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]), p[:, 3] - p[:, 0])
    tets[vol < 0] = tets[vol < 0][:, [0, 2, 1, 3]]
    cx = pts[tets].mean(axis=1)[:, 0]
    rid = np.where(cx < 16, 1, np.where(cx < 24, 3, 2)).astype(np.int32)
    regions = [{"id": 1, "kind": "grain", "grains": [1]}, {"id": 2, "kind": "grain", "grains": [2]},
               {"id": 3, "kind": "gb", "grains": [1, 2]}]
    return MeshData(pts, tets, rid, regions)


def write_curve_artefact(path, field_T, J_T, direction, point=None, mesh=None, snapshot_every=0,
                         converged=None):
    """A stage 'simulate' artefact after the solver contract; snapshots reverse the mesh from
    its x-centre (the GB region) outwards, by the volume fraction (1 - J·h/Js)/2."""
    field_T = np.asarray(field_T, float)
    Jh = J_T @ direction
    with ArtefactWriter(path, "simulate", {"sweep_point": point or {}}) as w:
        w.write("curve/field_T", field_T)
        w.write("curve/J_T", J_T)
        w.write("curve/J_along_field_T", Jh)
        w.write("curve/energy_J", np.zeros((len(field_T), 1)), attrs={"terms": ["total"]})
        w.write("curve/iterations", np.ones(len(field_T), np.int32))
        w.write("curve/converged", np.ones(len(field_T), bool) if converged is None else converged)
        w.write("curve/max_torque", np.zeros(len(field_T)))
        a = w.h5.attrs
        a["field_angle_deg"] = float(np.degrees(np.arccos(np.clip(direction[2], -1, 1))))
        a["field_direction"] = np.asarray(direction, float)
        a["Js_mean_T"] = JS
        a["magnet_volume_nm3"] = 40.0 * 16 * 16
        if mesh is not None:  # the solver keeps its own copy of the mesh geometry
            w.write("mesh/points_nm", mesh.points_nm)
            w.write("mesh/tetrahedra", mesh.tetrahedra)
            w.write("mesh/region_id", mesh.region_id)
        if mesh is not None and snapshot_every:
            x = mesh.points_nm[:, 0]
            dist = np.abs(x - x.mean()) / np.abs(x - x.mean()).max()
            for k in range(0, len(field_T), snapshot_every):
                frac = (1 - Jh[k] / JS) / 2
                m = np.tile(np.asarray(direction, float), (len(x), 1))
                m[dist < 1.2 * frac] *= -1
                w.write(f"snapshots/{k}/m", m)


FIELD = np.linspace(8.5, -8.5, 681)  # T, step 0.025 T


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
    """A default-like sweep: Hc falls with gb_Js_T; an angle series at gb_Js_T = 0.8."""
    d = tmp_path_factory.mktemp("sweep")
    mesh = box_mesh()
    write_mesh_artefact(d / "07_mesh.h5", mesh)
    points = expand_sweep({"gb_Js_T": [0.0, 0.4, 0.8, 1.2], "field_angle_deg": [0.0],
                           "extra_grids": [{"gb_Js_T": [0.8], "field_angle_deg": [15.0, 30.0, 45.0]}]})
    k1 = {}
    for name, p in points.items():
        # Stand-in for the GB effect: an effective anisotropy falling with GB Js.
        k1[name] = K1 * (1.0 - 0.6 * p["gb_Js_T"])
        J, h = sw_loop(FIELD, p["field_angle_deg"], k1[name], JS)
        write_curve_artefact(d / f"{name}.h5", FIELD, J, h, p, mesh, snapshot_every=20)
    # A point whose curve never reaches J = 0 (field range too small).
    J, h = sw_loop(FIELD[:200], 0.0, K1, JS)
    write_curve_artefact(d / "short.h5", FIELD[:200], J, h, {"gb_Js_T": 0.0})
    return d, points, k1


def test_summary_values_and_files(sweep_dir, tmp_path):
    from magtwin.analysis.summary import analyse_sweep, read_summary, write_summary

    d, points, k1 = sweep_dir
    paths = {n: d / f"{n}.h5" for n in points}
    paths["short"] = d / "short.h5"
    paths["missing"] = d / "missing.h5"
    s = analyse_sweep(paths, points, mesh_path=d / "07_mesh.h5", demag_factor="none")
    write_summary(s, tmp_path / "summary.csv", tmp_path / "summary.h5")
    with open(tmp_path / "summary.csv") as fh:
        rows = {r["point"]: r for r in csv.DictReader(fh)}
    assert set(rows) == set(points) | {"short", "missing"}
    step = FIELD[0] - FIELD[1]
    for name, p in points.items():
        # SW coercive field h_c(psi) * 2 K1/Js (Stoner & Wohlfarth 1948; Tannous &
        # Gieraltowski, Eur. J. Phys. 29, 475 (2008)), to within one field step.
        expect = sw_coercive_field(p["field_angle_deg"]) * 2 * MU0 * k1[name] / JS
        assert float(rows[name]["mu0Hc_T"]) == pytest.approx(expect, abs=step)
        # Remanence of an SW particle: Js cos(psi).
        assert float(rows[name]["Jr_T"]) == pytest.approx(JS * np.cos(np.radians(p["field_angle_deg"])), rel=1e-6)
    hc = [float(rows[f"gbJs{v}_angle0"]["mu0Hc_T"]) for v in ("0", "0.4", "0.8", "1.2")]
    assert all(a > b for a, b in zip(hc, hc[1:]))
    assert rows["short"]["mu0Hc_T"] == "nan" and "beyond the field range" in rows["short"]["notes"]
    assert rows["missing"]["mu0Hc_T"] == "nan" and "does not exist" in rows["missing"]["notes"]
    # Nucleation found in the GB region (the synthetic snapshots reverse from the centre);
    # at 0 deg the SW loop reverses in one step, so the snapshots cannot locate it.
    assert rows["gbJs0.8_angle30"]["nucleation_kind"] == "gb"
    assert rows["gbJs0.8_angle0"]["nucleation_kind"] == "unresolved"
    h5 = read_summary(tmp_path / "summary.h5")
    assert [r["point"] for r in h5["rows"]] == [r for r in rows]
    assert h5["rows"][0]["mu0Hc_T"] == pytest.approx(float(rows[h5["rows"][0]["point"]]["mu0Hc_T"]), rel=1e-15)


def test_fit_recovers_the_point_a_measured_curve_was_made_from(sweep_dir, tmp_path):
    """A 'measured' curve written independently in kA/m units, made from the SW loop with
    gb_Js_T = 0.6 (between sweep points 0.4 and 0.8): best point is one of the two
    neighbours and the interpolated optimum lies between them."""
    from magtwin.analysis.summary import analyse_sweep

    d, points, _ = sweep_dir
    field = np.linspace(3.0, -7.0, 201)
    J, h = sw_loop(field, 3.0, K1 * (1 - 0.6 * 0.6), JS)
    Jh = J @ h
    meas = tmp_path / "measured.csv"
    with open(meas, "w") as fh:
        fh.write("H_kA_per_m,M_kA_per_m\n")
        for f_T, j in zip(field, Jh):
            fh.write(f"{f_T / MU0 / 1e3:.6f},{j / MU0 / 1e3:.6f}\n")
    angle0 = {n: p for n, p in points.items() if p["field_angle_deg"] == 0.0}
    s = analyse_sweep({n: d / f"{n}.h5" for n in angle0}, angle0, demag_factor="none", measured_path=meas)
    assert s.fit.best_point in ("gbJs0.4_angle0", "gbJs0.8_angle0")
    opt = s.fit.optimum["gb_Js_T"]
    assert 0.4 < opt["value"] < 0.8, opt


def test_cli_analyse_fit_and_figures(sweep_dir, tmp_path):
    d, points, _ = sweep_dir
    meas = tmp_path / "m.csv"
    field = np.linspace(2.0, -4.0, 61)
    J, h = sw_loop(field, 0.0, K1 * (1 - 0.6 * 0.8), JS)
    meas.write_text("mu0H_T,J_T\n" + "".join(f"{a},{b}\n" for a, b in zip(field, J @ h)))
    curves = [d / f"{n}.h5" for n in points]
    proc = run_cli("analyse", *curves, "--mesh", d / "07_mesh.h5", "--measured", meas,
                   "-o", tmp_path / "s.h5", "--figures", tmp_path / "fig", check=True)
    assert "gbJs0.8_angle0" in proc.stdout
    for name in ("curves", "hc_vs_parameters", "hc_angle", "fit"):
        for ext in ("png", "svg"):
            assert (tmp_path / "fig" / f"{name}.{ext}").stat().st_size > 1000
    proc = run_cli("fit", meas, *curves, "--demag-factor", "none", "-o", tmp_path / "fit.json", check=True)
    fit = json.loads((tmp_path / "fit.json").read_text())
    assert fit["best_point"] == "gbJs0.8_angle0"
    others = sorted(v for k, v in fit["residuals"].items() if k != fit["best_point"])
    # Same SW loop, sampled at 0.1 T instead of 0.025 T: only the jump is misplaced.
    assert fit["best_residual"] < 0.25 < others[0]
    assert "best point: gbJs0.8_angle0" in proc.stdout


def test_cli_bad_measured_curve_one_line_error(sweep_dir, tmp_path):
    d, points, _ = sweep_dir
    bad = tmp_path / "bad.csv"
    bad.write_text("H_furlongs,J_T\n1,1\n0,1\n-1,0.5\n")
    proc = run_cli("analyse", d / "gbJs0_angle0.h5", "--measured", bad, "-o", tmp_path / "s.h5")
    assert_one_line_error(proc, str(bad), "unknown field unit")
    assert not (tmp_path / "s.h5").exists() and not (tmp_path / "s.csv").exists()


def test_nucleation_from_the_precursor_state_before_a_jump():
    """Before the jump the GB region has tilted (m·h = 0.6) while the grains are still
    saturated; after the jump everything is reversed: the site is the GB region (found from
    the precursor), where a reversed-fraction rule could not tell."""
    from magtwin.analysis.nucleation import find_nucleation

    mesh = box_mesh()
    h = np.array([0.0, 0.0, 1.0])
    n = len(mesh.points_nm)
    up = np.tile(h, (n, 1))
    tilted = up.copy()
    gb_nodes = np.unique(mesh.tetrahedra[mesh.region_id == 3])
    tilted[gb_nodes] = [0.8, 0.0, 0.6]
    snaps = {0: up, 5: tilted, 6: -up}
    nuc = find_nucleation(mesh, snaps, np.linspace(1, -1, 7), h)
    assert (nuc["step"], nuc["kind"], nuc["region"], nuc["method"]) == (6, "gb", 3, "precursor")
    nuc = find_nucleation(mesh, {0: up, 6: -up}, np.linspace(1, -1, 7), h)
    assert nuc["kind"] == "unresolved"


def test_cli_no_readable_curve_is_an_error(sweep_dir, tmp_path):
    d, _, _ = sweep_dir
    proc = run_cli("analyse", d / "07_mesh.h5", "-o", tmp_path / "s.h5")
    assert_one_line_error(proc, "07_mesh.h5", "is a 'mesh' artefact")
    assert not (tmp_path / "s.h5").exists()


def test_table_is_reproducible_with_the_documented_function(sweep_dir, tmp_path):
    """summary.py promises: every number = curve_metrics(load_curve(...), N) with N the
    demagnetising tensor of the mesh bounding box (demag_factor auto)."""
    from magtwin.analysis.curve import curve_metrics
    from magtwin.analysis.demag import bounding_box_demag_tensor
    from magtwin.analysis.summary import analyse_sweep, load_curve, read_summary, write_summary

    d, points, _ = sweep_dir
    name = "gbJs0.8_angle30"
    s = analyse_sweep({name: d / f"{name}.h5"}, mesh_path=d / "07_mesh.h5", demag_factor="auto")
    write_summary(s, tmp_path / "s.csv", tmp_path / "s.h5")
    row = read_summary(tmp_path / "s.h5")["rows"][0]
    c = load_curve(d / f"{name}.h5")
    m = curve_metrics(c.field_T, c.J_T, c.direction, c.Js_mean_T,
                      bounding_box_demag_tensor(box_mesh().points_nm)).as_row()
    for key in ("mu0Hc_T", "Jr_T", "mu0Hk_T", "BHmax_kJ_per_m3", "demag_factor"):
        assert row[key] == m[key], key
    assert 0.0 < row["demag_factor"] < 1.0


def test_snakemake_rules_analyse_figures_and_report(tmp_path):
    """The rules of workflow/rules/analysis.smk on the default sweep (artefacts written here),
    with a measured curve: summary table, every figure, and a Snakemake report."""
    import subprocess
    import sys

    import yaml

    from tests.util import ROOT

    cfg = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    cfg["results_dir"] = "results"
    cfg["samples"] = {"s1": {"synthetic": True, "measured_curve": "measured.csv"}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    (tmp_path / "Snakefile").write_text(
        "from magtwin.config import validate_config\n"
        "from magtwin.sweep import expand_sweep\n"
        'configfile: "config.yaml"\n'
        f'config = validate_config(config, "{ROOT}/workflow/schemas/config.schema.yaml")\n'
        'RESULTS = config["results_dir"]\n'
        'SWEEP_POINTS = expand_sweep(config["sweep"])\n'
        f'include: "{ROOT}/workflow/rules/analysis.smk"\n'
        "rule all:\n"
        '    input: expand(ANALYSIS_TARGETS, sample=["s1"])\n')
    d = tmp_path / "results/s1"
    mesh = box_mesh(n=(5, 2, 2))
    write_mesh_artefact(d / "07_mesh.h5", mesh)
    field = np.linspace(8.5, -8.5, 171)
    points = expand_sweep(cfg["sweep"])
    for name, p in points.items():
        J, h = sw_loop(field, p.get("field_angle_deg", 0.0), K1 * (1 - 0.6 * p.get("gb_Js_T", 0.0)), JS)
        write_curve_artefact(d / f"08_simulate/{name}.h5", field, J, h, p, mesh, snapshot_every=10)
    J, h = sw_loop(field, 2.0, K1 * 0.55, JS)
    (tmp_path / "measured.csv").write_text(
        "mu0H_T,J_T\n" + "".join(f"{a},{b}\n" for a, b in zip(field, J @ h)))

    def smk(*args):
        proc = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "1", *args], cwd=tmp_path,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return proc

    smk("-q")
    with open(d / "09_analysis/summary.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["point"] for r in rows] == list(points)
    assert all(r["residual_T"] != "nan" for r in rows)
    for name in ("curves", "hc_vs_parameters", "hc_angle", "fit", "grain_model", "reversal"):
        assert (d / f"09_analysis/figures/{name}.png").stat().st_size > 1000
    from PIL import Image
    img = np.asarray(Image.open(d / "09_analysis/figures/reversal.png").convert("RGB")).astype(int)
    # Reversed GB elements are drawn in gold (#e0a526): a real 3D rendering, not a placeholder.
    assert (np.abs(img - np.array([0xE0, 0xA5, 0x26])).sum(axis=-1) < 60).sum() > 100
    smk("--report", "report.html")
    html = (tmp_path / "report.html").read_text()
    assert "hc_angle.png" in html and "Kondorsky" in html and "summary.csv" in html

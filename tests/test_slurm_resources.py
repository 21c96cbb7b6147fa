"""Cluster resources from the model size (magtwin.hpc) and the profiles (no cluster needed).

Expected values are worked out by hand from the formulas in magtwin/hpc/resources.py's
docstring with the documented defaults (150 000 elements per task, 500 MB + 3000 MB per
million elements per rank with 1.25 imbalance, 10 min + 300 CPU-min per million elements
at 60 % parallel efficiency, 500 MB + 32 B per voxel).
"""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import h5py
import numpy as np
import pytest
import tifffile
import yaml

from magtwin.errors import ConfigError, InputError
from magtwin.hpc import resources as R
from magtwin.hpc.rules import image_resources, solver_resources, solver_threads
from magtwin.io.mesh_artefact import MeshData, write_mesh_artefact
from tests.conftest import ROOT


def test_tasks_scale_with_elements_and_are_clipped():
    assert R.solver_tasks(1_000_000) == 7          # ceil(1e6 / 150e3) = ceil(6.67)
    assert R.solver_tasks(300_000) == 2            # exactly 2 x 150e3
    assert R.solver_tasks(300_001) == 3
    assert R.solver_tasks(0) == 2                  # SLURM plugin: MPI jobs need >= 2 tasks
    assert R.solver_tasks(10**9) == 256            # max_tasks
    assert R.solver_tasks(10**9, max_tasks=64) == 64
    with pytest.raises(ValueError):
        R.solver_tasks(10, elements_per_task=0)


def test_memory_per_rank_and_runtime_by_hand():
    # 500 + 3000 * 1.0 / 7 * 1.25 = 1035.7 MB -> rounded up to 1100
    assert R.solver_mem_mb_per_task(1_000_000, 7) == 1100
    # second attempt doubles the distributed part: 500 + 1071.4 = 1571.4 -> 1600
    assert R.solver_mem_mb_per_task(1_000_000, 7, attempt=2) == 1600
    # 10 + 300 * 1.0 / (7 * 0.6) = 81.4 min -> 82; attempt 2: 162.9 -> 163
    assert R.solver_runtime_min(1_000_000, 7) == 82
    assert R.solver_runtime_min(1_000_000, 7, attempt=2) == 163
    # 1e9 voxels * 32 B = 30517.6 MiB + 500 -> 31100
    assert R.image_mem_mb(10**9) == 31100
    # strong scaling: twice the ranks, half the distributed memory and compute
    m1 = R.solver_mem_mb_per_task(10_000_000, 10, base_mb=0, imbalance=1.0)
    m2 = R.solver_mem_mb_per_task(10_000_000, 20, base_mb=0, imbalance=1.0)
    assert m1 == 3000 and m2 == 1500
    assert R.solver_runtime_min(10_000_000, 20, base_min=0, efficiency=1.0) == 150


def test_config_overrides_and_unknown_keys():
    auto = R.solver_resources_for(1_000_000)
    assert auto == {"tasks": 7, "mem_mb_per_cpu": 1100, "mem_mb": 7700, "runtime": 82}
    fixed = R.solver_resources_for(1_000_000, {"solver_tasks": 4, "solver_runtime_min": 90})
    # 500 + 3000 / 4 * 1.25 = 1437.5 -> 1500 MB per rank
    assert fixed == {"tasks": 4, "mem_mb_per_cpu": 1500, "mem_mb": 6000, "runtime": 90}
    assert R.solver_resources_for(1_000_000, {"solver_mem_mb_per_task": 999})["mem_mb_per_cpu"] == 999
    with pytest.raises(ConfigError, match="hpc.solver_taks"):
        R.settings({"solver_taks": 4})


def _mesh(n_cubes: int) -> MeshData:
    cube = np.array([[x, y, z] for z in (0, 1) for y in (0, 1) for x in (0, 1)], float)
    kuhn = np.array([[0, 1, 3, 7], [0, 3, 2, 7], [0, 2, 6, 7], [0, 6, 4, 7], [0, 4, 5, 7], [0, 5, 1, 7]])
    pts = np.vstack([cube + [i, 0, 0] for i in range(n_cubes)])
    tets = np.vstack([kuhn + 8 * i for i in range(n_cubes)])
    p = pts[tets]
    vol = np.einsum("ij,ij->i", np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]), p[:, 3] - p[:, 0])
    tets[vol < 0] = tets[vol < 0][:, [0, 2, 1, 3]]
    return MeshData(pts, tets, np.ones(len(tets), np.int32), [{"id": 1, "kind": "grain", "grains": [1]}])


def test_snakemake_resource_callables_read_the_mesh(tmp_path):
    path = tmp_path / "07_mesh.h5"
    write_mesh_artefact(path, _mesh(5))                     # 30 tetrahedra
    assert R.mesh_element_count(path) == 30
    hpc = {"solver_elements_per_task": 10, "solver_max_tasks": 8}
    res = solver_resources(hpc, input_key="mesh", launcher="srun")
    inp = SimpleNamespace(mesh=str(path))
    assert res["mpi"] == "srun" and res["cpus_per_task"] == 1
    assert res["tasks"](None, inp, 1) == 3                  # 30 / 10
    assert solver_threads(hpc)(None, inp) == 3
    assert res["mem_mb"](None, inp, 1) == 3 * res["mem_mb_per_cpu"](None, inp, 1)
    assert res["runtime"](None, inp, 2) > res["runtime"](None, inp, 1)
    # runtime 11 min -> a tenth is 66 s before the limit
    assert res["runtime"](None, inp, 1) == 11 and res["slurm_extra"](None, inp, 1) == "--signal=USR1@66"


def test_signal_lead_time():
    assert R.signal_lead_s(5) == 60          # never less than SLURM's 60 s granularity
    assert R.signal_lead_s(20) == 120        # a tenth of 20 min
    assert R.signal_lead_s(24 * 60) == 300   # at most 5 min


def test_bad_mesh_and_stack_inputs_name_the_file(tmp_path):
    with pytest.raises(InputError, match="missing.h5"):
        R.mesh_element_count(tmp_path / "missing.h5")
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["volume"] = np.zeros((2, 3, 4))
    with pytest.raises(InputError, match="other.h5.*not a mesh artefact"):
        R.mesh_element_count(other)
    junk = tmp_path / "junk.tif"
    junk.write_bytes(b"not a tiff at all")
    with pytest.raises(InputError, match="junk.tif"):
        R.stack_voxel_count(junk)


def test_stack_voxel_counts(tmp_path):
    tifffile.imwrite(tmp_path / "s.tif", np.zeros((5, 20, 30), np.uint16))
    assert R.stack_voxel_count(tmp_path / "s.tif") == 3000
    d = tmp_path / "slices"
    d.mkdir()
    for k in range(3):
        tifffile.imwrite(d / f"z{k:03d}.tif", np.zeros((20, 30), np.uint8))
    assert R.stack_voxel_count(d) == 1800
    with h5py.File(tmp_path / "a.h5", "w") as f:
        f["volume"] = np.zeros((4, 10, 10), np.float32)
        f["shifts"] = np.zeros((4, 2))
    assert R.stack_voxel_count(tmp_path / "a.h5") == 400
    mem = image_resources({"image_mem_mb_base": 0, "image_mem_bytes_per_voxel": 2**20 / 400})["mem_mb"]
    assert mem(None, [str(tmp_path / "a.h5")], 1) == 100   # 1 MiB -> rounded up to 100 MB
    assert image_resources({"image_mem_mb": 777})["mem_mb"](None, [str(tmp_path / "a.h5")], 1) == 777


def test_profiles_are_well_formed():
    slurm = yaml.safe_load((ROOT / "profiles/slurm/profile.yaml").read_text())
    local = yaml.safe_load((ROOT / "profiles/local/profile.yaml").read_text())
    assert slurm["executor"] == "slurm" and "executor" not in local
    # `mpi` in default-resources would make every job an MPI job for the plugin.
    assert "mpi" not in slurm["default-resources"] and "mpi" not in local["default-resources"]
    assert slurm["set-resources"]["simulate"]["mpi"].startswith("srun")
    assert local["set-resources"]["simulate"]["mpi"] == "mpiexec"
    assert not (ROOT / "profiles/default").exists() or "executor" not in (
        yaml.safe_load((ROOT / "profiles/default/profile.yaml").read_text()) or {})


def test_slurm_profile_options_exist_in_installed_plugin(tmp_path):
    # A dry run parses every profile option with the installed Snakemake + SLURM plugin: a
    # misspelt or removed option fails here rather than on the user's cluster.
    (tmp_path / "Snakefile").write_text("rule a:\n    output: 'a.txt'\n    shell: 'touch {output}'\n")
    for profile in ("slurm", "local"):
        r = subprocess.run([sys.executable, "-m", "snakemake", "--profile", str(ROOT / "profiles" / profile),
                            "-n", "--slurm-status-command", "squeue"] if profile == "slurm" else
                           [sys.executable, "-m", "snakemake", "--profile", str(ROOT / "profiles" / profile), "-n"],
                           cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, f"profiles/{profile}: {r.stderr[-2000:]}"


def test_schema_defaults_match_library_defaults():
    from magtwin.config import load_yaml, validate_config

    full = load_yaml(ROOT / "workflow/schemas/config.schema.yaml")
    # only our section (the others have their own tests)
    schema = {"type": "object", "properties": {"hpc": full["properties"]["hpc"]}}
    assert validate_config({}, schema)["hpc"] == R.DEFAULTS
    cfg = validate_config({"hpc": load_yaml(ROOT / "config/config.yaml")["hpc"]}, schema)
    assert R.settings(cfg["hpc"]) == R.DEFAULTS
    with pytest.raises(ConfigError, match="hpc.solver_tasks"):
        validate_config({"hpc": {"solver_tasks": 0}}, schema)


def test_cluster_script_explains_why_it_cannot_run_without_root(tmp_path):
    # What a non-root user (and the test fixture's skip reason) sees: one line, no traceback.
    import os
    import shutil

    cmd = ["python3", str(ROOT / "tools/slurm/cluster.py"), "start", "--state-dir", str(tmp_path / "state")]
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            pytest.skip("runuser missing: cannot run the script as another user")
        cmd = ["runuser", "-u", "nobody", "--", *cmd]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd="/")
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    assert r.stderr.strip().count("\n") == 0 and "needs root" in r.stderr, r.stderr
    assert not (tmp_path / "state").exists()

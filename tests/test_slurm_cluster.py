"""Integration tests against a real single-node SLURM cluster (started by tests/conftest.py).

Everything runs through ``snakemake --profile profiles/slurm`` exactly as a user would, plus
the overrides this test cluster needs (no accounting database: status from squeue; short first
status check):

* the tiny workflow in tests/data/slurm_workflow: a serial rule as a job array, an MPI rule
  (petsc4py, 2 ranks via srun, tasks computed from the mesh size) over a 2-point sweep, and a
  point whose solver fails on one rank;
* a profile without partition on a cluster without default partition;
* the real pipeline on a tiny synthetic sample (per-sample stages grouped into one job, 2 MPI
  solver jobs, analysis) with one solver job killed mid-run by SIGTERM and resumed by
  Snakemake's retry from its checkpoint to the same curve as an uninterrupted run.

The ~20 s per dependency level are the plugin's status polling (first check after 1 s, then
every 10 s more while nothing finished) plus Snakemake's start-up inside every job.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from tests.conftest import ROOT, slurm_env

pytestmark = [pytest.mark.slurm, pytest.mark.mpi]

WORKFLOW = ROOT / "tests/data/slurm_workflow"
# This cluster has no slurmdbd: sacct would fail quietly and Snakemake would wait forever.
TEST_OVERRIDES = ["--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "1"]


def run_snakemake(workdir: Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "--profile", str(ROOT / "profiles/slurm"),
           *TEST_OVERRIDES, *args]
    return subprocess.run(cmd, cwd=workdir, env=slurm_env(), capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def workflow_copy(tmp_path):
    dst = tmp_path / "wf"
    shutil.copytree(WORKFLOW, dst)
    return dst


def _job_field(job_id: str, field: str) -> str:
    out = subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True,
                         env=slurm_env()).stdout
    for token in out.split():
        if token.startswith(field + "="):
            return token.split("=", 1)[1]
    raise AssertionError(f"no {field} in scontrol output for job {job_id}:\n{out}")


def test_srun_starts_mpi_ranks_inside_a_batch_job(slurm_cluster, tmp_path):
    # As the executor plugin does inside an MPI rule: all SLURM_* but the job id stripped,
    # then srun -n 2 must still find the cluster and start 2 PMIx-connected ranks.
    script = tmp_path / "job.sh"
    script.write_text(
        "#!/bin/bash\n"
        "for v in $(env | grep '^SLURM_' | cut -d= -f1); do [ \"$v\" = SLURM_JOB_ID ] || unset \"$v\"; done\n"
        f"srun -n 2 {sys.executable} -c 'from mpi4py import MPI; c = MPI.COMM_WORLD; "
        "print(\"rank\", c.rank, \"of\", c.size)'\n")
    out = tmp_path / "job.out"
    r = subprocess.run(["sbatch", "--parsable", "-n", "2", "-t", "2", "-o", str(out), str(script)],
                       capture_output=True, text=True, env=slurm_env(), timeout=60, check=True)
    job = r.stdout.strip().split(";")[0]
    deadline = time.monotonic() + 120
    while _job_field(job, "JobState") in ("PENDING", "RUNNING", "COMPLETING") and time.monotonic() < deadline:
        time.sleep(0.3)
    assert _job_field(job, "JobState") == "COMPLETED", out.read_text() if out.exists() else job
    lines = sorted(ln for ln in out.read_text().splitlines() if ln.startswith("rank"))
    assert lines == ["rank 0 of 2", "rank 1 of 2"], out.read_text()


def test_workflow_with_mpi_rule_sweep_and_a_failing_point(slurm_cluster, workflow_copy):
    # Sweep points p1, p2 (rule `all`) and, in the same run, point `bad` whose solver fails on
    # rank 1. keep-going (profile): the good points finish, the run reports the bad one.
    # The serial per-point rule goes as a SLURM job array (the MPI rule must not: see profile).
    t0 = time.monotonic()
    r = run_snakemake(workflow_copy, "--slurm-array-jobs", "mesh", "--retries", "0",
                      "all", "results/bad/solution.json")
    assert r.returncode != 0, r.stderr[-4000:]
    assert "Submitted array job" in r.stderr
    # The simulate jobs went through SLURM one by one; the local rules not.
    assert r.stderr.count("has been submitted with SLURM jobid") == 3, r.stderr[-4000:]
    summary = (workflow_copy / "results/summary.txt").read_text()
    assert summary
    for point, f in (("p1", 1.0), ("p2", 2.0)):
        # Each array task built its own point's mesh.
        with h5py.File(workflow_copy / f"results/{point}/mesh.h5", "r") as h5:
            assert json.loads(h5.attrs["parameters_json"]) == {"f": f}
        sol = json.loads((workflow_copy / f"results/{point}/solution.json").read_text())
        # Both ranks took part, in one SLURM job, each owning rows of the distributed matrix.
        assert sol["size"] == 2 and sol["petsc_size"] == 2
        assert sorted(x["rank"] for x in sol["ranks"]) == [0, 1]
        jobs = {x["slurm_job"] for x in sol["ranks"]}
        assert len(jobs) == 1 and None not in jobs
        assert all(x["rows"][1] > x["rows"][0] for x in sol["ranks"])
        # -u'' = f, u(0)=u(1)=0: the exact solution f x (1-x)/2 is reproduced by the
        # 3-point scheme to round-off (it is exact for quadratics).
        assert sol["f"] == f and sol["max_error"] < 1e-10
        # The job asked SLURM for the tasks computed from the mesh: 12 elements / 6 per task.
        job = jobs.pop()
        assert _job_field(job, "NumTasks") == "2"
        assert _job_field(job, "CPUs/Task") == "1"

    # The failing point: a clear error naming the rule and its SLURM log, no output, and the
    # whole MPI step brought down at once (MPI_Abort), not left waiting for its 11 min limit.
    bad = re.search(r"submitted with SLURM jobid (\d+) \(log: (\S*rule_simulate/bad/\S+\.log)\)", r.stderr)
    assert bad, r.stderr[-4000:]
    assert "Error in rule simulate" in r.stderr and f"SLURM-job '{bad.group(1)}' failed" in r.stderr
    assert not (workflow_copy / "results/bad/solution.json").exists()
    h, m, sec = (int(x) for x in _job_field(bad.group(1), "RunTime").split(":"))
    assert h * 3600 + m * 60 + sec < 60
    # The failed job's SLURM log is kept and holds the failing rank's message.
    assert "rank 1: simulated solver failure" in Path(bad.group(2)).read_text()
    print(f"workflow under SLURM: {time.monotonic() - t0:.0f} s")


def test_profile_without_partition_on_cluster_without_default(slurm_cluster, workflow_copy):
    env = slurm_env()
    part = "debug"
    subprocess.run(["scontrol", "update", f"PartitionName={part}", "Default=NO"], check=True, env=env)
    try:
        r = run_snakemake(workflow_copy, "--retries", "0", "results/p1/mesh.h5", timeout=120)
    finally:
        subprocess.run(["scontrol", "update", f"PartitionName={part}", "Default=YES"], check=True, env=env)
    assert r.returncode != 0
    # The plugin warns that it found no default partition; sbatch's refusal is shown.
    assert "unable to find a default partition" in r.stderr, r.stderr[-4000:]
    assert "No partition specified or system default partition" in r.stderr, r.stderr[-4000:]
    assert not (workflow_copy / "results/p1/mesh.h5").exists()


# The real pipeline on a tiny synthetic sample. The per-sample stages go as ONE SLURM job (a
# Snakemake group: a chain of short jobs need not wait in the queue one by one), the solver
# inputs of both points as another, each sweep point as its own 2-task MPI job, the analysis
# as one more: three dependency levels.
TINY_PIPELINE = {
    "synth": {"shape_px": [6, 64, 64], "grain_diameter_nm": 150.0, "grain_thickness_nm": 60.0},
    "sweep": {"mode": "grid", "gb_Js_T": [0.0, 0.8], "field_angle_deg": [0.0], "extra_grids": []},
    # infrastructure, not physics (tested elsewhere): a coarse mesh without exports, no
    # open-boundary demag, coarse field steps
    # 64 px at 5 nm hold ~55 nm grains: at model.scale 0.1 they are 5.5 nm across, room for a
    # 2 nm GB shell (at the default 0.075 most are too thin and the model stage refuses them)
    "model": {"scale": 0.1},
    "mesh": {"gb_size_nm": 3.0, "tj_size_nm": 3.0, "grain_size_nm": 30.0, "sliver_target_deg": 0.0,
             "export_xdmf": False, "export_vtu": False},
    "simulate": {"field_start_T": 8.0, "field_stop_T": -8.0, "field_step_T": 1.0, "refine_tol_T": 0.25,
                 "demag": False},
}
PREP_RULES = ("synth", "ingest", "denoise", "align", "segment", "grains", "model", "mesh")


def _simulate_job_of(point: str) -> str | None:
    """SLURM id of the running `simulate` job of sweep point ``point`` (from the plugin's
    job comment ``rule_simulate_wildcards_<sample>_<point>``)."""
    r = subprocess.run(["squeue", "-h", "-t", "R", "-o", "%i|%k"], capture_output=True, text=True, env=slurm_env())
    for line in r.stdout.splitlines():
        job, _, comment = line.partition("|")
        if comment.startswith("rule_simulate_") and comment.endswith("_" + point):
            return job
    return None


def test_real_pipeline_through_slurm_profile_with_a_killed_and_resumed_solver_job(slurm_cluster, tmp_path):
    import yaml

    cfg = dict(TINY_PIPELINE, results_dir=str(tmp_path / "results"))
    cfg_file = tmp_path / "tiny.yaml"
    cfg_file.write_text(yaml.safe_dump(cfg))
    res = tmp_path / "results/synthetic"
    target = res / "09_analysis/summary.csv"
    groups = [f"{r}=prep" for r in PREP_RULES] + ["simulate_inputs=inputs", "analyse=post", "figures=post"]
    cmd = [sys.executable, "-m", "snakemake", "--profile", str(ROOT / "profiles/slurm"), *TEST_OVERRIDES,
           "--configfile", str(cfg_file), "--groups", *groups, "--group-components", "inputs=100",
           "--retries", "1", str(target)]
    victim = "gbJs0.8_angle0"
    log = tmp_path / "results" / f"logs/synthetic/08_simulate_{victim}.log"
    t_start = time.time()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=slurm_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    killed = None
    try:
        # Once the victim's solver has accepted a few field points: SIGTERM to its job's steps,
        # as SLURM does at the time limit or on preemption. Snakemake's retry must resume it.
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and proc.poll() is None:
            fresh = log.exists() and log.stat().st_mtime > t_start
            if fresh and log.read_text().count(" field ") >= 3:
                killed = _simulate_job_of(victim)
                if killed:
                    subprocess.run(["scancel", "--signal=TERM", killed], check=True, env=slurm_env())
                    break
            time.sleep(0.1)
        out, _ = proc.communicate(timeout=900)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out[-4000:]
    assert killed, "the solver job of the victim point was never seen running"
    assert target.exists()

    # Both sweep points ran as MPI jobs of 2 tasks through the profile's srun; the victim twice:
    # stopped by the signal (checkpoint, no result), then resubmitted and resumed - not
    # restarted from zero.
    jobs = re.findall(r"submitted with SLURM jobid (\d+) \(log: \S*rule_simulate/", out)
    assert len(jobs) == 3, out[-4000:]
    assert f"SLURM-job '{killed}' failed" in out, out[-4000:]
    for job in jobs:
        assert _job_field(job, "NumTasks") == "2"
    for point in ("gbJs0_angle0", victim):
        assert (res / f"08_simulate/{point}.h5").exists()
        assert not (res / f"08_simulate/{point}.h5.ckpt").exists()
        # the solver itself saw 2 MPI ranks
        assert ", 2 ranks;" in (tmp_path / "results" / f"logs/synthetic/08_simulate_{point}.log").read_text()
    text = log.read_text()        # Snakemake starts the retry with a fresh log
    resumed = re.search(r"resumed from \S*\.ckpt at point (\d+)", text)
    assert resumed and int(resumed.group(1)) >= 3, text[-3000:]

    # Same curve as an uninterrupted run of the same command on 2 ranks.
    pt = res / f"08_simulate/{victim}"
    ref = subprocess.run(["mpiexec", "-n", "2", sys.executable, "-m", "magtwin.cli.main", "simulate",
                          "--mesh", str(res / "07_mesh.h5"), "--materials", f"{pt}.materials.yaml",
                          "--settings", f"{pt}.settings.yaml", "--out", str(tmp_path / "reference.h5")],
                         env=slurm_env(), capture_output=True, text=True, timeout=600)
    assert ref.returncode == 0, ref.stderr[-3000:]
    with h5py.File(tmp_path / "reference.h5") as a, h5py.File(f"{pt}.h5") as b:
        np.testing.assert_allclose(b["curve/field_T"][...], a["curve/field_T"][...], atol=1e-12)
        # Equal to solver tolerance: the resumed minimiser restarts its Barzilai-Borwein step
        # history, so it stops at another point inside the torque tolerance (measured
        # differences up to 3e-4 T of J ~ 1.1 T); the field steps and jumps are identical.
        np.testing.assert_allclose(b["curve/J_T"][...], a["curve/J_T"][...], atol=1e-3)
        np.testing.assert_allclose(b["curve/jumps_T"][...], a["curve/jumps_T"][...], atol=1e-12)
        assert b["curve/converged"][...].all()

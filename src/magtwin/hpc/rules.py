"""Snakemake ``resources:`` for magtwin's rules, computed when the job is ready to run.

Each function returns a dict of callables that Snakemake evaluates once the rule's input
exists (until then the values are "to be determined"), so the solver's tasks, memory and
runtime follow the element count of the mesh that was actually built::

    from magtwin.hpc.rules import solver_resources, image_resources

    rule simulate:
        input: mesh=f"{RESULTS}/{{sample}}/07_mesh.h5"
        threads: solver_threads(config["hpc"])
        resources: **solver_resources(config["hpc"], input_key="mesh")
        shell: "{resources.mpi} -n {resources.tasks} magtwin simulate ..."

``mpi`` is the launcher (``mpiexec`` here; the SLURM profile sets ``srun`` through
``set-resources``): it must be a rule resource because a ``--set-resources`` on the command
line replaces the profile's whole block, and the SLURM executor plugin treats a job as MPI job
only when the rule has an ``mpi`` resource.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Mapping

from magtwin.hpc.resources import (
    image_mem_mb,
    mesh_element_count,
    settings,
    signal_lead_s,
    solver_resources_for,
    stack_voxel_count,
)


def _input_path(input: Any, key: str | int) -> str:
    return str(input[key]) if isinstance(key, int) else str(getattr(input, key))


def solver_resources(hpc: Mapping | None, input_key: str | int = "mesh",
                     launcher: str = "mpiexec") -> dict[str, Any]:
    """Resources of the solver rule: ``mpi``, ``tasks``, ``cpus_per_task`` (1: one core per
    rank), ``mem_mb_per_cpu``, ``mem_mb`` (total, for the local scheduler), ``runtime`` (min)
    and ``slurm_extra`` (``--signal=USR1@<s>`` before the limit), from the element count of the
    mesh artefact ``input[input_key]``."""
    s = settings(hpc)

    def pick(name: str) -> Callable:
        def f(wildcards, input, attempt):
            return solver_resources_for(mesh_element_count(_input_path(input, input_key)), s, attempt)[name]
        f.__name__ = f"solver_{name}"
        return f

    def slurm_extra(wildcards, input, attempt):
        # USR1 to every rank (not the batch shell) shortly before the time limit: the solver
        # writes its checkpoint and stops; the retry resumes from it.
        runtime = solver_resources_for(mesh_element_count(_input_path(input, input_key)), s, attempt)["runtime"]
        return f"--signal=USR1@{signal_lead_s(runtime)}"

    return {"mpi": launcher, "tasks": pick("tasks"), "cpus_per_task": 1,
            "mem_mb_per_cpu": pick("mem_mb_per_cpu"), "mem_mb": pick("mem_mb"), "runtime": pick("runtime"),
            "slurm_extra": slurm_extra}


def solver_threads(hpc: Mapping | None, input_key: str | int = "mesh") -> Callable:
    """``threads:`` of the solver rule = its MPI tasks, so that a local run reserves one core
    per rank (under SLURM, ``cpus_per_task`` = 1 decides instead)."""
    s = settings(hpc)

    def threads(wildcards, input):
        return solver_resources_for(mesh_element_count(_input_path(input, input_key)), s)["tasks"]

    return threads


def image_resources(hpc: Mapping | None, input_key: str | int = 0) -> dict[str, Any]:
    """Resources of an image stage (ingest, denoise, align, segment, grains): ``mem_mb`` from
    the voxel count of the stack ``input[input_key]`` (or config ``hpc.image_mem_mb``)."""
    s = settings(hpc)

    def mem_mb(wildcards, input, attempt):
        if s["image_mem_mb"]:
            return int(s["image_mem_mb"])
        path = _input_path(input, input_key)
        # A job grouped with its upstream stages is sized before that input exists: the
        # stages stream slice by slice, so the base figure is the right order there.
        voxels = stack_voxel_count(path) if os.path.exists(path) else 0
        return image_mem_mb(voxels, s["image_mem_bytes_per_voxel"], s["image_mem_mb_base"], attempt)

    return {"mem_mb": mem_mb}

"""Cluster resources (MPI tasks, memory, wall time) computed from the size of the model.

Pure functions of numbers at the core; :func:`mesh_element_count` and :func:`stack_voxel_count`
read only the header of an artefact or stack. The figures come from the ``hpc`` section of
the configuration (defaults in :data:`DEFAULTS`, documented in
``workflow/schemas/config.schema.yaml``); any of ``solver_tasks``, ``solver_mem_mb_per_task``,
``solver_runtime_min`` and ``image_mem_mb`` set there replaces the computed value.

Solver model (M tetrahedra, n MPI ranks, a = Snakemake's attempt number, 1 on first submission):

    n        = clip(ceil(M / elements_per_task), min_tasks, max_tasks)
    mem/rank = base_mb + mb_per_million * (M / 1e6) / n * imbalance          [MB]
    runtime  = (base_min + cpu_min_per_million * (M / 1e6) / (n * efficiency)) * a   [min]

The memory per million elements covers the P1 exchange/anisotropy operators (3 components),
the scalar-potential Poisson matrix of magnet plus air shell and its algebraic-multigrid
hierarchy, and the minimiser's vectors. Defaults from the solver benchmark
(``benchmarks/micromag_scaling.py``, ``benchmarks/out/micromag_scaling.json``; cubes with air
shell, 0.1-1.05 M elements, 1-2 ranks, on a loaded 2-core machine): peak memory at most
1900 MB per million elements including the per-process base (1.18 GB at 1.05 M elements on
one rank), 1.16 s per minimiser iteration per million elements on one rank. A curve of ~45
field points x ~100 iterations is ~4500 iterations = ~90 CPU-min per million elements. The
defaults keep a margin over these (3000 MB and 300 CPU-min per million elements): a job
that still runs out of time resumes from its checkpoint on the retry, with more time.

Image stages hold a few float copies of the stack:

    mem = base_mb + bytes_per_voxel * voxels / 2**20 * a                       [MB]
"""

from __future__ import annotations

import math
import os
from functools import lru_cache
from pathlib import Path
from typing import Mapping

from magtwin.errors import ConfigError, InputError

#: Defaults of the ``hpc`` configuration section (see the schema for each key's meaning).
DEFAULTS: dict[str, float | int | None] = {
    "solver_tasks": None,
    "solver_elements_per_task": 150_000,
    "solver_min_tasks": 2,
    "solver_max_tasks": 256,
    "solver_mem_mb_per_task": None,
    "solver_mem_mb_base_per_task": 500,
    "solver_mem_mb_per_million_elements": 3000,
    "solver_mem_imbalance": 1.25,
    "solver_runtime_min": None,
    "solver_runtime_min_base": 10,
    "solver_cpu_min_per_million_elements": 300,
    "solver_parallel_efficiency": 0.6,
    "image_mem_mb": None,
    "image_mem_mb_base": 500,
    "image_mem_bytes_per_voxel": 32,
}


def settings(hpc: Mapping | None) -> dict:
    """``DEFAULTS`` updated with the (validated) config section ``hpc``; unknown keys refused."""
    out = dict(DEFAULTS)
    for key, value in (hpc or {}).items():
        if key not in DEFAULTS:
            raise ConfigError(f"hpc.{key}: unknown key (typo?)", "config")
        out[key] = value
    return out


def solver_tasks(n_elements: int, elements_per_task: float = DEFAULTS["solver_elements_per_task"],
                 min_tasks: int = DEFAULTS["solver_min_tasks"], max_tasks: int = DEFAULTS["solver_max_tasks"]) -> int:
    """MPI ranks for a mesh of ``n_elements`` tetrahedra: about ``elements_per_task`` each,
    clipped to [``min_tasks``, ``max_tasks``]. (The SLURM executor plugin refuses MPI jobs
    with one task, hence ``min_tasks`` = 2 by default.)"""
    if n_elements < 0 or elements_per_task <= 0 or min_tasks < 1 or max_tasks < min_tasks:
        raise ValueError("need n_elements >= 0, elements_per_task > 0, 1 <= min_tasks <= max_tasks")
    return int(min(max(math.ceil(n_elements / elements_per_task), min_tasks), max_tasks))


def solver_mem_mb_per_task(n_elements: int, tasks: int,
                           base_mb: float = DEFAULTS["solver_mem_mb_base_per_task"],
                           mb_per_million: float = DEFAULTS["solver_mem_mb_per_million_elements"],
                           imbalance: float = DEFAULTS["solver_mem_imbalance"], attempt: int = 1) -> int:
    """Memory per MPI rank in MB (``--mem-per-cpu`` with one CPU per rank), rounded up to
    100 MB. A retry (``attempt`` > 1) asks for ``attempt`` times the distributed part."""
    if tasks < 1 or n_elements < 0:
        raise ValueError("need tasks >= 1 and n_elements >= 0")
    mb = base_mb + mb_per_million * (n_elements / 1e6) / tasks * imbalance * attempt
    return int(math.ceil(mb / 100.0) * 100)


def solver_runtime_min(n_elements: int, tasks: int,
                       base_min: float = DEFAULTS["solver_runtime_min_base"],
                       cpu_min_per_million: float = DEFAULTS["solver_cpu_min_per_million_elements"],
                       efficiency: float = DEFAULTS["solver_parallel_efficiency"], attempt: int = 1) -> int:
    """Wall time in minutes of one demagnetisation curve on ``tasks`` ranks, times ``attempt``
    (a job killed at its limit resumes from its checkpoint, with more time)."""
    if tasks < 1 or n_elements < 0 or not 0 < efficiency <= 1:
        raise ValueError("need tasks >= 1, n_elements >= 0 and 0 < efficiency <= 1")
    minutes = base_min + cpu_min_per_million * (n_elements / 1e6) / (tasks * efficiency)
    return int(math.ceil(minutes * attempt))


def signal_lead_s(runtime_min: float) -> int:
    """Seconds before the time limit at which SLURM should warn the solver (``--signal``) so it
    can write its checkpoint: a tenth of the run, between 60 s and 300 s. (SLURM may send the
    signal up to 60 s early.)"""
    return int(min(max(runtime_min * 60 / 10, 60), 300))


def image_mem_mb(n_voxels: int, bytes_per_voxel: float = DEFAULTS["image_mem_bytes_per_voxel"],
                 base_mb: float = DEFAULTS["image_mem_mb_base"], attempt: int = 1) -> int:
    """Memory in MB of an image stage working on a stack of ``n_voxels`` voxels."""
    if n_voxels < 0:
        raise ValueError("need n_voxels >= 0")
    mb = base_mb + bytes_per_voxel * n_voxels / 2**20 * attempt
    return int(math.ceil(mb / 100.0) * 100)


def solver_resources_for(n_elements: int, hpc: Mapping | None = None, attempt: int = 1) -> dict[str, int]:
    """``{"tasks", "mem_mb_per_cpu", "mem_mb", "runtime"}`` for the solver on a mesh of
    ``n_elements`` tetrahedra, with the overrides of config section ``hpc`` applied."""
    s = settings(hpc)
    tasks = s["solver_tasks"] or solver_tasks(n_elements, s["solver_elements_per_task"],
                                              s["solver_min_tasks"], s["solver_max_tasks"])
    per_task = s["solver_mem_mb_per_task"] or solver_mem_mb_per_task(
        n_elements, tasks, s["solver_mem_mb_base_per_task"], s["solver_mem_mb_per_million_elements"],
        s["solver_mem_imbalance"], attempt)
    runtime = s["solver_runtime_min"] or solver_runtime_min(
        n_elements, tasks, s["solver_runtime_min_base"], s["solver_cpu_min_per_million_elements"],
        s["solver_parallel_efficiency"], attempt)
    return {"tasks": int(tasks), "mem_mb_per_cpu": int(per_task), "mem_mb": int(per_task * tasks),
            "runtime": int(runtime)}


# --- reading sizes (headers only) ---------------------------------------------------------
@lru_cache(maxsize=64)
def _element_count_cached(path: str, mtime_ns: int, size: int) -> int:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            ds = f.get("mesh/tetrahedra")
            if ds is None or len(ds.shape) != 2:
                raise InputError("no dataset mesh/tetrahedra (M, 4): not a mesh artefact", path)
            return int(ds.shape[0])
    except OSError as exc:
        raise InputError(f"cannot read as HDF5 ({exc})", path) from None


def mesh_element_count(path: str | os.PathLike) -> int:
    """Number of tetrahedra in a mesh artefact (``/mesh/tetrahedra``), from its header."""
    p = Path(path)
    if not p.is_file():
        raise InputError("mesh artefact does not exist", p)
    st = p.stat()
    return _element_count_cached(str(p), st.st_mtime_ns, st.st_size)


def stack_voxel_count(path: str | os.PathLike) -> int:
    """Voxels of an image stack: an HDF5 artefact (largest 3-D dataset), a (multi-page) TIFF,
    or a folder of TIFFs. Reads headers only."""
    p = Path(path)
    if not p.exists():
        raise InputError("image stack does not exist", p)
    if p.suffix.lower() in (".h5", ".hdf5"):
        import h5py

        sizes: list[int] = []
        try:
            with h5py.File(p, "r") as f:
                f.visititems(lambda _n, o: sizes.append(int(math.prod(o.shape)))
                             if isinstance(o, h5py.Dataset) and len(o.shape) == 3 else None)
        except OSError as exc:
            raise InputError(f"cannot read as HDF5 ({exc})", p) from None
        return max(sizes, default=0)
    if p.is_dir() or p.suffix.lower() in (".tif", ".tiff"):
        from magtwin.io.tiff import open_stack  # the ingest reader: same checks, same errors

        with open_stack(p) as stack:
            return int(math.prod(stack.shape))
    # Unknown format: assume 16-bit voxels.
    return p.stat().st_size // 2

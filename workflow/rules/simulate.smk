# Stage 8: MPI-parallel FEM micromagnetics, one job per sweep point:
#   07_mesh.h5 + per-point inputs -> 08_simulate/{point}.h5 (curve + snapshots, .xdmf beside it)

import sys

from magtwin.errors import MagtwinError as _SimulateError
from magtwin.sweep import expand_sweep

if "SWEEP_POINTS" not in globals():
    try:
        SWEEP_POINTS = expand_sweep(config["sweep"])
    except _SimulateError as exc:
        print(f"magtwin: invalid configuration: {exc}", file=sys.stderr)
        raise SystemExit(1)


rule simulate_inputs:
    message: "solver inputs of sweep point {wildcards.point} ({wildcards.sample})"
    output:
        materials=f"{RESULTS}/{{sample}}/08_simulate/{{point}}.materials.yaml",
        settings=f"{RESULTS}/{{sample}}/08_simulate/{{point}}.settings.yaml",
    params:
        materials=config["materials"],
        simulate=config["simulate"],
        point=lambda w: {k: float(v) for k, v in SWEEP_POINTS[w.point].items()},
    log:
        f"{RESULTS}/logs/{{sample}}/08_simulate_inputs_{{point}}.log",
    conda:
        "../../envs/base.yaml"
    script:
        "../../scripts/simulate_inputs.py"


rule simulate:
    message: "demagnetisation curve of {wildcards.sample}, point {wildcards.point} ({resources.tasks} MPI tasks)"
    input:
        mesh=f"{RESULTS}/{{sample}}/07_mesh.h5",
        materials=rules.simulate_inputs.output.materials,
        settings=rules.simulate_inputs.output.settings,
    output:
        f"{RESULTS}/{{sample}}/08_simulate/{{point}}.h5",
    params:
        simulate=config["simulate"],
    resources:
        mpi=config["simulate"]["mpi_launcher"],
        tasks=config["simulate"]["mpi_tasks"],
    log:
        f"{RESULTS}/logs/{{sample}}/08_simulate_{{point}}.log",
    conda:
        "../../envs/solver.yaml"
    shell:
        "{resources.mpi} -n {resources.tasks} magtwin simulate --mesh {input.mesh}"
        " --materials {input.materials} --settings {input.settings} --out {output} > {log} 2>&1"

# Stage 8: MPI-parallel FEM micromagnetics, one job per sweep point:
#   07_mesh.h5 + per-point inputs -> 08_simulate/{point}.h5 (curve + snapshots, .xdmf beside it)

from magtwin.hpc.rules import solver_resources, solver_threads

# (SWEEP_POINTS comes from common.smk.)


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
    # MPI tasks, memory and runtime from the mesh's element count (config section hpc);
    # threads = tasks so that a local run reserves one core per rank.
    threads: solver_threads(config["hpc"])
    resources:
        **solver_resources(config["hpc"], input_key="mesh", launcher=config["simulate"]["mpi_launcher"]),
    log:
        f"{RESULTS}/logs/{{sample}}/08_simulate_{{point}}.log",
    conda:
        "../../envs/solver.yaml"
    shell:
        "{resources.mpi} -n {resources.tasks} magtwin simulate --mesh {input.mesh}"
        " --materials {input.materials} --settings {input.settings} --out {output} > {log} 2>&1"

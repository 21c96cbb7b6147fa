# Checkpoint/resume under SLURM (tests/test_slurm_cluster.py::test_solver_killed_mid_run_resumes):
# the real solver (`magtwin simulate`) as the MPI rule `simulate` on 2 tasks. The test writes
# mesh.h5, mat.yaml and settings.yaml into the working directory, sends SIGTERM to the running
# job; the ranks write a checkpoint and stop, Snakemake's retry resumes from it.
# A 4 nm cube that switches coherently (Stoner-Wohlfarth) near -4.1 T; fine field steps so the
# run is long enough (~140 points) to be interrupted in the middle. The test reads FIELD.
FIELD = "--field-start 1 --field-stop -6 --field-step 0.05 --angle 20 --no-demag --refine-tol 0.01 --torque-tol 1e-5"


rule simulate:
    input:
        mesh="mesh.h5",
        materials="mat.yaml",
        settings="settings.yaml",
    output:
        "results/{run}.h5",
    log:
        "logs/{run}.log",
    resources:
        mpi="mpiexec",
        tasks=2,
        cpus_per_task=1,
        mem_mb=1000,
        runtime=10,
    shell:
        # append: the log keeps both attempts (interrupted, resumed)
        "{resources.mpi} -n {resources.tasks} magtwin simulate --mesh {input.mesh}"
        " --materials {input.materials} --settings {input.settings} " + FIELD + " --out {output} 2>> {log}"

"""-u'' = f on (0, 1), u(0) = u(1) = 0, finite differences with PETSc CG on all MPI ranks.

Exact solution u = f x (1 - x) / 2; the second-order scheme is exact for a quadratic. Rank 0
writes JSON with the world size, every rank's (rank, host, owned rows) and the max error.
`--fail-rank R`: rank R fails before solving (a solver error on one rank) and, like any MPI
program should, aborts the whole run (MPI_Abort) instead of leaving the others waiting.
"""
import argparse
import json
import os
import socket
import sys

from mpi4py import MPI
from petsc4py import PETSc

ap = argparse.ArgumentParser()
ap.add_argument("--f", type=float, required=True)
ap.add_argument("--out", required=True)
ap.add_argument("--n", type=int, default=64)
ap.add_argument("--fail-rank", type=int, default=-1)
args = ap.parse_args()

comm = MPI.COMM_WORLD
if comm.rank == args.fail_rank:
    print(f"rank {comm.rank}: simulated solver failure", file=sys.stderr, flush=True)
    comm.Abort(3)

n, h = args.n, 1.0 / (args.n + 1)
A = PETSc.Mat().createAIJ([n, n], nnz=3, comm=PETSc.COMM_WORLD)
lo, hi = A.getOwnershipRange()
for i in range(lo, hi):
    A[i, i] = 2.0 / h**2
    if i > 0:
        A[i, i - 1] = -1.0 / h**2
    if i < n - 1:
        A[i, i + 1] = -1.0 / h**2
A.assemble()
b = A.createVecLeft()
b.set(args.f)
u = A.createVecRight()
ksp = PETSc.KSP().create(PETSc.COMM_WORLD)
ksp.setOperators(A)
ksp.setType("cg")
ksp.getPC().setType("jacobi")
ksp.setTolerances(rtol=1e-12)
ksp.solve(b, u)
exact = u.duplicate()
for i in range(lo, hi):
    x = (i + 1) * h
    exact[i] = args.f * x * (1 - x) / 2
exact.assemble()
exact.axpy(-1.0, u)
err = exact.norm(PETSc.NormType.INFINITY)
ranks = comm.gather({"rank": comm.rank, "host": socket.gethostname(), "rows": [lo, hi],
                     "slurm_job": os.environ.get("SLURM_JOB_ID")}, root=0)
if comm.rank == 0:
    with open(args.out + ".tmp", "w") as fh:
        json.dump({"size": comm.size, "petsc_size": PETSc.COMM_WORLD.size, "ranks": ranks,
                   "max_error": err, "iterations": ksp.getIterationNumber(), "f": args.f}, fh)
    os.replace(args.out + ".tmp", args.out)

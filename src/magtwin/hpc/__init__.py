"""Cluster execution: resources (MPI tasks, memory, wall time) scaled from the model size."""

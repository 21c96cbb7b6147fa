"""Element matrices -> distributed PETSc AIJ matrices, one row block per rank.

Each rank passes only the elements that touch a row it owns (a one-element overlap at the
partition boundary); entries of rows owned by other ranks are dropped locally, so no
off-process values are communicated and the CSR arrays give exact preallocation.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from petsc4py import PETSc


def local_csr(rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, row_range: tuple[int, int],
              n_cols: int) -> sp.csr_matrix:
    """CSR (owned rows x all columns) of the COO triplets whose row is in ``row_range``.

    Duplicates are summed (element assembly); ``rows``/``cols`` are global indices.
    """
    lo, hi = row_range
    keep = (rows >= lo) & (rows < hi)
    a = sp.coo_matrix((vals[keep], (rows[keep] - lo, cols[keep])), shape=(hi - lo, n_cols)).tocsr()
    a.sum_duplicates()
    a.sort_indices()
    return a


def element_triplets(row_nodes: np.ndarray, col_nodes: np.ndarray, ke: np.ndarray):
    """COO triplets of element matrices ``ke`` (M, a, b) on nodes ``row_nodes`` (M, a),
    ``col_nodes`` (M, b)."""
    a, b = ke.shape[1], ke.shape[2]
    rows = np.repeat(row_nodes, b, axis=1).ravel()
    cols = np.tile(col_nodes, (1, a)).ravel()
    return rows, cols, ke.ravel()


def assemble_chunked(n_elements: int, element_block, row_range: tuple[int, int], n_cols: int,
                     chunk: int = 20000) -> sp.csr_matrix:
    """Owned-row CSR of element contributions, built ``chunk`` elements at a time so the COO
    temporaries stay small (they are ~50x the size of the element list otherwise).

    ``element_block(sl) -> (row_nodes, col_nodes, ke)`` gives the element matrices of the
    elements ``sl`` (a slice); negative node indices are dropped (e.g. Dirichlet nodes).
    """
    lo, hi = row_range
    acc = sp.csr_matrix((hi - lo, n_cols))
    for start in range(0, n_elements, chunk):
        rn, cn, ke = element_block(slice(start, min(start + chunk, n_elements)))
        rows, cols, vals = element_triplets(rn, cn, ke)
        ok = (rows >= 0) & (cols >= 0)
        acc = acc + local_csr(rows[ok], cols[ok], vals[ok], row_range, n_cols)
    acc.sum_duplicates()
    acc.sort_indices()
    return acc


def petsc_aij(csr: sp.csr_matrix, row_sizes: tuple[int, int], col_sizes: tuple[int, int], comm,
              bsize: int | None = None) -> PETSc.Mat:
    """A distributed PETSc AIJ matrix from this rank's row block ``csr`` (global columns).

    ``row_sizes``/``col_sizes`` are (local, global) sizes.
    """
    indptr = csr.indptr.astype(PETSc.IntType)
    indices = csr.indices.astype(PETSc.IntType)
    data = csr.data.astype(PETSc.ScalarType)
    mat = PETSc.Mat().create(comm=comm)
    mat.setSizes((row_sizes, col_sizes), bsize=bsize)
    mat.setType(PETSc.Mat.Type.AIJ)
    mat.setPreallocationCSR((indptr, indices, data))
    mat.assemble()
    return mat


def interleave3(csr: sp.csr_matrix) -> sp.csr_matrix:
    """``kron(csr, I3)``: a scalar nodal operator acting on each component of a 3-vector
    field stored interleaved (x0, y0, z0, x1, ...)."""
    return sp.kron(csr, sp.identity(3, format="csr"), format="csr")

"""Quality tetrahedral mesh of a multi-region PLC with TetGen (the ``tetgen`` package).

Each region is seeded with interior points (``add_region``) carrying its id and a maximum
element volume; TetGen's switches ``p`` (PLC), ``q<ratio>/<min dihedral>`` (quality), ``a``
(per-region volume bounds, i.e. ``varvolume``) and ``A`` (region attributes) give one region
id per element. Element volume bound for a target edge length ``h`` (nm): the volume of the
regular tetrahedron, ``h³ / (6 sqrt 2)``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys

import numpy as np

from magtwin.errors import InputError
from magtwin.io.mesh_artefact import tetrahedron_volumes

LOG = logging.getLogger(__name__)


@contextlib.contextmanager
def _stdout_to_stderr():
    """TetGen's C code prints progress to stdout even with ``Q``; keep stdout (the CLI's JSON
    result) clean by pointing file descriptor 1 at stderr meanwhile."""
    try:
        sys.stdout.flush()
        saved = os.dup(1)
    except (OSError, ValueError):
        yield
        return
    try:
        os.dup2(2, 1)
        yield
    finally:
        try:
            libc_flush()
        finally:
            os.dup2(saved, 1)
            os.close(saved)


def libc_flush() -> None:
    try:
        import ctypes

        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError):
        pass


def _isolated(fn, source, timeout_s: float | None = None):
    """Run ``fn`` (returning arrays) in a forked child process: TetGen aborts the whole
    process (``malloc(): corrupted ...``) on some degenerate inputs, which must become a
    clear error (and a retry), not a crash of the stage."""
    import multiprocessing as mp
    import tempfile

    try:
        ctx = mp.get_context("fork")
    except ValueError:  # no fork (not Linux): run in-process
        with _stdout_to_stderr():
            try:
                return [np.asarray(a) for a in fn()]
            except RuntimeError as exc:
                raise InputError(f"TetGen could not mesh the model ({exc})", source) from None
    with tempfile.TemporaryDirectory(prefix="magtwin-tetgen-") as tmp:
        out = os.path.join(tmp, "result.npz")
        err = os.path.join(tmp, "error.txt")

        def child():
            try:
                with _stdout_to_stderr():
                    arrays = fn()
                np.savez(out, *[np.asarray(a) for a in arrays])
            except Exception as exc:  # reported to the parent through the file
                with open(err, "w") as fh:
                    fh.write(str(exc) or type(exc).__name__)
                os._exit(1)
            os._exit(0)

        proc = ctx.Process(target=child)
        proc.start()
        proc.join(timeout_s)
        if proc.is_alive():  # TetGen's refinement can loop next to tiny features
            proc.kill()
            proc.join()
            raise InputError(f"TetGen did not finish within {timeout_s:.0f} s", source)
        if proc.exitcode != 0:
            why = open(err).read() if os.path.exists(err) else f"TetGen crashed (exit code {proc.exitcode})"
            raise InputError(f"TetGen could not mesh the model ({why})", source)
        with np.load(out) as z:
            return [z[f"arr_{k}"] for k in range(len(z.files))]


def regular_tet_volume(edge_nm: float) -> float:
    """Volume (nm³) of the regular tetrahedron with edge ``edge_nm``."""
    return float(edge_nm) ** 3 / (6.0 * np.sqrt(2.0))


def tetrahedralize(
    points: np.ndarray,
    triangles: np.ndarray,
    seeds: np.ndarray,
    seed_region: np.ndarray,
    seed_max_volume: np.ndarray,
    radius_edge_ratio: float = 2.0,
    min_dihedral_deg: float = 10.0,
    source=None,
    keep_surface: bool = False,
    opt_level: int = 2,
    opt_max_dihedral_deg: float = 165.0,
    max_steiner: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mesh the PLC; return ``(nodes (N,3), tets (M,4) positively oriented, region (M,))``.

    Parameters
    ----------
    points, triangles : the triangulated PLC (internal facets allowed)
    seeds : (R, 3) points inside the regions; seed_region : (R,) int region ids (> 0);
    seed_max_volume : (R,) nm³ volume bound for elements of that region
    radius_edge_ratio, min_dihedral_deg : TetGen ``-q`` quality bounds
    keep_surface : TetGen ``-Y``: do not split the given surface triangles (more robust for
        thin features, lower quality next to them)
    opt_level, opt_max_dihedral_deg : TetGen ``-O<level>/7`` mesh optimisation (flips,
        smoothing, vertex insertion/deletion) of elements with a dihedral angle above
        ``-o/<deg>``
    max_steiner : TetGen ``-S``: at most this many added points (bounds the refinement
        around features far below the element size)
    """
    import tetgen

    tg = tetgen.TetGen(np.asarray(points, np.float64), np.asarray(triangles, np.int32))
    for p, r, v in zip(seeds, seed_region, seed_max_volume):
        tg.add_region(int(r), [float(c) for c in p], float(v))
    quality = f"q{radius_edge_ratio:g}" + (f"/{min_dihedral_deg:g}" if min_dihedral_deg > 0 else "")
    switches = (f"p{quality}aAO{int(opt_level)}/7o/{opt_max_dihedral_deg:g}" + ("Y" if keep_surface else "")
                + (f"S{int(max_steiner)}" if max_steiner else "")) + ("" if LOG.isEnabledFor(logging.DEBUG) else "Q")
    # generous: TetGen meshes ~1e5 elements per second; beyond that it is stuck
    timeout_s = 120.0 + 2e-3 * len(triangles)
    nodes, tets, attr = _isolated(lambda: tg.tetrahedralize(switches=switches)[:3], source, timeout_s)
    tets = np.asarray(tets, np.int64)[:, :4]
    region = np.rint(np.asarray(attr).ravel()).astype(np.int32)
    from magtwin.mesh.snap import split_flat_elements

    tets, region, _ = split_flat_elements(np.asarray(nodes, np.float64), tets, region)
    vol = tetrahedron_volumes(nodes, tets)
    neg = vol < 0
    tets[neg] = tets[neg][:, [0, 2, 1, 3]]
    if np.any(np.abs(vol) <= 1e-12 * np.abs(vol).mean()):
        raise InputError(f"TetGen returned {int(np.sum(np.abs(vol) <= 1e-12 * np.abs(vol).mean()))} flat elements", source)
    if np.any(region <= 0):
        raise InputError(f"{int(np.sum(region <= 0))} elements were not reached by any region seed", source)
    return np.asarray(nodes, np.float64), tets, region


def check_surface(points: np.ndarray, triangles: np.ndarray, source=None, context: str = "") -> None:
    """TetGen's own PLC check (``-d``): raise :class:`InputError` if the surface triangles
    intersect each other anywhere but in shared edges and vertices."""
    import tetgen

    tg = tetgen.TetGen(np.asarray(points, np.float64), np.asarray(triangles, np.int32))

    def diagnose():
        try:
            tg.tetrahedralize(switches="pdQ")
        except RuntimeError as exc:  # -d never meshes: it always "fails", the message tells why
            return [np.array(["self-intersections" in str(exc)])]
        return [np.array([False])]

    (bad,) = _isolated(diagnose, source)
    if bool(bad[0]):
        raise InputError(f"the model surface intersects itself {context} (TetGen -d); try a smaller "
                         "mesh.snap_tol_nm or a larger model.min_feature_nm", source)

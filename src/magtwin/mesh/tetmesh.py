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
from magtwin.mesh.regularize import box_constraints

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
    """
    import tetgen

    quality = f"q{radius_edge_ratio:g}" + (f"/{min_dihedral_deg:g}" if min_dihedral_deg > 0 else "")
    switches = (f"p{quality}aAO{int(opt_level)}/7o/{opt_max_dihedral_deg:g}" + ("Y" if keep_surface else "")
                + ("" if LOG.isEnabledFor(logging.DEBUG) else "Q"))
    triangles = np.asarray(triangles, np.int64)
    points = np.asarray(points, np.float64)
    lo, hi = points.min(axis=0), points.max(axis=0)
    box_fixed = np.array([bool(c) for c in box_constraints(points, lo, hi, 1e-9 * float(np.max(hi - lo)))])
    # generous: TetGen meshes ~1e5 elements per second; beyond that it is stuck
    timeout_s = 120.0 + 2e-3 * len(triangles)
    for attempt in range(4):
        tg = tetgen.TetGen(points, triangles.astype(np.int32))
        for p, r, v in zip(seeds, seed_region, seed_max_volume):
            tg.add_region(int(r), [float(c) for c in p], float(v))
        nodes, tets, attr = _isolated(lambda: tg.tetrahedralize(switches=switches)[:3], source, timeout_s)
        nodes = np.asarray(nodes, np.float64)
        tets = np.asarray(tets, np.int64)[:, :4]
        region = np.rint(np.asarray(attr).ravel()).astype(np.int32)
        tets, region, _ = split_flat_elements(nodes, tets, region)
        tets, region, _ = flip_flat_elements(nodes, tets, region, triangles)
        vol = tetrahedron_volumes(nodes, tets)
        flat = np.abs(vol) <= 1e-12 * np.abs(vol).mean()
        if not flat.any() or not keep_surface:
            break
        points = _lift_flat(nodes, tets[flat], float(np.sign(np.median(vol))), box_fixed)
    neg = vol < 0
    tets[neg] = tets[neg][:, [0, 2, 1, 3]]
    if flat.any():
        raise InputError(f"TetGen returned {int(flat.sum())} flat elements", source)
    region = _absorb_unseeded(nodes, tets, region, set(int(r) for r in seed_region))
    if np.any(region <= 0):
        raise InputError(f"{int(np.sum(region <= 0))} elements were not reached by any region seed", source)
    return np.asarray(nodes, np.float64), tets, region


def _lift_flat(points: np.ndarray, flat_tets: np.ndarray, sign: float, fixed: np.ndarray) -> np.ndarray:
    """Input points (the first ``len(fixed)`` of ``points``) with one vertex of every flat
    element moved off the plane of its other three by 1 % of the element's longest edge, to
    the side that gives the element the orientation
    ``sign`` of TetGen's others. Flat elements that TetGen must make from coplanar surface
    points (a thin piece squeezed flat by regularisation, a fold a hair past 180°) become
    slivers that smoothing can improve; vertices with ``fixed`` True (on the box) stay."""
    out = np.array(points, float)
    moved = set()
    for t in flat_tets:
        for j in range(4):
            v = int(t[j])
            if v >= len(fixed) or fixed[v] or v in moved:
                continue
            o = out[np.delete(t, j)]
            n = np.cross(o[1] - o[0], o[2] - o[0])
            if not np.linalg.norm(n) > 0:
                continue
            step = 0.01 * max(np.linalg.norm(out[t[a]] - out[t[b]]) for a in range(4) for b in range(a))
            q = out[t].copy()
            q[j] = out[v] + step * n / np.linalg.norm(n)
            up = np.linalg.det(q[1:] - q[0])
            out[v] = q[j] if up * sign > 0 else out[v] - step * n / np.linalg.norm(n)
            moved.add(v)
            break
    return out[:len(fixed)]


def _absorb_unseeded(points, tets, region, seeded: set) -> np.ndarray:
    """Elements of closed pockets that no seed reached (TetGen ``-A`` numbers them after the
    largest region id; tiny volumes left where regularisation squeezed a thin piece) join
    the seeded region across their largest face."""
    region = region.copy()
    todo = [int(k) for k in np.flatnonzero(~np.isin(region, list(seeded)) & (region > 0))]
    for _ in range(len(todo) + 1):
        left = []
        for k in todo:
            best, area = None, -1.0
            for j in range(4):
                face = np.delete(tets[k], j)
                nb = np.flatnonzero(np.isin(tets, face).sum(axis=1) == 3)
                nb = [e for e in nb if e != k and int(region[e]) in seeded]
                q = points[face]
                a = float(np.linalg.norm(np.cross(q[1] - q[0], q[2] - q[0])))
                if nb and a > area:
                    best, area = int(region[nb[0]]), a
            if best is None:
                left.append(k)
            else:
                region[k] = best
        if not left or len(left) == len(todo):
            break
        todo = left
    return region


def split_flat_elements(points: np.ndarray, tets: np.ndarray, region: np.ndarray, rel: float = 1e-12):
    """Remove zero-volume elements that have three collinear vertices ``a, v, b`` (``v`` on
    the segment ``ab``; left by a surface vertex moved onto a segment by regularisation,
    which exact predicates still see a hair off it): every element on edge ``ab`` is split at ``v``,
    and those already containing ``v`` (the flat ones) vanish. The result stays conforming
    (a subdivision of the star of ``ab``). Returns ``(tets, region, number of splits)``."""
    tets = np.asarray(tets, np.int64).copy()
    region = np.asarray(region).copy()
    splits = 0
    for _ in range(100):
        vol = tetrahedron_volumes(points, tets)
        flat = np.flatnonzero(np.abs(vol) <= rel * np.abs(vol).mean())
        if not len(flat):
            break
        t = tets[flat[0]]
        best = None
        for i in range(4):  # the vertex nearest to the segment of two others
            for j in range(4):
                for k in range(j + 1, 4):
                    if i in (j, k):
                        continue
                    a, b, v = points[t[j]], points[t[k]], points[t[i]]
                    ab = b - a
                    s = (v - a) @ ab / (ab @ ab)
                    d = np.linalg.norm(a + s * ab - v) / np.linalg.norm(ab)
                    if 0 < s < 1 and (best is None or d < best[0]):
                        best = (d, t[i], t[j], t[k])
        if best is None or best[0] > 1e-6:
            break  # not a collinear triple: left for the caller to report
        _, v, a, b = best
        on = np.flatnonzero((tets == a).any(axis=1) & (tets == b).any(axis=1))
        keep = np.ones(len(tets), bool)
        keep[on] = False
        new_t, new_r = [], []
        for e in on:
            te = tets[e]
            if v in te:
                continue
            t1, t2 = te.copy(), te.copy()
            t1[te == b] = v
            t2[te == a] = v
            new_t += [t1, t2]
            new_r += [region[e], region[e]]
        tets = np.vstack([tets[keep]] + ([np.array(new_t)] if new_t else []))
        region = np.concatenate([region[keep], np.array(new_r, region.dtype)])
        splits += 1
    return tets, region, splits


def flip_flat_elements(points: np.ndarray, tets: np.ndarray, region: np.ndarray, surface: np.ndarray,
                       rel: float = 1e-12):
    """Remove zero-volume elements whose four vertices are coplanar points of the kept surface
    (TetGen ``-Y`` fills a fan of surface triangles whose centre lies a hair off the plane of
    its rim with such an element): a flat element ``abcv`` and the element ``abcw`` across a
    face ``abc`` that is not a surface triangle become ``abvw, bcvw, cavw`` (a 2-3 flip),
    when these have positive volume and exactly fill the two. The surface triangles stay
    faces of the mesh. Returns ``(tets, region, number of flips)``."""
    tets = np.asarray(tets, np.int64).copy()
    region = np.asarray(region).copy()
    surf = {tuple(sorted(map(int, t))) for t in np.asarray(surface)}
    flips = 0
    for _ in range(100):
        vol = tetrahedron_volumes(points, tets)
        small = rel * np.abs(vol).mean()
        flat = np.flatnonzero(np.abs(vol) <= small)
        if not len(flat):
            break
        faces: dict[tuple, list] = {}
        near = np.unique(np.concatenate([np.flatnonzero(np.isin(tets, tets[k]).sum(axis=1) >= 3) for k in flat]))
        for e in near:
            for j in range(4):
                faces.setdefault(tuple(sorted(int(x) for x in np.delete(tets[e], j))), []).append(int(e))
        drop, new_t, new_r = set(), [], []
        for k in flat:
            if k in drop:
                continue
            for j in range(4):
                v = int(tets[k, j])
                face = tuple(sorted(int(x) for x in np.delete(tets[k], j)))
                if face in surf:
                    continue
                other = [e for e in faces.get(face, []) if e != k and e not in drop]
                if len(other) != 1:
                    continue
                e = other[0]
                w = int(next(x for x in tets[e] if x not in face))
                a, b, c = face
                cand = np.array([[a, b, v, w], [b, c, v, w], [c, a, v, w]])
                cv = np.abs(tetrahedron_volumes(points, cand))
                if cv.min() > small and abs(cv.sum() - abs(vol[e])) <= 1e-9 * abs(vol[e]):
                    drop |= {int(k), e}
                    new_t.extend(cand)
                    new_r.extend([region[e]] * 3)
                    flips += 1
                    break
        if not drop:
            break
        keep = np.ones(len(tets), bool)
        keep[list(drop)] = False
        tets = np.vstack([tets[keep], np.array(new_t, np.int64)])
        region = np.concatenate([region[keep], np.array(new_r, region.dtype)])
    return tets, region, flips

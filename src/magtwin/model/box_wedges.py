"""Fold thin wedges against the sample box: no region meets a box face at a small angle.

Where a face of a piece meets a box face at an interior dihedral angle ``alpha`` below
``min_angle_deg`` (a grain face nearly parallel to the box, common for platelets stacked
along the box's z axis), every conforming tetrahedral mesh has an element with a dihedral
angle <= ``alpha`` at that edge: the box stays exact and box vertices never move, so the mesh
cannot remove it (issue 4's quality target: no element below 5 deg). The wedge is folded by
giving a small piece of one region to the other, so that the interface meets the box at a
large angle. Volumes stay exact; the pieces stay convex (they are clipped by new planes).

Coordinates about the wedge edge ``O`` (a line on the box face): ``u`` on the box face away
from the edge into the wedge, ``w`` into the sample, ``g`` along the slanted face into the
wedge (``u·g = cos alpha``). Length ``l`` = ``length_nm``.

* *Tip* (the wedge region ``A`` gives its tip to the region ``B`` across the slanted face):
  ``A`` is cut by the plane normal to ``u`` through ``O + d g`` with ``d = l / sin alpha``, so
  the new interface rises ``l`` from the slanted face to the box, at 90 deg to it. Used when
  ``A`` is a GB or TJ region: it becomes thinner near the box, never thicker.
* *Notch* (``B`` gives ``A`` a notch ``X K L O``): ``X = O - l u``, ``K = X + l (u + w)/√2``,
  ``L = O + 2 l g``. ``A`` then meets the box at 45 deg at ``X``. Used when ``A`` is a grain
  core (a core has no thickness to keep, so the GB ``B`` loses a little near the box rather
  than gaining a bump that would make it thicker than configured).

Two GB regions meeting at a small angle at the box are left alone (either fold would change
one GB's thickness); so is a wedge whose notch corners do not all lie in ``B``'s piece.
"""

from __future__ import annotations

import numpy as np

from magtwin.model.boundary_phase import Piece
from magtwin.model.polyhedra import PlaneSet, Polyhedron, clip


def box_planes(planes: PlaneSet, lo: np.ndarray, hi: np.ndarray) -> set[int]:
    """Ids of the planes that are faces of the box ``[lo, hi]`` (nm)."""
    tol = 10 * planes.eps
    out = set()
    for pid, (n, c) in enumerate(zip(planes.normals, planes.offsets)):
        axis = int(np.argmax(np.abs(n)))
        if abs(abs(n[axis]) - 1.0) > 1e-12:
            continue
        if (n[axis] > 0 and abs(c - hi[axis]) <= tol) or (n[axis] < 0 and abs(c + lo[axis]) <= tol):
            out.add(pid)
    return out


def _outward(planes: PlaneSet, face) -> np.ndarray:
    # side -1: the piece is on n·x <= c, so n points out of it
    return -face.side * planes.n(face.plane)


def _contains(poly: Polyhedron, planes: PlaneSet, p: np.ndarray, tol: float) -> bool:
    return all(f.side * (planes.n(f.plane) @ p - planes.c(f.plane)) >= -tol for f in poly.faces)


def _shared_edge(fa, fb, eps: float):
    """The two vertices faces ``fa`` and ``fb`` share (their common edge), or ``None``."""
    d = np.abs(fa.loop[:, None, :] - fb.loop[None, :, :]).max(axis=2)
    ia, ib = np.nonzero(d <= 10 * eps)
    if len(set(ia.tolist())) < 2:
        return None
    pts = fa.loop[sorted(set(ia.tolist()))]
    # faces of a convex polyhedron share at most one edge: its two extreme points
    k = np.argmax(np.linalg.norm(pts - pts[0], axis=1))
    return pts[0], pts[k]


def find_wedges(pieces: list[Piece], planes: PlaneSet, box: set[int], min_angle_deg: float) -> list[dict]:
    """Edges where a piece's face meets a box face at an interior angle below
    ``min_angle_deg``: ``[{"piece", "edge": (a, b), "alpha_deg", "u", "w", "g", "o_g"}]``."""
    out = []
    cos_min = np.cos(np.radians(min_angle_deg))
    for k, p in enumerate(pieces):
        faces = p.poly.faces
        for fb in faces:
            if fb.plane not in box:
                continue
            ob = _outward(planes, fb)
            for fg in faces:
                if fg.plane in box or fg is fb:
                    continue
                og = _outward(planes, fg)
                # interior angle alpha = pi - angle(outward normals): small when they oppose
                if -(ob @ og) < cos_min:
                    continue
                edge = _shared_edge(fb, fg, planes.eps)
                if edge is None:
                    continue
                a, b = edge
                t = (b - a) / np.linalg.norm(b - a)
                mid = 0.5 * (a + b)
                u = np.cross(t, ob)
                if u @ (fb.loop.mean(axis=0) - mid) < 0:
                    u = -u
                g = np.cross(t, og)
                if g @ (fg.loop.mean(axis=0) - mid) < 0:
                    g = -g
                alpha = float(np.degrees(np.arccos(np.clip(u @ g, -1.0, 1.0))))
                out.append({"piece": k, "edge": (a, b), "alpha_deg": alpha, "u": u, "w": -ob, "g": g, "o_g": og})
    return out


def _cut(poly: Polyhedron, planes: PlaneSet, normal, point) -> tuple[int, Polyhedron | None, Polyhedron | None]:
    pid = planes.add(normal, float(np.asarray(normal) @ point))
    return pid, clip(poly, planes, pid, -1), clip(poly, planes, pid, 1)


def fold_box_wedges(pieces: list[Piece], planes: PlaneSet, lo, hi, region_kind: dict[int, str],
                    min_angle_deg: float, length_nm: float) -> dict:
    """Fold every wedge against the box below ``min_angle_deg`` (see the module docstring);
    ``pieces`` is changed in place (pieces split, some relabelled, new pieces appended).
    ``region_kind`` maps region id -> ``grain``/``gb``/``tj``. Returns the report
    ``{"box_wedges": [{"alpha_deg", "regions": [A, B], "fold": tip|notch|skipped}]}``."""
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    box = box_planes(planes, lo, hi)
    ell = float(length_nm)
    report = []
    touched: set[int] = set()
    for wdg in sorted(find_wedges(pieces, planes, box, min_angle_deg), key=lambda x: x["alpha_deg"]):
        k = wdg["piece"]
        if k in touched:  # an earlier fold changed this piece: its other wedges wait
            continue
        a_piece = pieces[k]
        mid = 0.5 * (wdg["edge"][0] + wdg["edge"][1])
        u, w, g, og = wdg["u"], wdg["w"], wdg["g"], wdg["o_g"]
        probe = mid + 0.1 * ell * g + 1e-3 * ell * og
        across = [j for j, q in enumerate(pieces) if j != k and _contains(q.poly, planes, probe, planes.eps)]
        if not across or pieces[across[0]].region == a_piece.region:
            continue
        j = across[0]
        b_piece = pieces[j]
        ka, kb = region_kind[a_piece.region], region_kind[b_piece.region]
        entry = {"alpha_deg": round(wdg["alpha_deg"], 3), "regions": [int(a_piece.region), int(b_piece.region)]}
        if ka == "gb" and kb == "gb":
            report.append({**entry, "fold": "skipped"})
            continue
        if ka == "grain" or kb == "gb":
            x = mid - ell * u
            kk = x + ell * (u + w) / np.sqrt(2.0)
            lp = mid + 2 * ell * g
            inside = all(_contains(b_piece.poly, planes, p, 1e-6 * ell) for p in (x, kk, lp))
            if not inside:
                report.append({**entry, "fold": "skipped"})
                continue
            m = (x + kk + lp + mid) / 4.0
            t = wdg["edge"][1] - wdg["edge"][0]
            n1 = np.cross(t, kk - x)
            n2 = np.cross(t, lp - kk)
            # orient both planes so that the notch (holding m) is on their n·x <= c side
            n1 = n1 if n1 @ (m - x) < 0 else -n1
            n2 = n2 if n2 @ (m - kk) < 0 else -n2
            _, in1, out1 = _cut(b_piece.poly, planes, n1, x)
            if in1 is None:
                report.append({**entry, "fold": "skipped"})
                continue
            _, notch, rest2 = _cut(in1, planes, n2, kk)
            if notch is None:
                report.append({**entry, "fold": "skipped"})
                continue
            keep = [q for q in (out1, rest2) if q is not None]
            new = [Piece(b_piece.grain, b_piece.near, q, b_piece.region) for q in keep]
            notch_piece = Piece(b_piece.grain, b_piece.near, notch, a_piece.region)
            if new:
                pieces[j] = new[0]
                pieces.extend(new[1:])
            else:
                pieces[j] = notch_piece
                notch_piece = None
            if notch_piece is not None:
                pieces.append(notch_piece)
            touched.update({j, k})
            report.append({**entry, "fold": "notch"})
        else:
            alpha = np.radians(wdg["alpha_deg"])
            d = ell / max(np.sin(alpha), 1e-9)
            _, tip, far = _cut(a_piece.poly, planes, u, mid + d * g)
            if tip is None:
                continue
            if far is None:
                a_piece.region = b_piece.region
            else:
                pieces[k] = Piece(a_piece.grain, a_piece.near, far, a_piece.region)
                pieces.append(Piece(a_piece.grain, a_piece.near, tip, b_piece.region))
            touched.update({j, k})
            report.append({**entry, "fold": "tip"})
    return {"box_wedges": report}

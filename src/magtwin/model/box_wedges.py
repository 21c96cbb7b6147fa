"""Fold thin wedges against the sample box: no region meets a box face at a small angle or in a narrow strip.

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
* *Widen* (``B`` gives a grain core ``A`` a notch ``X L O`` with ``X = O - max(l - width, l/2) u``,
  ``L = O + l g``): a core's box face narrower than ``l`` along a GB or TJ (a face plane
  leaving the box just before it would meet another box face: a strip a few hundredths of a
  nm wide that the mesh would have to resolve) becomes ``l`` wide.

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
    ia = np.unique(np.nonzero(d <= 10 * eps)[0])
    if len(ia) < 2:
        return None
    pts = fa.loop[ia]
    # faces of a convex polyhedron share at most one edge: its two extreme points
    k = np.argmax(np.linalg.norm(pts - pts[0], axis=1))
    return pts[0], pts[k]


def box_edges(pieces: list[Piece], planes: PlaneSet, box: set[int]) -> list[dict]:
    """Every edge where a piece's face meets one of its box faces:
    ``[{"piece", "edge": (a, b), "alpha_deg", "width_nm", "u", "w", "g", "o_g"}]`` with the
    interior angle ``alpha`` and the width of the piece's box face measured from the edge
    along ``u`` (see the module docstring for ``u``, ``w``, ``g``; ``o_g`` is the slanted
    face's outward normal)."""
    out = []
    for k, p in enumerate(pieces):
        faces = p.poly.faces
        for fb in faces:
            if fb.plane not in box:
                continue
            ob = _outward(planes, fb)
            for fg in faces:
                if fg.plane in box or fg is fb:
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
                og = _outward(planes, fg)
                g = np.cross(t, og)
                if g @ (fg.loop.mean(axis=0) - mid) < 0:
                    g = -g
                alpha = float(np.degrees(np.arccos(np.clip(u @ g, -1.0, 1.0))))
                width = float(np.max((fb.loop - mid) @ u))
                out.append({"piece": k, "edge": (a, b), "alpha_deg": alpha, "width_nm": width,
                            "u": u, "w": -ob, "g": g, "o_g": og})
    return out


def find_wedges(pieces: list[Piece], planes: PlaneSet, box: set[int], min_angle_deg: float) -> list[dict]:
    """The :func:`box_edges` with an interior angle below ``min_angle_deg``."""
    return [e for e in box_edges(pieces, planes, box) if e["alpha_deg"] < min_angle_deg]


def _cut(poly: Polyhedron, planes: PlaneSet, normal, point) -> tuple[Polyhedron | None, Polyhedron | None]:
    """The parts of ``poly`` on the ``n·x <= n·point`` and ``>=`` sides of a new plane."""
    pid = planes.add(normal, float(np.asarray(normal) @ point))
    return clip(poly, planes, pid, -1), clip(poly, planes, pid, 1)


def _notch(b_poly: Polyhedron, planes: PlaneSet, corners: list[np.ndarray], t: np.ndarray):
    """Split ``b_poly`` along the polyline ``corners`` (points on lines along ``t``, from the
    box face to the slanted face): returns (notch, [rest pieces]) or ``None``. The notch is
    the part on the side of every segment that holds the corners' mean plus the wedge edge
    ``corners[-1]`` is joined to (the caller passes ``[X, (K,) L, O]``)."""
    *path, o = corners
    m = np.mean(corners, axis=0)
    rest, part = [], b_poly
    for p, q in zip(path, path[1:]):
        n = np.cross(t, q - p)
        n = n if n @ (m - p) < 0 else -n  # the notch on the n·x <= c side
        inside, outside = _cut(part, planes, n, p)
        if inside is None:
            return None
        if outside is not None:
            rest.append(outside)
        part = inside
    return part, rest


def fold_box_wedges(pieces: list[Piece], planes: PlaneSet, lo, hi, region_kind: dict[int, str],
                    min_angle_deg: float, length_nm: float) -> dict:
    """Fold every wedge against the box below ``min_angle_deg`` and widen grain cores' box
    faces narrower than ``length_nm`` along a GB/TJ (see the module docstring); ``pieces``
    is changed in place (pieces split, some relabelled, new pieces appended). ``region_kind``
    maps region id -> ``grain``/``gb``/``tj``. Returns the report ``{"box_wedges":
    [{"alpha_deg", "width_nm", "regions": [A, B], "fold": tip|notch|widen|skipped}]}``."""
    if min_angle_deg <= 0:
        return {"box_wedges": []}
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    box = box_planes(planes, lo, hi)
    ell = float(length_nm)
    report = []
    touched: set[int] = set()
    for e in sorted(box_edges(pieces, planes, box), key=lambda x: x["alpha_deg"]):
        k = e["piece"]
        wedge = e["alpha_deg"] < min_angle_deg
        if k in touched or not (wedge or e["width_nm"] < ell):
            continue  # an earlier fold changed this piece: its other edges wait
        a_piece = pieces[k]
        o = 0.5 * (e["edge"][0] + e["edge"][1])
        u, w, g = e["u"], e["w"], e["g"]
        probe = o + 0.1 * ell * g + 1e-3 * ell * e["o_g"]
        across = [j for j, q in enumerate(pieces) if j != k and _contains(q.poly, planes, probe, planes.eps)]
        if not across or pieces[across[0]].region == a_piece.region:
            continue
        j = across[0]
        b_piece = pieces[j]
        ka, kb = region_kind[a_piece.region], region_kind[b_piece.region]
        if not wedge and not (ka == "grain" and kb != "grain"):
            continue  # only a core's narrow face is widened (a GB's would make it thicker)
        entry = {"alpha_deg": round(e["alpha_deg"], 3), "width_nm": round(e["width_nm"], 4),
                 "regions": [int(a_piece.region), int(b_piece.region)]}
        if ka == "gb" and kb == "gb":
            report.append({**entry, "fold": "skipped"})
            continue
        if ka == "grain" or kb == "gb":
            # B gives A a notch: A then meets the box at 45 deg (wedge) or its box face is l wide
            alpha = np.radians(e["alpha_deg"])
            if wedge or alpha < np.radians(45.0):
                x = o - ell * u
                corners = [x, x + ell * (u + w) / np.sqrt(2.0), o + 2 * ell * g, o]
            else:
                corners = [o - max(ell - e["width_nm"], 0.5 * ell) * u, o + ell * g, o]
            if not all(_contains(b_piece.poly, planes, p, 1e-6 * ell) for p in corners):
                report.append({**entry, "fold": "skipped"})
                continue
            cut = _notch(b_piece.poly, planes, corners, e["edge"][1] - e["edge"][0])
            if cut is None:
                report.append({**entry, "fold": "skipped"})
                continue
            notch, rest = cut
            new = [Piece(b_piece.grain, b_piece.near, q, b_piece.region) for q in rest]
            new.append(Piece(b_piece.grain, b_piece.near, notch, a_piece.region))
            pieces[j] = new[0]
            pieces.extend(new[1:])
            fold = "notch" if wedge else "widen"
        else:
            # A (a GB or TJ wedge) gives its tip to B: cut where it is l thick, normal to the box
            d = ell / max(np.sin(np.radians(e["alpha_deg"])), 1e-9)
            tip, far = _cut(a_piece.poly, planes, u, o + d * g)
            if tip is None:
                continue
            if far is None:
                a_piece.region = b_piece.region
            else:
                pieces[k] = Piece(a_piece.grain, a_piece.near, far, a_piece.region)
                pieces.append(Piece(a_piece.grain, a_piece.near, tip, b_piece.region))
            fold = "tip"
        touched.update({j, k})
        report.append({**entry, "fold": fold})
    return {"box_wedges": report}

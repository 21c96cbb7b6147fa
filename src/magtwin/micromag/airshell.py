"""Air around the magnet and a spherical shell transformation to infinity (open boundary).

Geometry (lengths in nm, ``c`` the centre of the magnet's bounding box, ``R_mag`` the largest
distance of a magnet node from ``c``):

* inner air: between the magnet surface and a sphere of radius ``R1 = inner_ratio * R_mag``,
  meshed by TetGen with the magnet's surface triangles kept as they are (``-Y``), so the air
  shares the magnet's surface nodes;
* shell: ``R1 <= r <= R2 = shell_ratio * R1``, the sphere's triangles extruded radially into
  ``n_layers`` layers of prisms, each split into three tetrahedra with the diagonal rule of
  Dompierre et al. (Proc. 8th Int. Meshing Roundtable, 1999) so neighbours conform.

The shell is mapped to the exterior of the sphere by the radial transformation
(Brunotte, Meunier & Imhoff, IEEE Trans. Magn. 28 (1992) 1663)

    r' = g(r) = R1 (R2 - R1) / (R2 - r),    r' -> infinity as r -> R2,

so the Laplace problem on all space becomes ``div(T grad u) = 0`` on the finite shell with
``T = det(J) J^-1 J^-T`` (J = dx'/dx), and u = 0 on the outer sphere (u(infinity) = 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from magtwin.errors import InputError
from magtwin.micromag.fem import boundary_faces, orient_positive


@dataclass
class AirMesh:
    """The air part of the open-boundary problem, numbered after the magnet nodes.

    Attributes
    ----------
    points : (Na, 3) coordinates (nm) of the air nodes; node ``n_magnet + i`` is ``points[i]``
    tets : (Ma, 4) elements in the combined numbering (magnet nodes 0..n_magnet-1 first)
    tensor : (Ma, 3, 3) metric tensor of each air element (identity outside the shell)
    dirichlet : (Na,) bool, air nodes on the outer sphere (potential fixed to 0)
    center, r_inner, r_outer : the shell geometry
    """

    points: np.ndarray
    tets: np.ndarray
    tensor: np.ndarray
    dirichlet: np.ndarray
    center: np.ndarray
    r_inner: float
    r_outer: float


def icosphere(radius: float, n_sub: int) -> tuple[np.ndarray, np.ndarray]:
    """Points (P, 3) and triangles (F, 3) of a subdivided icosahedron of ``radius``."""
    import pyvista as pv

    s = pv.Icosphere(radius=1.0, nsub=n_sub)
    pts = np.asarray(s.points, dtype=np.float64)
    pts /= np.linalg.norm(pts, axis=1, keepdims=True)
    faces = np.asarray(s.faces).reshape(-1, 4)[:, 1:].astype(np.int64)
    return pts * radius, faces


def split_prisms(bottom: np.ndarray, top: np.ndarray) -> np.ndarray:
    """Tetrahedra (3F, 4) of prisms with bottom triangles ``bottom`` (F, 3) and top triangles
    ``top`` (F, 3) (``top[:, k]`` above ``bottom[:, k]``, top indices = bottom + constant).

    With the bottom vertices sorted a < b < c, every quad face is cut along the diagonal
    from its lower-numbered bottom vertex, which neighbouring prisms agree on.
    """
    order = np.argsort(bottom, axis=1)
    b = np.take_along_axis(bottom, order, axis=1)
    t = np.take_along_axis(top, order, axis=1)
    a0, b0, c0 = b.T
    a1, b1, c1 = t.T
    return np.concatenate([
        np.stack([a0, b0, c0, c1], axis=1),
        np.stack([a0, b0, b1, c1], axis=1),
        np.stack([a0, a1, b1, c1], axis=1),
    ])


def shell_tensor(x: np.ndarray, center: np.ndarray, r1: float, r2: float) -> np.ndarray:
    """Metric tensors (K, 3, 3) ``det(J) J^-1 J^-T`` of the shell map at points ``x`` (K, 3).

    For the radial map x' = x g(r)/r, J has eigenvalue g'(r) radially and g/r tangentially:
    T = (g/r)^2 / g' * rr^T + g' (I - rr^T).
    """
    d = x - center
    r = np.linalg.norm(d, axis=1)
    rh = d / r[:, None]
    g = r1 * (r2 - r1) / (r2 - r)
    dg = r1 * (r2 - r1) / (r2 - r) ** 2
    rr = np.einsum("ki,kj->kij", rh, rh)
    eye = np.eye(3)[None]
    return ((g / r) ** 2 / dg)[:, None, None] * rr + dg[:, None, None] * (eye - rr)


def build_air(points: np.ndarray, tets: np.ndarray, inner_ratio: float = 1.5,
              shell_ratio: float = 2.0, n_layers: int = 4, n_sub: int = 3,
              quality: float = 1.4, max_volume: float | None = None,
              source=None) -> AirMesh:
    """Mesh the air around the magnet (``points`` nm, ``tets``) out to the shell's outer sphere.

    ``quality`` is TetGen's radius-edge bound; ``max_volume`` (nm^3) bounds the inner air
    elements (finer air = more accurate far field, see tests/test_micromag_demag.py).
    """
    import tetgen

    n_mag = len(points)
    faces = boundary_faces(tets)
    surf = np.unique(faces)
    center = 0.5 * (points.min(axis=0) + points.max(axis=0))
    r_mag = float(np.linalg.norm(points[surf] - center, axis=1).max())
    r1 = inner_ratio * r_mag
    r2 = shell_ratio * r1
    sph, sph_faces = icosphere(r1, n_sub)
    dirs = sph / r1
    sph = sph + center

    # TetGen input: magnet surface nodes first, then the sphere.
    local = np.full(n_mag, -1, dtype=np.int64)
    local[surf] = np.arange(len(surf))
    pts_in = np.concatenate([points[surf], sph])
    faces_in = np.concatenate([local[faces], sph_faces + len(surf)])
    tg = tetgen.TetGen(pts_in, faces_in.astype(np.int32))
    # A seed between the magnet and the sphere marks the air; the magnet's inside keeps 0.
    seed = center + np.array([1.0, 0.0, 0.0]) * 0.5 * (r_mag + 0.98 * r1)
    tg.add_region(1, seed, 0.0)
    from magtwin.micromag.shapes import quiet_stdout
    try:
        with quiet_stdout():
            nodes, elem, attr, *_ = tg.tetrahedralize(switches=f"pq{quality}YAQ" + (f"a{max_volume:.6g}" if max_volume else ""))
    except RuntimeError as exc:
        raise InputError(f"cannot mesh the air around the magnet's surface ({exc}); "
                         "is the surface closed and free of self-intersections?", source) from None
    nodes = np.asarray(nodes, dtype=np.float64)
    elem = np.asarray(elem, dtype=np.int64)[:, :4]
    attr = np.asarray(attr).ravel()
    elem = elem[attr == 1]
    n_in = len(pts_in)
    if len(nodes) < n_in or not np.allclose(nodes[:n_in], pts_in, atol=1e-9 * r1):
        raise InputError("the air mesher moved or dropped magnet surface nodes", source)

    # Combined numbering: magnet surface -> magnet ids; sphere + Steiner nodes -> new air ids.
    # Steiner points TetGen put inside the magnet belong to no air element: drop them.
    used = np.zeros(len(nodes), dtype=bool)
    used[elem.ravel()] = True
    used[:n_in] = True
    keep = np.flatnonzero(used[len(surf):]) + len(surf)
    to_comb = np.full(len(nodes), -1, dtype=np.int64)
    to_comb[:len(surf)] = surf
    to_comb[keep] = n_mag + np.arange(len(keep))
    air_pts = nodes[keep]
    inner_tets = to_comb[elem]
    sphere_ids = n_mag + np.arange(len(sph))          # the sphere's nodes in combined numbering

    # Shell layers: sphere nodes extruded radially, layer l at radius r1 + (r2 - r1) l / n.
    layer_pts, shell_tets = [], []
    base = n_mag + len(air_pts)
    prev = sphere_ids
    for lay in range(1, n_layers + 1):
        rad = r1 + (r2 - r1) * lay / n_layers
        ids = base + np.arange(len(sph))
        base += len(sph)
        layer_pts.append(center + dirs * rad)
        shell_tets.append(split_prisms(prev[sph_faces], ids[sph_faces]))
        prev = ids
    air_pts = np.concatenate([air_pts] + layer_pts)
    shell_tets = np.concatenate(shell_tets)
    all_pts = np.concatenate([points, air_pts])
    inner_tets = orient_positive(all_pts, inner_tets)
    shell_tets = orient_positive(all_pts, shell_tets)
    centroids = all_pts[shell_tets].mean(axis=1)
    tensor = np.concatenate([np.broadcast_to(np.eye(3), (len(inner_tets), 3, 3)),
                             shell_tensor(centroids, center, r1, r2)])
    dirichlet = np.zeros(len(air_pts), dtype=bool)
    dirichlet[-len(sph):] = True
    return AirMesh(points=air_pts, tets=np.concatenate([inner_tets, shell_tets]),
                   tensor=tensor, dirichlet=dirichlet, center=center, r_inner=r1, r_outer=r2)

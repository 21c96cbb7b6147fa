"""Mesh improvement after TetGen: edge collapse, flips, vertex relocation and edge splits, in rounds.

Each round runs, on the elements whose smallest dihedral angle is below ``target_deg``
(``smooth_target_deg`` for relocation):

* :func:`magtwin.mesh.collapse.collapse_short_edges` (short edges left by the regularised
  surface);
* :func:`magtwin.mesh.flips.flip_poor_elements` (2-3 flips and edge removal inside a region);
* :func:`magtwin.mesh.optimize.remove_slivers` (vertex relocation: inside a region, in an
  interface plane or along a model edge; vertices on bent interfaces and at model corners by
  at most ``max_shift_nm`` off their planes);
* once these stop helping, :func:`magtwin.mesh.split.split_poor_elements` (an edge split
  whose new vertex has the freedom that the element's own vertices, held by the geometry,
  lack), followed by flips and relocation;
* last, for what is left (slivers held at junctions of several thin regions), relaxed
  relocation: the vertices of poor elements may leave their interface planes by at most
  ``max_shift_nm``, GB slab vertices by at most ``rigid_shift_nm`` (``remove_slivers(...,
  relax=True)``).

A round that does not lower the number of elements below ``target_deg`` is undone.

Vertices of the ``rigid`` GB slabs move only within their planes (in the relaxed step by at
most ``rigid_shift_nm`` off them), and a collapse never adds a vertex to a slab, so its extent
grows by at most ``rigid_shift_nm`` per face. Collapses and off-plane moves each change a
region's volume by at most 2 %. The order follows the mesh-improvement schedule of Klingner &
Shewchuk, "Aggressive tetrahedral mesh improvement", Proc. 16th International Meshing
Roundtable (2007) 3–23: topological operations first, then smoothing, then vertex insertion,
repeated while the number of poor elements falls.
"""

from __future__ import annotations

import numpy as np

from magtwin.mesh.collapse import collapse_short_edges
from magtwin.mesh.flips import flip_poor_elements
from magtwin.mesh.optimize import remove_slivers
from magtwin.mesh.quality import dihedral_angles_deg
from magtwin.mesh.split import split_poor_elements


def improve_mesh(points: np.ndarray, tets: np.ndarray, region: np.ndarray, target_deg: float = 5.0,
                 smooth_target_deg: float = 10.0, ratio_bound: float = 2.0, max_shift_nm: float = 0.2,
                 bend_deg: float = 0.5, rigid: np.ndarray | None = None,
                 rounds: int = 5, rigid_shift_nm: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """Improve elements below ``target_deg`` (see module docstring).

    Parameters
    ----------
    points : (N, 3) nm; tets : (M, 4) positively oriented; region : (M,) region id;
    target_deg : elements below it get edge collapses and flips;
    smooth_target_deg : vertices of elements below it are relocated;
    ratio_bound : radius–edge ratio no operation may exceed (unless already exceeded);
    max_shift_nm : largest interface displacement an edge collapse or a vertex move off a bent
        interface or model corner may cause (0: exact ones only);
    rigid : (R,) bool per region id: regions whose vertices move only exactly (GB slabs: their
        thickness is the model's);
    bend_deg : interface triangles within this angle count as one plane for relocation;
    rigid_shift_nm : in the last, relaxed relocation, how far a vertex of a rigid region may
        leave its planes (0: that step leaves them in place).

    Returns
    -------
    points, tets, region (vertices may be removed: renumbered, or added) and a report with the counts
    of each operation and the number of elements below 5° and below ``target_deg`` before
    and after.
    """
    def below(p, t):
        """(elements below 5°, elements below target_deg, smallest dihedral angle)."""
        d = dihedral_angles_deg(p, t).min(axis=1)
        return int(np.sum(d < 5.0)), int(np.sum(d < target_deg)), float(d.min())

    report = {"collapsed_edges": 0, "flips_23": 0, "edge_removals": 0, "moved_vertices": 0, "split_edges": 0,
              "joined_edges": 0, "relaxed_vertices": 0, "rounds": 0}

    def collapse(p, t, r):
        return collapse_short_edges(p, t, r, target_deg, ratio_bound, max_shift_nm, rigid=rigid)

    def flip(p, t, r):
        t, r, rep = flip_poor_elements(p, t, r, target_deg, ratio_bound)
        return p, t, r, rep

    def relocate(p, t, r):
        p, rep = remove_slivers(p, t, r, smooth_target_deg, ratio_bound=ratio_bound, bend_deg=bend_deg,
                                max_shift_nm=max_shift_nm, rigid=rigid)
        return p, t, r, {"moved_vertices": rep["moved_vertices"]}

    def split(p, t, r):
        return split_poor_elements(p, t, r, target_deg, bend_deg, max_shift_nm, rigid)

    def relax(p, t, r):
        p, rep = remove_slivers(p, t, r, target_deg, ratio_bound=ratio_bound, bend_deg=bend_deg,
                                max_shift_nm=max_shift_nm, rigid=rigid, rigid_shift_nm=rigid_shift_nm, relax=True)
        return p, t, r, {"relaxed_vertices": rep["moved_vertices"]}

    state = (points, tets, region)
    now = below(points, tets)
    report["below_5deg_before"], report["below_target_before"] = now[0], now[1]
    # splits only once the other operations are done: early, they shorten edges that a
    # collapse or flip would have removed, and leave elements no later step can repair
    for ops in ((collapse, flip, relocate), (split, flip, relocate), (relax,)):
        for _ in range(rounds):
            if now[1] == 0:
                break
            trial, counts = state, {}
            for op in ops:
                *trial, rep = op(*trial)
                for k, v in rep.items():
                    counts[k] = counts.get(k, 0) + v
            after = below(trial[0], trial[1])
            if after[1] >= now[1]:  # this round did not help: keep the mesh before it
                break
            state, now = tuple(trial), after
            report["rounds"] += 1
            for k, v in counts.items():
                report[k] += v
    points, tets, region = state
    report["below_5deg_after"], report["below_target_after"], report["min_dihedral_after_deg"] = now
    return points, tets, region, report

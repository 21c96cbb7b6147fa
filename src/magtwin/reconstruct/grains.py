"""Stage 5 (grains): link 2D grain sections across slices into 3D grains.

Linking works on consecutive slices (streaming, two label slices in memory):

* sections ``a`` (slice z-1) and ``b`` (slice z) are the same grain when each is the other's
  largest overlap partner and the overlap covers at least ``link_overlap`` of the smaller
  one (mutual best match; a grain that *ends* or *appears* has no partner; where grains
  *split* or *merge* between slices, the larger branch continues the grain and the other
  starts or ends a grain);
* a section left without a partner in slice z-1 is tried against slice z-2 (``gap_slices``),
  so a grain missed or merged in one slice keeps its identity;
* 3D grains smaller than ``min_grain_voxels`` are fragments: their voxels are handed, within
  their slice, to the nearest remaining grain (not left as holes).

Output ``labels`` uint32 (z, y, x) on the aligned grid, frame of slice 0 (0 = unassigned)
and a grain table computed from streamed moments.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Mapping

import numpy as np
from scipy import ndimage
from scipy.sparse.csgraph import connected_components
import scipy.sparse as sp

from magtwin.errors import InputError
from magtwin.imaging.stackio import merged, progress, volume_of, voxel_size_of
from magtwin.io.artefact import ArtefactWriter, open_artefact

log = logging.getLogger("magtwin.reconstruct.grains")

#: Defaults of the ``grains`` config section (the schema documents each key).
DEFAULTS: dict[str, Any] = {
    "link_overlap": 0.5,
    "gap_slices": 1,
    "min_grain_voxels": 100,
}

TABLE_COLUMNS = (
    "id", "volume_voxels", "volume_nm3", "centroid_z_nm", "centroid_y_nm", "centroid_x_nm",
    "bbox_z0", "bbox_y0", "bbox_x0", "bbox_z1", "bbox_y1", "bbox_x1",
    "axis_length_1_nm", "axis_length_2_nm", "axis_length_3_nm",
    "axis_1_z", "axis_1_y", "axis_1_x", "axis_2_z", "axis_2_y", "axis_2_x",
    "axis_3_z", "axis_3_y", "axis_3_x", "aspect_ratio",
)


def overlaps(prev: np.ndarray, cur: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs ``(a, b)`` of labels overlapping between two label slices, and their pixel counts.

    Returns ``a`` (m,), ``b`` (m,), ``count`` (m,), background (0) excluded.
    """
    p = prev.ravel().astype(np.int64)
    c = cur.ravel().astype(np.int64)
    both = (p > 0) & (c > 0)
    key = p[both] * (int(c.max()) + 1) + c[both]
    u, cnt = np.unique(key, return_counts=True)
    return u // (int(c.max()) + 1), u % (int(c.max()) + 1), cnt


def mutual_links(prev: np.ndarray, cur: np.ndarray, link_overlap: float = 0.5,
                 prev_ok: np.ndarray | None = None, cur_ok: np.ndarray | None = None) -> list[tuple[int, int]]:
    """Mutual-best-overlap links ``(a, b)`` between label slices ``prev`` and ``cur``.

    ``prev_ok`` / ``cur_ok`` (bool per label, index 0 unused) restrict the candidates.
    """
    a, b, cnt = overlaps(prev, cur)
    if len(cnt) == 0:
        return []
    area_a = np.bincount(prev.ravel(), minlength=int(a.max()) + 1)
    area_b = np.bincount(cur.ravel(), minlength=int(b.max()) + 1)
    sel = np.ones(len(cnt), bool)
    if prev_ok is not None:
        sel &= prev_ok[a]
    if cur_ok is not None:
        sel &= cur_ok[b]
    a, b, cnt = a[sel], b[sel], cnt[sel]
    if len(cnt) == 0:
        return []
    order = np.argsort(-cnt, kind="stable")
    best_a: dict[int, int] = {}
    best_b: dict[int, int] = {}
    for i in order:
        best_a.setdefault(int(a[i]), int(b[i]))
        best_b.setdefault(int(b[i]), int(a[i]))
    links = []
    for i in order:
        ai, bi = int(a[i]), int(b[i])
        if best_a[ai] == bi and best_b[bi] == ai and cnt[i] >= link_overlap * min(area_a[ai], area_b[bi]):
            links.append((ai, bi))
    return links


class _Moments:
    """Streamed zeroth, first and second moments and bounding boxes per grain id."""

    def __init__(self, n: int):
        self.n = n
        self.m0 = np.zeros(n + 1)
        self.m1 = np.zeros((n + 1, 3))
        self.m2 = np.zeros((n + 1, 3, 3))
        self.lo = np.full((n + 1, 3), np.iinfo(np.int64).max, np.int64)
        self.hi = np.full((n + 1, 3), -1, np.int64)

    def add(self, z: int, lab: np.ndarray, vox) -> None:
        idx = np.flatnonzero(lab)
        if idx.size == 0:
            return
        ids = lab.ravel()[idx]
        y, x = np.divmod(idx, lab.shape[1])
        c = np.stack([np.full(idx.size, z * vox[0]), y * vox[1], x * vox[2]], axis=1)
        n1 = self.n + 1
        self.m0 += np.bincount(ids, minlength=n1)
        for i in range(3):
            self.m1[:, i] += np.bincount(ids, c[:, i], minlength=n1)
            for j in range(i, 3):
                s = np.bincount(ids, c[:, i] * c[:, j], minlength=n1)
                self.m2[:, i, j] += s
                if j != i:
                    self.m2[:, j, i] += s
        ipx = np.stack([np.full(idx.size, z), y, x], axis=1)
        for i in range(3):
            np.minimum.at(self.lo[:, i], ids, ipx[:, i])
            np.maximum.at(self.hi[:, i], ids, ipx[:, i])

    def table(self, vox) -> np.ndarray:
        """Rows per grain in :data:`TABLE_COLUMNS` order.

        Principal axes: eigenvectors of the covariance of the voxel-centre coordinates (nm);
        axis lengths are the full axes of the ellipsoid with the same second moments,
        ``2 sqrt(5 lambda)``, longest first; aspect ratio = longest / shortest (a platelet's
        width over its thickness).
        """
        rows = []
        dv = vox[0] * vox[1] * vox[2]
        for g in range(1, self.n + 1):
            m0 = self.m0[g]
            if m0 == 0:
                continue
            mu = self.m1[g] / m0
            cov = self.m2[g] / m0 - np.outer(mu, mu)
            # a voxel is a box, not a point: add its own second moment (h^2/12)
            cov = cov + np.diag(np.asarray(vox, float) ** 2 / 12.0)
            lam, vec = np.linalg.eigh(cov)
            order = np.argsort(lam)[::-1]
            lam, vec = np.clip(lam[order], 0, None), vec[:, order]
            length = 2.0 * np.sqrt(5.0 * lam)
            rows.append([g, m0, m0 * dv, *mu, *self.lo[g], *(self.hi[g] + 1), *length,
                         *vec[:, 0], *vec[:, 1], *vec[:, 2], length[0] / max(length[2], 1e-12)])
        return np.asarray(rows, np.float64).reshape(-1, len(TABLE_COLUMNS))


def _fill_fragments(lab: np.ndarray, removed: np.ndarray, usable: np.ndarray) -> np.ndarray:
    """Give pixels of ``removed`` (bool, y x) the label of the nearest kept pixel."""
    if not removed.any():
        return lab
    kept = (lab > 0) & ~removed
    if not kept.any():
        lab = lab.copy()
        lab[removed] = 0
        return lab
    _, (iy, ix) = ndimage.distance_transform_edt(~kept, return_indices=True)
    out = lab.copy()
    out[removed] = lab[iy[removed], ix[removed]]
    out[~usable] = 0
    return out


def link_sections(labels2d, link_overlap: float = 0.5, gap_slices: int = 1):
    """Link the sections of a (z, y, x) stack of 2D label slices (streaming over z).

    Returns
    -------
    offsets : (nz + 1,) int; section ``(z, l)`` (l >= 1) has global index ``offsets[z] + l - 1``.
    grain : (n_sections,) int, the 3D grain (0..n_grains-1) of every section.
    area : (n_sections,) int, section areas (px).
    """
    nz = labels2d.shape[0]
    offsets = np.zeros(nz + 1, np.int64)
    areas, rows, cols = [], [], []
    window: list[tuple[int, np.ndarray]] = []   # the last gap_slices + 1 slices
    continued: dict[int, np.ndarray] = {}       # z -> bool per label: linked into z + 1
    for z in range(nz):
        cur = np.asarray(labels2d[z]).astype(np.int64)
        n = int(cur.max())
        offsets[z + 1] = offsets[z] + n
        areas.append(np.bincount(cur.ravel(), minlength=n + 1)[1:])
        matched = np.zeros(n + 1, bool)
        for dz, (zp, prev) in enumerate(reversed(window)):
            # dz = 0: slice z-1; dz > 0: bridge a gap to sections that ended at slice zp
            prev_free = None if dz == 0 else ~continued[zp]
            links = mutual_links(prev, cur, link_overlap, prev_free, ~matched)
            got = np.zeros(int(prev.max()) + 1, bool)
            for a, b in links:
                rows.append(offsets[zp] + a - 1)
                cols.append(offsets[z] + b - 1)
                matched[b] = True
                got[a] = True
            if dz == 0:
                continued[zp] = got
            else:
                continued[zp] |= got
        window.append((z, cur))
        if len(window) > gap_slices + 1:
            old, _ = window.pop(0)
            continued.pop(old, None)
        progress("grains/link", z, nz)
    n_sec = int(offsets[-1])
    g = sp.coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_sec, n_sec))
    _, grain = connected_components(g, directed=False)
    area = np.concatenate(areas) if areas else np.zeros(0, np.int64)
    return offsets, grain, area


def run_grains(in_path: str | os.PathLike, out_path: str | os.PathLike,
               params: Mapping[str, Any] | None = None) -> dict:
    """Stage 5: read ``04_segment.h5`` (stage "segment"), write ``05_grains.h5``.

    Output: ``labels`` uint32 (z, y, x), grain ids 1..n in the frame of slice 0
    (0 = unassigned); ``grain_table`` (n, len(TABLE_COLUMNS)) float64 with attr ``columns``;
    root attrs ``voxel_size_nm``, ``n_grains``, ``quality_json`` (grain count, size
    distribution).
    """
    p = merged(DEFAULTS, params, "grains")
    with open_artefact(in_path, "segment") as f:
        lab2d = volume_of(f, in_path, name="labels2d", min_slices=1)
        vox = voxel_size_of(f, in_path)
        nz, ny, nx = lab2d.shape
        usable = np.asarray(f["usable_mask"], bool) if "usable_mask" in f else np.ones((ny, nx), bool)
        offsets, grain, area = link_sections(lab2d, float(p["link_overlap"]), int(p["gap_slices"]))
        if len(grain) == 0:
            raise InputError("the segmentation has no grain sections to link", in_path)
        size = np.bincount(grain, weights=area)
        keep = size >= int(p["min_grain_voxels"])
        if not keep.any():
            raise InputError(f"no 3D grain reaches grains.min_grain_voxels = {p['min_grain_voxels']} "
                             f"(largest: {int(size.max())} voxels)", in_path)
        new_id = np.zeros(len(size), np.int64)
        # ids ordered by first appearance along z (sections are numbered slice by slice)
        first = np.full(len(size), np.iinfo(np.int64).max)
        np.minimum.at(first, grain, np.arange(len(grain)))
        kept = np.flatnonzero(keep)
        kept = kept[np.argsort(first[kept])]
        new_id[kept] = np.arange(1, len(kept) + 1)
        n_grains = len(kept)
        mom = _Moments(n_grains)
        n_frag_px = 0
        with ArtefactWriter(out_path, "grains", p, inputs=[in_path]) as w:
            out = w.create_volume("labels", (nz, ny, nx), np.uint32)
            for z in range(nz):
                loc = np.asarray(lab2d[z]).astype(np.int64)
                lut = np.zeros(int(loc.max()) + 1, np.int64)
                if len(lut) > 1:
                    lut[1:] = new_id[grain[offsets[z]:offsets[z + 1]]]
                lab = lut[loc]
                removed = (loc > 0) & (lab == 0)
                n_frag_px += int(removed.sum())
                lab = _fill_fragments(lab, removed, usable)
                out[z] = lab.astype(np.uint32)
                mom.add(z, lab, vox)
                progress("grains/write", z, nz)
            table = mom.table(vox)
            w.write("grain_table", table, attrs={"columns": ",".join(TABLE_COLUMNS),
                                                 "units": "nm, voxels; bbox in voxels [start, stop)"})
            vols = table[:, 2]
            q = {
                "n_grains": int(n_grains),
                "n_fragments_merged": int((~keep).sum()),
                "fragment_voxels_reassigned": n_frag_px,
                "grain_volume_nm3_percentiles_10_50_90": np.percentile(vols, [10, 50, 90]).tolist(),
                "equivalent_diameter_nm_median": float(np.median(np.cbrt(6 * vols / np.pi))),
                "aspect_ratio_median": float(np.median(table[:, -1])),
                "grains_touching_stack_ends": int(((table[:, 6] == 0) | (table[:, 9] == nz)).sum()),
            }
            w.h5.attrs["voxel_size_nm"] = vox
            w.h5.attrs["n_grains"] = n_grains
            w.write_json("quality_json", q)
    log.info("grains quality: %s", q)
    return q

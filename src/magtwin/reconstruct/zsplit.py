"""Split linked 3D grains along z where their brightness steps (grains stage, after linking).

A grain that ends where the next one starts (platelets stacked along the slicing direction
do that all the time) is often linked to it: their common face is nearly parallel to the
slices, so no slice shows a GB line between them and overlap links the shrinking sections of
one to the growing sections of the other. Each such error joins two grains, and it compounds
with the stack length: the longer the stack, the more grains end inside it (issue 3: on
60-slice stacks such end-to-end joins were the largest class of unmatched grains).

What does tell them apart is their orientation contrast: a grain keeps its brightness through
the stack, two grains differ by a step. So, per linked grain, the brightness profile along z
(mean over the interior pixels of its sections in each slice) is searched for steps: the
median of the ``window`` slices after slice k minus the median of the ``window`` slices
before it. The largest step of at least ``min_step`` (image units of the aligned volume) cuts
the grain at k; the next largest at least ``window`` slices from every cut too, and so on.
Medians over a window keep single contaminated slices (small end sections bright with GB
phase) from looking like steps, and the window keeps a slow drift of the shading along the
grain from adding up to one.

Sections of the ``window`` slices on either side of a cut go to the piece whose level
(the window median) their own brightness is closer to: where the two grains coexist in
a slice, the sections of each are put right.

Memory: one entry per 2D section (slice, label, pixel count, interior sums), as the linking's
own per-section track ids; the slices stream from the artefacts.
"""

from __future__ import annotations

import array

import numpy as np

from magtwin.imaging.stackio import progress


def section_sums(lab: np.ndarray, img: np.ndarray, b: np.ndarray | None,
                 interior_b: float = 0.2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixel count, interior pixel count and interior brightness sum of every label of
    ``lab`` (y, x); interior = finite ``img`` and GB evidence ``b`` below ``interior_b``.
    Arrays indexed by label (0 included)."""
    n = int(lab.max()) + 1
    img = np.asarray(img, np.float64)
    sel = (lab > 0) & np.isfinite(img)
    if b is not None:
        sel &= np.asarray(b, np.float32) < interior_b
    return (np.bincount(lab.ravel(), minlength=n), np.bincount(lab[sel], minlength=n),
            np.bincount(lab[sel], img[sel], minlength=n))


def step_cuts(level: np.ndarray, window: int = 4, min_step: float = 0.15) -> list[int]:
    """Positions ``k`` where a profile ``level`` (n,) steps: ``|median(level[k:k+w]) -
    median(level[k-w:k])| >= min_step``, largest first, each at least ``w`` from the
    others (so every piece keeps ``w`` entries); NaN entries are left out of the medians.
    Returns the sorted positions (a cut at ``k`` starts a new piece at ``k``)."""
    level = np.asarray(level, np.float64)
    w, n = int(window), len(level)
    if n < 2 * w:
        return []
    ks = np.arange(w, n - w + 1)
    with np.errstate(all="ignore"):
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)   # all-NaN windows
            step = np.abs(np.array([np.nanmedian(level[k:k + w]) - np.nanmedian(level[k - w:k])
                                    for k in ks]))
    step[~np.isfinite(step)] = 0.0
    cuts: list[int] = []
    for i in np.argsort(-step, kind="stable"):
        if step[i] < min_step:
            break
        k = int(ks[i])
        if all(abs(k - c) >= w for c in cuts):
            cuts.append(k)
    return sorted(cuts)


class SectionTable:
    """Per-section records streamed slice by slice: slice, label, pixel count, interior count
    and brightness sum (compact ``array`` storage)."""

    def __init__(self):
        self.z = array.array("i")
        self.label = array.array("i")
        self.area = array.array("q")
        self.cnt = array.array("q")
        self.sum = array.array("d")

    def add(self, z: int, lab: np.ndarray, img: np.ndarray, b: np.ndarray | None,
            interior_b: float = 0.2) -> None:
        area, cnt, tot = section_sums(lab, img, b, interior_b)
        ids = np.flatnonzero(area[1:]) + 1
        self.z.extend([z] * len(ids))
        self.label.frombytes(ids.astype(np.int32).tobytes())
        self.area.frombytes(area[ids].astype(np.int64).tobytes())
        self.cnt.frombytes(cnt[ids].astype(np.int64).tobytes())
        self.sum.frombytes(tot[ids].astype(np.float64).tobytes())

    def arrays(self) -> tuple[np.ndarray, ...]:
        return tuple(np.frombuffer(a, a.typecode).astype(np.int64 if a.typecode != "d" else np.float64)
                     for a in (self.z, self.label, self.area, self.cnt, self.sum))


def split_by_brightness(z: np.ndarray, grain: np.ndarray, cnt: np.ndarray, tot: np.ndarray,
                        window: int = 4, min_step: float = 0.15, min_px: int = 20) -> np.ndarray:
    """Piece index (0, 1, ...) of every section after cutting each grain at its brightness
    steps (:func:`step_cuts`).

    Parameters: per section, its slice ``z``, its ``grain``, and the interior pixel count
    ``cnt`` and brightness sum ``tot`` (:func:`section_sums`); sections with fewer than
    ``min_px`` interior pixels do not count toward the levels. Returns int64 (m,).
    """
    m = len(z)
    piece = np.zeros(m, np.int64)
    if m == 0:
        return piece
    order = np.lexsort((z, grain))
    g_s, z_s = grain[order], z[order]
    starts = np.flatnonzero(np.r_[True, g_s[1:] != g_s[:-1]])
    stops = np.r_[starts[1:], m]
    w = int(window)
    for a, e in zip(starts, stops):
        zz = z_s[a:e]
        if zz[-1] - zz[0] + 1 < 2 * w:
            continue
        idx = order[a:e]
        # per-slice level of the grain (its sections in one slice pooled)
        z0 = zz[0]
        nzs = zz[-1] - z0 + 1
        c_sl = np.bincount(zz - z0, np.where(cnt[idx] >= min_px, cnt[idx], 0), minlength=nzs)
        t_sl = np.bincount(zz - z0, np.where(cnt[idx] >= min_px, tot[idx], 0.0), minlength=nzs)
        with np.errstate(invalid="ignore", divide="ignore"):
            level = t_sl / c_sl
        level[c_sl == 0] = np.nan
        cuts = step_cuts(level, w, min_step)
        if not cuts:
            continue
        local = np.searchsorted(np.asarray(cuts), zz - z0, side="right")
        # sections near a cut go to the side whose level their own brightness is closer to
        with np.errstate(invalid="ignore", divide="ignore"):
            own = tot[idx] / cnt[idx]
        for j, k in enumerate(cuts):
            lo = np.nanmedian(level[k - w:k])
            hi = np.nanmedian(level[k:k + w])
            near = (np.abs(zz - z0 - k) <= w) & (cnt[idx] >= min_px) & np.isfinite(own)
            near &= (local == j) | (local == j + 1)
            local[near] = np.where(np.abs(own[near] - hi) < np.abs(own[near] - lo), j + 1, j)
        piece[idx] = local
    return piece


def split_tracks(out, track_of, tracks, image, boundary=None, window: int = 4,
                 min_step: float = 0.15, interior_b: float = 0.2):
    """Cut the linked grains of :func:`magtwin.reconstruct.grains.link_sections` at their
    brightness steps (module docstring), **in place**: sections of every piece after the
    first get a new track (one per piece). ``out`` (z, y, x) holds the local section labels,
    ``track_of`` their tracks, ``image`` the aligned volume, ``boundary`` the GB evidence.

    Returns ``(n_cuts, size, first, last)``: per track id (after the split; index = track id,
    only roots meaningful) its voxel count, first and last slice -- recomputed from the
    sections, so the caller need not trust the tracks' own bookkeeping after the split.
    """
    nz = out.shape[0]
    table = SectionTable()
    for zi in range(nz):
        table.add(zi, np.asarray(out[zi]).astype(np.int64), image[zi],
                  None if boundary is None else boundary[zi], interior_b)
        progress("grains/zsplit", zi, nz)
    z, label, area, cnt, tot = table.arrays()
    n_tracks = len(tracks.parent)
    root = np.array([tracks.find(t) for t in range(n_tracks)], np.int64)
    # section -> its root track (track_of is per slice: labels 1..n_z)
    starts = np.frombuffer(track_of.start, np.int64)
    flat = np.frombuffer(track_of.flat, np.int32)
    pos = starts[z] + label
    grain = root[flat[pos]]
    piece = split_by_brightness(z, grain, cnt, tot, window, min_step)
    n_cuts = 0
    cut = np.flatnonzero(piece > 0)
    if cut.size:
        key = np.unique(np.stack([grain[cut], piece[cut]], axis=1), axis=0)
        n_cuts = len(key)
        new = {}
        for g, pc in key.tolist():
            new[(g, pc)] = tracks.new(int(z[cut][0]))
        new_t = np.array([new[(g, pc)] for g, pc in zip(grain[cut].tolist(), piece[cut].tolist())],
                         np.int32)
        flat[pos[cut]] = new_t
        grain = grain.copy()
        grain[cut] = new_t
    n_all = len(tracks.parent)
    size = np.bincount(grain, area, minlength=n_all).astype(np.int64)
    first = np.full(n_all, nz, np.int64)
    np.minimum.at(first, grain, z)
    last = np.full(n_all, -1, np.int64)
    np.maximum.at(last, grain, z)
    return n_cuts, size, first, last
